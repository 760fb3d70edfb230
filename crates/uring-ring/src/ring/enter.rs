//! Handing SQEs to the kernel: [`Ring::flush`], the batch threshold,
//! `io_uring_enter` with its retries, and the hand-off stamp of the ops it
//! submits.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::config::RingKind;
use crate::slots::SlotId;
use crate::waiter::{self, ENTER_GETEVENTS, ENTER_SQ_WAKEUP};

use super::{is_transient, Ring, RETRIES};

impl<T> Ring<T> {
    /// Hands every queued SQE to the kernel. Returns how many were submitted.
    pub fn flush(&mut self) -> io::Result<u32> {
        self.issue_deferred_cancels();
        self.submit_pending(false)
    }

    /// Stamps the ops of the first `consumed` unstamped SQEs (just taken by
    /// the kernel) with `now` and forgets those SQEs.
    fn stamp_handed_off(&mut self, consumed: u32, now: u64) {
        let n = (consumed as usize).min(self.unstamped.len());
        for &ud in &self.unstamped[..n] {
            if let Some(f) = SlotId::from_u64(ud).and_then(|id| self.slots.get_mut(id)) {
                f.submit_ns = now;
            }
        }
        if n == self.unstamped.len() {
            self.unstamped.clear();
        } else {
            self.unstamped.drain(..n);
        }
    }

    #[inline(always)]
    pub(super) fn after_push(&mut self) {
        if self.queued >= self.batch_threshold {
            // Errors leave the SQEs queued; flush/poll/wait report them.
            let _ = self.submit_pending(false);
        }
    }

    /// One `io_uring_enter`: submits what is queued, optionally waits for
    /// `min_complete` CQEs (GETEVENTS also runs pending completion work).
    pub(super) fn enter(
        &mut self,
        min_complete: u32,
        getevents: bool,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let to_submit = self.queued;
        let mut flags = 0;
        if getevents || min_complete > 0 {
            flags |= ENTER_GETEVENTS;
        }
        if self.kind == RingKind::SqPoll {
            // The SQEs are already visible to the poller thread.
            self.stats.sqes_submitted += u64::from(to_submit);
            if to_submit > 0 {
                self.stats.submit_calls += 1;
            }
            self.queued = 0;
            let need_wakeup = self.ring.submission().need_wakeup();
            if need_wakeup {
                flags |= ENTER_SQ_WAKEUP;
            } else if flags == 0 {
                return Ok(());
            }
            self.stats.enter_calls += 1;
            waiter::enter(
                self.ring.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                timeout,
            )
            .map(|_| ())
        } else {
            debug_assert_eq!(self.unstamped.len(), to_submit as usize);
            // The hand-off moment: one clock read for every SQE it takes.
            let handed_off_ns = if to_submit > 0 { self.now_ns() } else { 0 };
            self.stats.enter_calls += 1;
            let res = waiter::enter(
                self.ring.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                timeout,
            );
            let left = self.ring.submission().len() as u32;
            let consumed = to_submit.saturating_sub(left);
            self.queued = left;
            self.stats.sqes_submitted += u64::from(consumed);
            if consumed > 0 {
                self.stats.submit_calls += 1;
                self.stamp_handed_off(consumed, handed_off_ns);
                self.gaps.on_handoff(handed_off_ns);
            }
            res.map(|_| ())
        }
    }

    /// Submits everything queued (retrying transient errors). With
    /// `getevents`, enters even when nothing is queued.
    pub(super) fn submit_pending(&mut self, getevents: bool) -> io::Result<u32> {
        if self.queued == 0 && !getevents {
            return Ok(0);
        }
        let start = self.queued;
        let mut tries = 0;
        loop {
            let before = self.queued;
            match self.enter(0, getevents, None) {
                Ok(()) => {
                    if self.queued == 0 || self.queued == before {
                        break;
                    }
                }
                Err(e) if is_transient(&e) => {
                    tries += 1;
                    if e.raw_os_error() != Some(libc::EINTR) {
                        // The kernel wants us to reap before it takes more.
                        self.reap_into_ready();
                    }
                    if tries >= RETRIES {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(start.saturating_sub(self.queued))
    }
}
