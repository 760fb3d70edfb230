//! Admission: checking an op against the kernel's support and making room
//! for it (free slots, CQ budget, SQ entries), flushing and reaping as
//! needed.

use std::os::fd::AsRawFd;

use crate::completion::SubmitErrorKind;
use crate::config::RingKind;
use crate::op::Op;
use crate::waiter::{self, ENTER_SQ_WAIT, ENTER_SQ_WAKEUP};

use super::{Ring, RETRIES};

impl<T> Ring<T> {
    #[inline(always)]
    pub(super) fn check_op(&self, op: &Op) -> Result<(), SubmitErrorKind> {
        let kind = op.kind();
        if !self.supports(kind) {
            return Err(SubmitErrorKind::Unsupported(kind));
        }
        op.validate().map_err(SubmitErrorKind::InvalidInput)
    }

    #[inline(always)]
    pub(super) fn budget_allows(&self, cqes: u32) -> bool {
        self.slots.len() + self.internal + cqes <= self.cq_entries
    }

    /// Makes sure `slots` slots, `cqes` CQ budget and `sqes` SQ entries are
    /// available, flushing/reaping as needed.
    #[inline(always)]
    pub(super) fn admit(
        &mut self,
        slots: u32,
        cqes: u32,
        sqes: u32,
    ) -> Result<(), SubmitErrorKind> {
        if self.slots.available() < slots {
            return Err(SubmitErrorKind::Full);
        }
        if !self.budget_allows(cqes) {
            // Internal CQEs (cancels) may be waiting in the CQ: reap them.
            let _ = self.submit_pending(false);
            self.reap_into_ready();
            if !self.budget_allows(cqes) {
                return Err(SubmitErrorKind::Full);
            }
        }
        if !self.ensure_sq_room(sqes) {
            return Err(SubmitErrorKind::Full);
        }
        Ok(())
    }

    #[inline(always)]
    pub(super) fn ensure_sq_room(&mut self, n: u32) -> bool {
        // Without SQPOLL only our own `io_uring_enter` consumes SQEs, so the
        // SQ holds exactly the `queued` ones: no need to read its head.
        if self.kind == RingKind::Normal && self.sq_entries - self.queued >= n {
            return true;
        }
        self.make_sq_room(n)
    }

    /// [`ensure_sq_room`](Self::ensure_sq_room) when the SQ may be full
    /// (out of line: the submit path inlines only the check above).
    #[inline(never)]
    fn make_sq_room(&mut self, n: u32) -> bool {
        for _ in 0..RETRIES {
            {
                let sq = self.ring.submission();
                if (sq.capacity() - sq.len()) as u32 >= n {
                    return true;
                }
            }
            if self.kind == RingKind::SqPoll {
                // The poller thread has not consumed the SQ yet: wait for room.
                let mut flags = ENTER_SQ_WAIT;
                if self.ring.submission().need_wakeup() {
                    flags |= ENTER_SQ_WAKEUP;
                }
                self.stats.enter_calls += 1;
                let _ = waiter::enter(self.ring.as_raw_fd(), 0, 0, flags, None);
            } else if self.submit_pending(false).is_err() {
                self.reap_into_ready();
            }
        }
        false
    }
}
