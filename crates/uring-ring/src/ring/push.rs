//! Pushing SQEs into the SQ (the `unsafe` hand-over of the ops' memory),
//! and booking pushed SQEs for their hand-off stamp.

use io_uring::squeue;

use crate::completion::Completion;
use crate::config::RingKind;
use crate::slots::SlotId;

use super::Ring;

impl<T> Ring<T> {
    #[inline(always)]
    pub(super) fn push(&mut self, sqes: &[squeue::Entry]) -> bool {
        let mut sq = self.ring.submission();
        // SAFETY: every pointer in these SQEs refers to memory owned by a
        // slot (buffers, iovec arrays, paths, statx boxes, timespecs) or by
        // the caller's registered buffers, and slots keep it alive until the
        // op's CQE is reaped (or leak it if the ring is dropped first).
        unsafe { sq.push_multiple(sqes).is_ok() }
    }

    /// Pushes SQEs whose room `admit` guaranteed. If that somehow fails, the
    /// slots are completed locally with `-EAGAIN` so nothing is lost.
    #[inline(always)]
    pub(super) fn push_or_unwind(&mut self, sqes: &[squeue::Entry], ids: &[SlotId]) -> bool {
        if self.push(sqes) {
            return true;
        }
        debug_assert!(false, "SQ room vanished between admit and push");
        for id in ids {
            if let Some(f) = self.slots.remove(*id) {
                let (result, resources) = f.held.into_resources(-libc::EAGAIN);
                self.ready.push_back(Completion {
                    token: f.token,
                    slot: *id,
                    result,
                    resources,
                    // Never reached the kernel.
                    latency_ns: 0,
                });
            }
        }
        false
    }

    /// Books SQEs just pushed (their `user_data`s, in SQ order). Normal
    /// rings stamp their ops when an enter hands them over; with SQPOLL the
    /// poller may take them as soon as they are pushed, so they are stamped
    /// now.
    #[inline(always)]
    pub(super) fn note_pushed(&mut self, uds: &[u64]) {
        self.queued += uds.len() as u32;
        if self.kind == RingKind::SqPoll {
            let now = self.now_ns();
            self.gaps.on_handoff(now);
            for &ud in uds {
                if let Some(f) = SlotId::from_u64(ud).and_then(|id| self.slots.get_mut(id)) {
                    f.submit_ns = now;
                }
            }
        } else {
            self.unstamped.extend_from_slice(uds);
        }
    }
}
