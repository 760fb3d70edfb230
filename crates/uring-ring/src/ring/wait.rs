//! Handing out completions: [`Ring::poll`] (non-blocking) and
//! [`Ring::wait`] (blocking, with an optional timeout).

use std::io;
use std::time::{Duration, Instant};

use crate::completion::Completion;

use super::{is_transient, Ring, RETRIES};

impl<T> Ring<T> {
    /// Non-blocking: flushes queued SQEs, then moves every available
    /// completion into `out` and returns how many. If the CQ is empty while
    /// ops are in flight, it enters the kernel with `GETEVENTS` (min 0) so
    /// pending completion work runs, and reaps again.
    ///
    /// On an error, completions reaped before it are still in `out`.
    pub fn poll(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<usize> {
        let mut n = self.drain_ready(out);
        self.issue_deferred_cancels();
        let mut entered = false;
        let mut err = None;
        if self.queued > 0 {
            entered = true;
            if let Err(e) = self.submit_pending(true) {
                err = Some(e);
            }
        }
        n += self.reap_cq(out);
        if n == 0 && !entered && (self.slots.len() > 0 || self.internal > 0) {
            match self.enter(0, true, None) {
                Ok(()) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => err = Some(e),
            }
            n += self.reap_cq(out);
        }
        n += self.drain_ready(out);
        match err {
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    /// Flushes, then blocks until at least `min` completions were moved into
    /// `out` or `timeout` passed (`None` = no timeout). `min` is capped at
    /// what can still complete, so it never waits for ops that do not exist.
    /// Returns how many completions were added (possibly fewer than `min` on
    /// timeout; a timeout is not an error).
    pub fn wait(
        &mut self,
        min: u32,
        timeout: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> io::Result<usize> {
        if min == 0 || timeout == Some(Duration::ZERO) {
            return self.poll(out);
        }
        if timeout.is_some() && !self.ext_arg {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "waiting with a timeout needs IORING_FEAT_EXT_ARG (Linux 5.11+)",
            ));
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut got = self.drain_ready(out) as u32;
        self.issue_deferred_cancels();
        got += self.reap_cq(out) as u32;
        let mut errors = 0;
        loop {
            let target = min.min(got + self.slots.len());
            if got >= target {
                if self.queued > 0 {
                    let _ = self.submit_pending(false);
                }
                break;
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        if self.queued > 0 {
                            let _ = self.submit_pending(false);
                        }
                        break;
                    }
                    Some(d - now)
                }
                None => None,
            };
            // Deferred cancels are issued between waits as CQ budget frees
            // up, so wake on every CQE while some are pending.
            let want = if self.deferred_cancels.is_empty() {
                target - got
            } else {
                1
            };
            match self.enter(want, true, remaining) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                // A signal: wait again (the deadline still applies).
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The kernel wants the CQ reaped first (done just below).
                Err(e) if is_transient(&e) => {
                    errors += 1;
                    if errors > RETRIES {
                        got += self.reap_cq(out) as u32;
                        break;
                    }
                }
                Err(e) => {
                    got += self.reap_cq(out) as u32;
                    if got > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
            got += self.reap_cq(out) as u32;
            got += self.drain_ready(out) as u32;
            self.issue_deferred_cancels();
        }
        Ok(got as usize)
    }
}
