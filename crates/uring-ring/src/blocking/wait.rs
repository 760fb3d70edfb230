//! Handing out completions: [`BlockingRing::poll`] (non-blocking) and
//! [`BlockingRing::wait`] (blocking, with an optional timeout).

use std::io;
use std::time::{Duration, Instant};

use crate::completion::Completion;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    /// Non-blocking: hands queued ops off, then moves every finished op's
    /// completion into `out` and returns how many.
    pub fn poll(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<usize> {
        self.hand_off();
        Ok(self.reap(None, out))
    }

    /// Hands queued ops off, then blocks until at least `min` completions
    /// were moved into `out` or `timeout` passed (`None` = no timeout).
    /// `min` is capped at what can still complete. A timeout is not an
    /// error.
    pub fn wait(
        &mut self,
        min: u32,
        timeout: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> io::Result<usize> {
        if min == 0 || timeout == Some(Duration::ZERO) {
            return self.poll(out);
        }
        self.hand_off();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut got = self.reap(None, out) as u32;
        loop {
            let target = min.min(got + self.slots.len());
            if got >= target {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.stats.enter_calls += 1;
            got += self.reap(Some(deadline), out) as u32;
        }
        Ok(got as usize)
    }
}
