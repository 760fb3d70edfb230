//! Shutdown: [`Ring::drain_for_shutdown`] / [`Ring::drain_with_timeout`]
//! (cancel everything, reap until nothing is owed) and `Drop`, which
//! drains and leaks what the kernel may still write into.

use std::io;
use std::time::{Duration, Instant};

use crate::completion::Completion;

use super::{is_transient, Ring};

/// How long [`Ring::drain_for_shutdown`] waits for cancelled ops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl<T> Ring<T> {
    /// Cancels every op in flight and reaps until each has produced its one
    /// completion (into `out`) and no internal request is outstanding.
    /// Gives up after [`DRAIN_TIMEOUT`] with `TimedOut` (ops that ignore
    /// cancellation, e.g. a stuck device).
    pub fn drain_for_shutdown(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        self.drain_with_timeout(out, DRAIN_TIMEOUT)
    }

    /// [`drain_for_shutdown`](Self::drain_for_shutdown) with a custom bound.
    pub fn drain_with_timeout(
        &mut self,
        out: &mut Vec<Completion<T>>,
        timeout: Duration,
    ) -> io::Result<()> {
        // A year is "forever" here and cannot overflow `Instant`.
        let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 86_400));
        for id in self.slots.live_ids() {
            // Ignore errors: without async cancel we can still wait.
            let _ = self.cancel(id);
        }
        loop {
            self.drain_ready(out);
            self.issue_deferred_cancels();
            if self.queued > 0 {
                let _ = self.submit_pending(false);
            }
            self.reap_cq(out);
            self.drain_ready(out);
            if self.slots.len() == 0 && self.internal == 0 && self.queued == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} ops and {} internal requests still in flight after {:?}",
                        self.slots.len(),
                        self.internal,
                        timeout
                    ),
                ));
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            let t = if self.ext_arg { Some(slice) } else { None };
            match self.enter(1, true, t) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) || is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if self.slots.len() == 0 && self.internal == 0 {
            return;
        }
        let mut sink = Vec::new();
        let _ = self.drain_for_shutdown(&mut sink);
        drop(sink);
        if self.slots.len() > 0 {
            // The kernel may still write into these resources: leak them
            // rather than free memory under an in-flight op.
            std::mem::forget(self.slots.take_all());
        }
    }
}
