//! Reaping: moving CQEs out of the CQ into completions (written in place
//! into the caller's vector), and the queue of completions reaped while
//! submitting.

use crate::completion::Completion;
use crate::slots::SlotId;

use super::Ring;

impl<T> Ring<T> {
    #[inline]
    pub(super) fn drain_ready(&mut self, out: &mut Vec<Completion<T>>) -> usize {
        let n = self.ready.len();
        // Usually empty (only completions reaped while submitting wait
        // here): no drain set up and torn down twice per poll for nothing.
        if n > 0 {
            out.extend(self.ready.drain(..));
        }
        n
    }

    pub(super) fn reap_into_ready(&mut self) {
        let mut tmp = Vec::new();
        self.reap_cq(&mut tmp);
        self.ready.extend(tmp);
    }

    /// Moves every CQE out of the CQ: user ones into `out`, internal ones
    /// just release their budget. Returns the number of user completions.
    ///
    /// One clock read per call that finds CQEs: every completion reaped
    /// together gets the same reap time.
    pub(super) fn reap_cq(&mut self, out: &mut Vec<Completion<T>>) -> usize {
        let mut cq = self.ring.completion();
        if cq.is_empty() {
            return 0;
        }
        // Read after the CQ tail was loaded: no CQE seen here is younger.
        let now = self.clock.now_ns();
        // Every completion is written straight into `out`'s spare room
        // (reserved here for all of them), field by field: a `Completion`
        // assembled on the stack and then pushed was copied with wide loads
        // right after its narrow stores, a store-forwarding stall per op
        // (most of this function's time in `perf annotate`).
        let room = cq.len();
        out.reserve(room);
        let base = out.len();
        let spare = out.spare_capacity_mut().as_mut_ptr();
        let mut n = 0;
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let result = cqe.result();
            let Some(id) = SlotId::from_u64(ud) else {
                self.internal = self.internal.saturating_sub(1);
                continue;
            };
            // Never more completions than CQEs seen (`room`).
            debug_assert!(n < room);
            // SAFETY: `n < room`, and `reserve(room)` made room for `room`
            // more elements past `base` (`out` does not grow or move in
            // this loop): element `n` of the spare capacity is in bounds
            // and unused. Each of its fields is written once; the elements
            // count only after `set_len` below, so nothing reads or drops
            // one before it is whole.
            let dst = unsafe { (*spare.add(n)).as_mut_ptr() };
            // SAFETY: the closure moves each part of the slot's value out
            // once (token and held into the completion, the timeout
            // dropped; the rest is plain data) and cannot panic: a panic
            // in a buffer's `set_init` is caught in `into_resources` (the
            // op completes with EIO). `dst` is valid for writes (above).
            // The completion is written right from the slot, never
            // assembled on the stack: each such copy was a
            // store-forwarding stall per op.
            let taken = unsafe {
                self.slots.remove_with(id, |f| {
                    let held = std::ptr::read(std::ptr::addr_of!((*f).held));
                    let (result, resources) = held.into_resources(result);
                    std::ptr::addr_of_mut!((*dst).token)
                        .write(std::ptr::read(std::ptr::addr_of!((*f).token)));
                    std::ptr::addr_of_mut!((*dst).slot).write(id);
                    std::ptr::addr_of_mut!((*dst).result).write(result);
                    std::ptr::addr_of_mut!((*dst).latency_ns)
                        .write(now.saturating_sub((*f).submit_ns));
                    std::ptr::addr_of_mut!((*dst).resources).write(resources);
                    drop(std::ptr::read(std::ptr::addr_of!((*f).timeout)));
                })
            };
            match taken {
                Some(()) => n += 1,
                None => self.stats.stale_cqes += 1,
            }
        }
        drop(cq);
        // SAFETY: the `n` spare elements after `base` were fully written
        // above (all five fields each), and `base + n <= capacity`.
        unsafe { out.set_len(base + n) };
        self.stats.completions += n as u64;
        if n > 0 {
            // Ops still in the kernel keep a gap running (queued SQEs are
            // not the device's yet).
            let busy = self.slots.len() > self.queued;
            self.gaps.on_reap(now, busy);
        }
        n
    }
}
