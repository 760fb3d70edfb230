//! Cancellation: [`Ring::cancel`], the per-op [`CancelState`], and the
//! cancels deferred for CQ budget or SQ room (issued async, or
//! synchronously when the CQ has no room for their CQE).

use std::io;

use io_uring::{opcode, types};

use crate::config::RingKind;
use crate::op::OpKind;
use crate::slots::SlotId;

use super::{Ring, UD_CANCEL};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CancelState {
    None,
    /// Asked for, but waiting for CQ budget or SQ room.
    Deferred,
    /// The cancel SQE has been pushed.
    Issued,
}

impl<T> Ring<T> {
    /// Asks the kernel to cancel the op in `slot`. The op still completes
    /// exactly once: with `-ECANCELED` if the cancel won, else with its own
    /// result. Cancelling twice is a no-op. `NotFound` if the slot holds no
    /// op any more (already completed, or a stale id).
    pub fn cancel(&mut self, slot: SlotId) -> io::Result<()> {
        if !self.supports(OpKind::AsyncCancel) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "IORING_OP_ASYNC_CANCEL is not supported by this kernel",
            ));
        }
        let Some(f) = self.slots.get_mut(slot) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{slot:?} has no operation in flight"),
            ));
        };
        if f.cancel != CancelState::None {
            return Ok(());
        }
        f.cancel = CancelState::Deferred;
        self.deferred_cancels.push(slot);
        if self.issue_deferred_cancels() > 0 {
            // Cancels are rare and urgent: do not wait for the batch.
            let _ = self.submit_pending(false);
        }
        Ok(())
    }

    /// Pushes cancels that were waiting for budget or SQ room. Returns how
    /// many were pushed.
    pub(super) fn issue_deferred_cancels(&mut self) -> u32 {
        let mut pushed = 0;
        while let Some(&id) = self.deferred_cancels.last() {
            let live = matches!(self.slots.get(id), Some(f) if f.cancel == CancelState::Deferred);
            if !live {
                self.deferred_cancels.pop();
                continue;
            }
            if !self.budget_allows(1) {
                // No CQ room for the cancel's own CQE: cancel synchronously,
                // which posts no CQE of its own.
                if self.sync_cancel(id) {
                    self.deferred_cancels.pop();
                    pushed += 1;
                    continue;
                }
                break;
            }
            if !self.ensure_sq_room(1) {
                break;
            }
            let sqe = opcode::AsyncCancel::new(id.as_u64())
                .build()
                .user_data(UD_CANCEL);
            if !self.push(&[sqe]) {
                break;
            }
            self.deferred_cancels.pop();
            self.internal += 1;
            self.note_pushed(&[UD_CANCEL]);
            pushed += 1;
            if let Some(f) = self.slots.get_mut(id) {
                f.cancel = CancelState::Issued;
            }
        }
        pushed
    }

    /// `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0+) for `id`, waiting at most
    /// 1 ms for an op that is already running. Returns false when the cancel
    /// could not be attempted (then it stays deferred).
    fn sync_cancel(&mut self, id: SlotId) -> bool {
        if !self.sync_cancel_ok {
            return false;
        }
        // Only submitted requests can be found.
        if self.queued > 0 && self.submit_pending(false).is_err() {
            return false;
        }
        let res = self.ring.submitter().register_sync_cancel(
            Some(types::Timespec::new().nsec(1_000_000)),
            types::CancelBuilder::user_data(id.as_u64()),
        );
        let done = match res {
            Ok(()) => true,
            Err(e) => match e.raw_os_error() {
                // Running in a worker (it finishes by itself) or already
                // completed (its CQE is waiting in the CQ).
                Some(libc::ETIME) | Some(libc::EALREADY) => true,
                // With SQPOLL the poller may not have picked the op up yet.
                Some(libc::ENOENT) => self.kind == RingKind::Normal,
                Some(libc::EINTR) => false,
                _ => {
                    self.sync_cancel_ok = false;
                    false
                }
            },
        };
        if done {
            if let Some(f) = self.slots.get_mut(id) {
                f.cancel = CancelState::Issued;
            }
        }
        done
    }
}
