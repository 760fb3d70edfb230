//! Cancellation: [`BlockingRing::cancel`] (ops not handed off or not
//! started complete with `-ECANCELED`), and cancelling everything for
//! shutdown.

use std::io;

use crate::op::OpKind;
use crate::slots::SlotId;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    /// Cancels the op in `slot`. If it has not started it completes with
    /// `-ECANCELED` (at once: the completion is ready for the next
    /// `poll`); if its syscall is running it completes with its own result.
    /// Either way exactly one completion. Cancelling twice is a no-op;
    /// `NotFound` if the slot holds no op (already reaped, or stale).
    pub fn cancel(&mut self, slot: SlotId) -> io::Result<()> {
        if !self.supports(OpKind::AsyncCancel) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "cancellation is disabled on this ring",
            ));
        }
        if self.slots.get(slot).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{slot:?} has no operation in flight"),
            ));
        }
        let now = self.now_ns();
        if let Some(pos) = self.pending.iter().position(|j| j.id == slot) {
            // Not handed off yet: complete it (and its link second) here.
            let job = self.pending.remove(pos);
            let second = job
                .link
                .and_then(|l| self.pending.iter().position(|j| j.id == l))
                .map(|p| self.pending.remove(p));
            let mut st = self.shared.lock();
            st.finish_cancelled(job, now);
            if let Some(s) = second {
                st.finish_cancelled(s, now);
            }
            drop(st);
            self.shared.signal_completion();
            return Ok(());
        }
        let cancelled = self.shared.lock().cancel(slot, now);
        if cancelled {
            self.shared.signal_completion();
        }
        Ok(())
    }

    /// Cancels the ops not handed off and those not started.
    pub(super) fn cancel_everything(&mut self) {
        let now = self.now_ns();
        let mut st = self.shared.lock();
        for job in self.pending.drain(..) {
            st.finish_cancelled(job, now);
        }
        st.cancel_all(now);
        drop(st);
        self.shared.signal_completion();
    }
}
