//! Counters a ring keeps about its own work.

use crate::gaps::GapStats;

/// Cumulative counters since the ring was created. Take two snapshots and
/// subtract to get per-interval figures (e.g. SQEs per `io_uring_enter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `io_uring_enter` calls made by the ring itself (submit and/or reap).
    pub enter_calls: u64,
    /// SQEs handed to the kernel, internal ones (link timeouts, cancels) included.
    pub sqes_submitted: u64,
    /// Completions handed to the caller (internal CQEs not counted).
    pub completions: u64,
    /// `io_uring_enter` calls that submitted at least one SQE (with SQPOLL:
    /// hand-offs of queued SQEs to the kernel's poller thread, which may
    /// need no syscall at all).
    pub submit_calls: u64,
    /// `io_uring_enter` calls made through [`Waiter`](crate::Waiter)s.
    pub waiter_enter_calls: u64,
    /// CQEs that matched no live slot (stale generation); should stay 0.
    pub stale_cqes: u64,
    /// Gaps between completions while ops were in flight (see
    /// [`CompletionGaps`](crate::CompletionGaps)).
    pub gaps: GapStats,
}

impl RingStats {
    /// Average SQEs per submitting `io_uring_enter` call (0 when none).
    pub fn sqes_per_submit(&self) -> f64 {
        if self.submit_calls == 0 {
            0.0
        } else {
            self.sqes_submitted as f64 / self.submit_calls as f64
        }
    }
}
