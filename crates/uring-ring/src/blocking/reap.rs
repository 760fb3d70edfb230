//! Reaping: moving finished ops out of the shared completion queue into
//! completions, freeing their slots.

use std::time::Instant;

use crate::completion::Completion;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    /// Moves finished ops from the shared queue into `out`, freeing their
    /// slots, after blocking for one until the deadline when `wait` is
    /// `Some` (`Some(None)`: no deadline). Consumes pending notifies.
    pub(super) fn reap(
        &mut self,
        wait: Option<Option<Instant>>,
        out: &mut Vec<Completion<T>>,
    ) -> usize {
        {
            let mut st = self.shared.lock();
            if let Some(deadline) = wait {
                st = self.shared.wait_done(st, deadline);
            }
            st.notifies = 0;
            std::mem::swap(&mut st.done, &mut self.reaped);
        }
        let mut n = 0;
        let mut last_end = 0;
        for d in self.reaped.drain(..) {
            last_end = last_end.max(d.end_ns);
            match self.slots.remove(d.id) {
                Some(e) => {
                    out.push(Completion {
                        token: e.token,
                        slot: d.id,
                        result: d.result,
                        resources: d.resources,
                        latency_ns: d.end_ns.saturating_sub(e.submit_ns),
                    });
                    n += 1;
                }
                None => self.stats.stale_cqes += 1,
            }
        }
        self.stats.completions += n as u64;
        if n > 0 {
            let busy = self.slots.len() as usize > self.pending.len();
            self.gaps.on_reap(last_end, busy);
        }
        n
    }
}
