//! The one-word completion target of an op ([`Target`]) that moves through
//! backlog, ring slot and completion, and its parts once taken apart
//! ([`Owned`]).

use std::io;
use std::sync::Arc;

use crate::lean::{CbTable, FreeBatch, LeanTarget};

use auraio_ring::{OpKind, Resources};

use super::{panic_message, CtlTarget, Deliver, Finish, OpCtl, OpInfo};

/// The per-op completion target stored in the ring slot / backlog: one
/// word, so moving it along the submit and reap paths stays cheap (a
/// wider target, built with narrow stores and copied with wide loads, was
/// a store-forwarding stall at each move). One per op, not `Clone`: the
/// only value allowed to take the op's callback.
///
/// Either an op with a control block (a future's, one with a handle, and
/// every callback op the lean path does not take): the `Arc<OpCtl>`'s
/// pointer with the delivery mode in bit 0; or a lean op (see
/// [`crate::lean`]): its callback table index and kind, with bit 1 set
/// (never set in the pointer of an `OpCtl`, which is 8-byte aligned).
pub(crate) struct Target(std::num::NonZeroUsize);

/// Bit 1 of a [`Target`]: a lean op.
const TARGET_LEAN: usize = 0b10;
/// Bit 0 of a [`Target`] with a control block: delivered to a future.
const TARGET_FUTURE: usize = 0b01;
const _: () = assert!(std::mem::align_of::<OpCtl>() >= 4);

/// A [`Target`] taken apart, to consume it.
pub(crate) enum Owned {
    Ctl(CtlTarget),
    Lean(LeanTarget),
}

impl Target {
    /// A target with a control block.
    #[inline(always)]
    pub(crate) fn ctl(ctl: Arc<OpCtl>, deliver: Deliver) -> Self {
        let p = Arc::into_raw(ctl) as usize;
        debug_assert_eq!(p & (TARGET_LEAN | TARGET_FUTURE), 0);
        let bit = if deliver == Deliver::Future {
            TARGET_FUTURE
        } else {
            0
        };
        match std::num::NonZeroUsize::new(p | bit) {
            Some(v) => Target(v),
            // `Arc::into_raw` never returns null.
            None => unreachable!("null Arc pointer"),
        }
    }

    /// A lean op's target.
    #[inline(always)]
    pub(crate) fn lean(l: LeanTarget) -> Self {
        let v = ((l.idx as usize) << 16) | ((l.kind as usize) << 8) | TARGET_LEAN;
        match std::num::NonZeroUsize::new(v) {
            Some(v) => Target(v),
            None => unreachable!("bit 1 is set"),
        }
    }

    /// The control block's pointer (without the mode bit), if this target
    /// has one.
    #[inline(always)]
    fn ctl_ptr(&self) -> Option<*const OpCtl> {
        let v = self.0.get();
        (v & TARGET_LEAN == 0).then_some((v & !TARGET_FUTURE) as *const OpCtl)
    }

    /// The op's control block, if it has one.
    #[inline(always)]
    pub(crate) fn ctl_ref(&self) -> Option<&OpCtl> {
        // SAFETY: the pointer came from `Arc::into_raw` in `ctl`, and this
        // target holds that strong reference until it is consumed
        // (`into_owned`) or dropped: the block lives at least as long as
        // the borrow of `self`.
        self.ctl_ptr().map(|p| unsafe { &*p })
    }

    /// A new reference to the op's control block, if it has one.
    pub(crate) fn ctl_arc(&self) -> Option<Arc<OpCtl>> {
        self.ctl_ptr().map(|p| {
            // SAFETY: as in `ctl_ref`: `p` is the pointer of a live `Arc`
            // this target holds; the count is raised before the new `Arc`
            // is made from it.
            unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }
        })
    }

    /// Takes the target apart (consuming it).
    #[inline(always)]
    pub(crate) fn into_owned(self) -> Owned {
        let v = self.0.get();
        std::mem::forget(self);
        if v & TARGET_LEAN != 0 {
            Owned::Lean(LeanTarget {
                idx: (v >> 16) as u32,
                kind: OpKind::ALL[(v >> 8) & 0xff],
            })
        } else {
            // SAFETY: the pointer came from `Arc::into_raw` in `ctl`; this
            // consumed target owned that strong reference (forgotten
            // above, so it is taken back exactly once).
            let ctl = unsafe { Arc::from_raw((v & !TARGET_FUTURE) as *const OpCtl) };
            let deliver = if v & TARGET_FUTURE != 0 {
                Deliver::Future
            } else {
                Deliver::Callback
            };
            Owned::Ctl(CtlTarget { ctl, deliver })
        }
    }

    /// What the op is. A lean op is never traced, shortened by a fault
    /// plan, nor uses registered buffers or files (those take the general
    /// path), and its length is not kept (only faults and traces read it).
    #[inline(always)]
    pub(crate) fn info(&self) -> OpInfo {
        match self.ctl_ref() {
            Some(c) => c.info,
            None => OpInfo {
                kind: OpKind::ALL[(self.0.get() >> 8) & 0xff],
                len: 0,
                traced: false,
                shortened: false,
                fixed_buf: false,
                fixed_file: false,
            },
        }
    }

    /// Whether the completion goes to a future.
    #[inline(always)]
    pub(crate) fn is_future(&self) -> bool {
        self.0.get() & (TARGET_LEAN | TARGET_FUTURE) == TARGET_FUTURE
    }

    /// Delivers the completion (see [`CtlTarget::finish`]); a lean op's
    /// callback is taken out of `table` (its ring's) and its entry freed.
    pub(crate) fn finish(
        self,
        table: &CbTable,
        result: io::Result<u32>,
        resources: Resources,
    ) -> Finish {
        match self.into_owned() {
            Owned::Ctl(t) => t.finish(result, resources),
            Owned::Lean(l) => {
                let mut free = FreeBatch::default();
                let cb = table.take(l, &mut free);
                table.flush(&mut free);
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    cb.call(result, resources)
                })) {
                    Ok(()) => Finish::Ok,
                    Err(payload) => Finish::Panicked(panic_message(payload.as_ref())),
                }
            }
        }
    }

    /// [`finish`](Self::finish) without catching a panicking callback
    /// (see [`CtlTarget::finish_unguarded`]); a lean op's entry is recorded
    /// in `free` (for the caller to flush) before its callback runs.
    #[inline(always)]
    pub(crate) fn finish_unguarded(
        self,
        table: &CbTable,
        free: &mut FreeBatch,
        result: io::Result<u32>,
        resources: Resources,
    ) {
        match self.into_owned() {
            Owned::Ctl(t) => t.finish_unguarded(result, resources),
            Owned::Lean(l) => table.take_and_call(l, free, result, resources),
        }
    }
}

impl Drop for Target {
    /// A target dropped without being finished (the engine finishes or
    /// explicitly discards every one): a control block is released (with
    /// its callback, uncalled); a lean op's callback and table entry are
    /// leaked, as the target does not know its table.
    fn drop(&mut self) {
        let t = Target(self.0);
        if let Owned::Ctl(c) = t.into_owned() {
            drop(c);
        }
    }
}
