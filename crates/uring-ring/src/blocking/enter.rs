//! Handing ops to the pool: [`BlockingRing::flush`], the batch threshold,
//! and the hand-off itself (one "enter": stamps, statistics, waking or
//! starting workers and the link-timeout timer).

use std::io;

use super::{shared, BlockingRing};

impl<T> BlockingRing<T> {
    /// Hands every queued op to the pool. Returns how many.
    pub fn flush(&mut self) -> io::Result<u32> {
        Ok(self.hand_off())
    }

    pub(super) fn after_push(&mut self) {
        if self.pending.len() as u32 >= self.batch_threshold {
            self.hand_off();
        }
    }

    /// Hands every pending op to the pool in one go (one "enter") and wakes
    /// or starts workers for them. Returns how many ops were handed off.
    pub(super) fn hand_off(&mut self) -> u32 {
        if self.pending.is_empty() {
            return 0;
        }
        let n = self.pending.len() as u32;
        let now = self.now_ns();
        let mut timers = false;
        let (wake, spawn, start_timer) = {
            let mut st = self.shared.lock();
            for job in self.pending.drain(..) {
                if let Some(e) = self.slots.get_mut(job.id) {
                    e.submit_ns = now;
                }
                timers |= job.deadline_ns.is_some();
                if let Err(job) = st.enqueue(job) {
                    // Unreachable (the slot table hands out each index
                    // once), but never lose an op: fail it.
                    let id = job.id;
                    let res = job.into_cancelled();
                    st.complete(id, -libc::EAGAIN, res, now);
                }
            }
            let (wake, spawn) = st.plan_workers();
            let start_timer = timers && !st.timer_running;
            if start_timer {
                st.timer_running = true;
            }
            (wake, spawn, start_timer)
        };
        self.stats.enter_calls += 1;
        self.stats.submit_calls += 1;
        self.stats.sqes_submitted += u64::from(n);
        self.gaps.on_handoff(now);
        self.shared.wake_workers(wake);
        if timers && !start_timer {
            self.shared.wake_timer();
        }
        if start_timer && shared::spawn_timer(&self.shared).is_err() {
            // Workers still drop ops whose deadline passed before they start.
            self.shared.lock().timer_running = false;
        }
        let mut failed = 0;
        for _ in 0..spawn {
            if shared::spawn_worker(&self.shared).is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            let mut st = self.shared.lock();
            st.workers = st.workers.saturating_sub(failed);
            st.starting = st.starting.saturating_sub(failed);
            if st.workers == 0 {
                // No thread to run anything: fail what is queued rather
                // than leave it hanging.
                while let Some(job) = st.pop_next() {
                    let id = job.id;
                    let res = job.into_cancelled();
                    st.complete(id, -libc::EAGAIN, res, now);
                }
                drop(st);
                self.shared.signal_completion();
            }
        }
        n
    }
}
