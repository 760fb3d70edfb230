//! Delivering a completion to an op with a control block ([`CtlTarget`]):
//! its callback runs or its future is woken, exactly once.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use auraio_ring::{OpKind, Resources};

use super::{OpCtl, OpInfo, Phase};

/// How a completion reaches its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deliver {
    /// Callback face: run the callback kept in the `OpCtl` (outside every
    /// engine lock).
    Callback,
    /// Async face: store the result in the `OpCtl` and wake the future.
    Future,
}

/// The target of an op with a control block (what the op is and its
/// callback live in its [`OpCtl`]).
pub(crate) struct CtlTarget {
    pub(crate) ctl: Arc<OpCtl>,
    pub(crate) deliver: Deliver,
}
/// What happened when a target was finished.
pub(crate) enum Finish {
    Ok,
    /// The callback panicked; the payload's message.
    Panicked(String),
}

impl CtlTarget {
    /// What the op is.
    pub(crate) fn info(&self) -> &OpInfo {
        &self.ctl.info
    }

    /// Delivers the completion: exactly once, since `self` is consumed.
    /// Must be called with no engine lock held (callbacks may re-enter).
    /// A panicking callback is caught here and reported.
    pub(crate) fn finish(self, result: io::Result<u32>, resources: Resources) -> Finish {
        match self.deliver {
            Deliver::Callback => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    self.finish_unguarded(result, resources)
                })) {
                    Ok(()) => Finish::Ok,
                    Err(payload) => Finish::Panicked(panic_message(payload.as_ref())),
                }
            }
            Deliver::Future => {
                self.finish_unguarded(result, resources);
                Finish::Ok
            }
        }
    }

    /// [`finish`](Self::finish) without catching a panicking callback: it
    /// unwinds out of here (the op is still delivered once: its callback
    /// was taken and its phase is `Done`). For a caller that catches once
    /// around many completions (`Shard::deliver_completions`), instead of
    /// paying `catch_unwind`'s hand-off through memory per op.
    #[inline]
    pub(crate) fn finish_unguarded(self, result: io::Result<u32>, resources: Resources) {
        let resources = if self.info().shortened {
            crate::fault::unshorten_resources(resources)
        } else {
            resources
        };
        match self.deliver {
            Deliver::Callback => {
                // SAFETY: this is the op's one `Target`, consumed here: no
                // other access to `cb` can happen now or later (see the
                // `Sync` impl of `OpCtl`).
                let f = unsafe { (*self.ctl.cb.get()).take() };
                self.ctl.set_phase(Phase::Done);
                if let Some(f) = f {
                    f.call(result, resources);
                }
                // (`None` is not reachable: a callback op is built with its
                // callback, and only this consumed target takes it.) On a
                // panic the block is dropped while unwinding, not recycled.
                OpCtl::recycle(self.ctl);
            }
            Deliver::Future => {
                let mut st = self.ctl.lock();
                self.ctl.set_phase(Phase::Done);
                if st.abandoned {
                    drop(st);
                    // Nobody will look at the result: release what it holds
                    // (buffers drop here; an opened fd is closed).
                    if self.info().kind == OpKind::OpenAt {
                        if let Ok(fd) = result {
                            // SAFETY: a successful openat returned this new
                            // descriptor and its future is gone, so nobody
                            // else owns it.
                            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
                        }
                    }
                    drop(resources);
                    return;
                }
                st.result = Some((result, resources));
                let waker = st.waker.take();
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
