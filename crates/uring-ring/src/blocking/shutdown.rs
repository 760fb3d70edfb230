//! Shutdown: [`BlockingRing::drain_for_shutdown`] /
//! [`BlockingRing::drain_with_timeout`] (cancel what has not started, reap
//! until nothing is owed) and `Drop`, which cancels, stops the pool and
//! waits for running syscalls.

use std::io;
use std::time::{Duration, Instant};

use crate::completion::Completion;
use crate::ring::DRAIN_TIMEOUT;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    /// Cancels every op that has not started, waits for running ones and
    /// reaps until each op in flight has produced its one completion (into
    /// `out`). Gives up after [`DRAIN_TIMEOUT`] with `TimedOut` (a syscall
    /// that never returns, e.g. a read from an idle pipe).
    pub fn drain_for_shutdown(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        self.drain_with_timeout(out, DRAIN_TIMEOUT)
    }

    /// [`drain_for_shutdown`](Self::drain_for_shutdown) with a custom bound.
    pub fn drain_with_timeout(
        &mut self,
        out: &mut Vec<Completion<T>>,
        timeout: Duration,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 86_400));
        self.cancel_everything();
        loop {
            self.reap(None, out);
            if self.slots.len() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} ops still running after {:?}", self.slots.len(), timeout),
                ));
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            self.reap(Some(Some(now + slice)), out);
        }
    }
}

impl<T> Drop for BlockingRing<T> {
    fn drop(&mut self) {
        let now = self.now_ns();
        let mut st = self.shared.lock();
        self.pending.clear();
        st.cancel_all(now);
        st.shutdown = true;
        drop(st);
        self.shared.wake_all();
        // No syscall of ours may start or still run once the caller goes
        // on to close its files.
        let _ = self.shared.wait_idle(Instant::now() + DRAIN_TIMEOUT);
        // Hand the finished ops' resources back (drop them) now rather than
        // when the last worker thread lets go of the shared state.
        let done = std::mem::take(&mut self.shared.lock().done);
        drop(done);
    }
}
