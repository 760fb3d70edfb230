//! [`OpFuture`]: the async face of one operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::FusedFuture;

use crate::engine::Shared;
use crate::op_state::OpCtl;
use crate::request::Conv;

enum State<O> {
    /// Submitted; the result arrives in `ctl`.
    Pending {
        ctl: Arc<OpCtl>,
        sh: Arc<Shared>,
        conv: Conv<O>,
    },
    /// Known without the kernel (the submission failed).
    Ready(O),
    /// Output handed out.
    Done,
}

/// The future of one submitted operation; resolves to its output, e.g.
/// `(io::Result<usize>, B)` for a read (the buffer always comes back).
///
/// The operation is submitted when the future is created. Dropping the
/// future before it resolves cancels the operation; the engine keeps the
/// buffer alive until the kernel's completion arrives and then frees it.
/// Polling again after it resolved returns `Pending` (see
/// [`FusedFuture::is_terminated`]).
#[must_use = "the operation is cancelled when its future is dropped"]
pub struct OpFuture<O> {
    state: State<O>,
}

impl<O> OpFuture<O> {
    pub(crate) fn pending(ctl: Arc<OpCtl>, sh: Arc<Shared>, conv: Conv<O>) -> Self {
        OpFuture {
            state: State::Pending { ctl, sh, conv },
        }
    }

    pub(crate) fn ready(out: O) -> Self {
        OpFuture {
            state: State::Ready(out),
        }
    }

    /// Cancels the operation now (it still resolves: with `ECANCELED`, or its
    /// own result if it finished first).
    pub fn cancel(&self) {
        if let State::Pending { ctl, sh, .. } = &self.state {
            let _ = sh.cancel(ctl);
        }
    }

    /// The ring the operation went to (`None` if it was never submitted).
    pub fn ring(&self) -> Option<usize> {
        match &self.state {
            State::Pending { ctl, .. } => Some(ctl.ring as usize),
            _ => None,
        }
    }
}

impl<O> Unpin for OpFuture<O> {}

impl<O> Future for OpFuture<O> {
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.get_mut();
        match &mut this.state {
            State::Done => Poll::Pending,
            State::Ready(_) => match std::mem::replace(&mut this.state, State::Done) {
                State::Ready(out) => Poll::Ready(out),
                _ => Poll::Pending,
            },
            State::Pending { ctl, conv, .. } => match ctl.take_or_register(cx.waker()) {
                Some((r, res)) => {
                    let conv = *conv;
                    this.state = State::Done;
                    Poll::Ready(conv(r, res))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl<O> FusedFuture for OpFuture<O> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl<O> Drop for OpFuture<O> {
    fn drop(&mut self) {
        if let State::Pending { ctl, sh, .. } = &self.state {
            if ctl.abandon() {
                let _ = sh.cancel(ctl);
            }
        }
    }
}

impl<O> std::fmt::Debug for OpFuture<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match &self.state {
            State::Pending { ctl, .. } => format!("Pending({:?})", ctl.phase()),
            State::Ready(_) => "Ready".to_string(),
            State::Done => "Done".to_string(),
        };
        f.debug_struct("OpFuture").field("state", &s).finish()
    }
}
