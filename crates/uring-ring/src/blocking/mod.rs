//! A fallback backend with the same API as [`Ring`](crate::Ring) that runs
//! every op as a blocking syscall on a pool of worker threads.
//!
//! Use it where io_uring is unavailable: Docker's default seccomp profile
//! blocks `io_uring_setup`, some kernels set `kernel.io_uring_disabled`, old
//! kernels lack it. [`AnyRing`](crate::AnyRing) picks it automatically.
//!
//! # Model
//!
//! - [`BlockingRing::submit`] takes a slot (same slot table, same
//!   [`SlotId`]s as the io_uring ring) and queues the op locally; once
//!   [`queued`](BlockingRing::queued) reaches the batch threshold (or on
//!   `flush`/`poll`/`wait`) the queued ops are handed to the pool in one go.
//!   A hand-off counts as one `enter_calls`/`submit_calls` in [`RingStats`],
//!   its ops as `sqes_submitted`, so batching statistics read the same.
//! - Workers are started lazily, one per op waiting, up to
//!   [`max_workers`](BlockingRing::max_workers) (default
//!   `min(capacity, 256)`), and exit after 10 s idle. Since at most
//!   [`capacity`](BlockingRing::capacity) ops are in flight and a caller's
//!   in-flight limit bounds that further, the limit governs how many
//!   syscalls run at once.
//! - Every op produces exactly one [`Completion`] with the io_uring result
//!   convention (`>= 0`, or `-errno`), its resources handed back (reads with
//!   the init length set).
//!
//! # Differences from io_uring
//!
//! - `latency_ns` runs from the hand-off of the op to the pool (as with
//!   io_uring: one timestamp per hand-off, shared by every op in it; time
//!   spent queued locally waiting for the batch is excluded) to the moment
//!   the worker's syscall returned (io_uring: to the reap), so the reaper's
//!   own delay is excluded too. An op cancelled before its hand-off reports
//!   0.
//! - [`cancel`](BlockingRing::cancel) of an op that has not started
//!   completes it with `-ECANCELED` at once; an op whose syscall is already
//!   running cannot be interrupted and completes with its own result.
//! - A link timeout cancels the op with `-ECANCELED` only if it has not
//!   started by the deadline; a syscall already running completes with its
//!   result, however long it takes (io_uring would interrupt it).
//! - [`Fd::Fixed`] and the fixed buffer of
//!   `ReadFixed`/`WriteFixed` are resolved when the op is submitted (io_uring:
//!   when the kernel issues it). Registered files are duplicates of the
//!   caller's fds, so (as with io_uring) closing the original does not
//!   invalidate the table entry; an op keeps its entry's file open until it
//!   completes. `Close` of a fixed file clears the entry at submit.
//! - Offsets: `u64::MAX` means the file position (as io_uring's -1); on a
//!   pipe or socket the offset is ignored (as io_uring does); an offset above
//!   `i64::MAX` fails with `-EINVAL`.
//! - [`kind`](BlockingRing::kind) reports [`RingKind::Normal`]; SQPOLL is
//!   ignored. Use [`AnyRing::backend`](crate::AnyRing::backend) to tell the
//!   backends apart.
//! - Dropping the ring cancels the ops that have not started and waits (up to
//!   [`DRAIN_TIMEOUT`]) for running syscalls, so none
//!   starts or runs after the caller closes its files. Workers own the
//!   buffers of running ops, so even past that bound nothing is freed under
//!   a syscall.
//!
//! # Layout
//!
//! The type, its construction and its accessors live here; its other
//! methods are grouped by concern as in [`Ring`](crate::Ring)'s module:
//!
//! - `submit`: queuing ops (`submit`, `submit_linked`,
//!   `submit_with_timeout`) and waking waiters (`notify`);
//! - `admit`: checking an op and that slots are free for it;
//! - `slot`: taking a slot for an op and its token, making its job;
//! - `enter`: batching and the hand-off to the pool (`flush`);
//! - `cancel`: `cancel` and cancelling everything for shutdown;
//! - `wait`: handing out completions (`poll`, `wait`);
//! - `reap`: moving finished ops into completions;
//! - `shutdown`: draining for shutdown ([`DRAIN_TIMEOUT`]) and `Drop`;
//! - `register`: emulated registered files and buffers;
//! - `state`, `shared`, `exec`: the pool itself (its state, the lock and
//!   threads around it, and running one op).

mod admit;
mod cancel;
mod enter;
mod exec;
mod reap;
mod register;
mod shared;
mod shutdown;
mod slot;
pub(crate) mod state;
mod submit;
mod wait;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

pub(crate) use shared::Shared;

#[cfg(doc)]
use crate::completion::Completion;
use crate::config::{RingConfig, RingKind};
use crate::gaps::CompletionGaps;
#[cfg(doc)]
use crate::op::Fd;
use crate::op::OpKind;
#[cfg(doc)]
use crate::ring::DRAIN_TIMEOUT;
use crate::slots::{SlotId, SlotTable};
use crate::stats::RingStats;
use crate::waiter::Waiter;
use state::{Done, Job, State};

/// Default cap on worker threads per ring (also bounded by the capacity).
pub const MAX_WORKERS: u32 = 256;

/// The caller's side of an op in flight.
struct Entry<T> {
    token: T,
    /// When the op was handed to the pool; `u64::MAX` before (a completion
    /// from that state reports a latency of 0).
    submit_ns: u64,
}

/// A ring-shaped front end to a pool of threads doing blocking syscalls.
///
/// Same methods, signatures and guarantees as [`Ring`](crate::Ring) (see the
/// [module docs](self) for the differences in semantics). `Send` when
/// `T: Send`; not `Sync` (wrap it in a `Mutex` to share). Tokens never leave
/// the caller's thread: workers only see the ops.
pub struct BlockingRing<T> {
    shared: Arc<Shared>,
    slots: SlotTable<Entry<T>>,
    /// Ops submitted but not handed to the pool yet.
    pending: Vec<Job>,
    batch_threshold: u32,
    supported: u32,
    stats: RingStats,
    /// Gaps between completions while ops are handed off.
    gaps: CompletionGaps,
    waiter: Waiter,
    /// Registered files: duplicates of the caller's fds.
    files: Option<Vec<Option<Arc<OwnedFd>>>>,
    /// Registered buffers: (address, length).
    buffers: Option<Vec<(usize, usize)>>,
    /// Reused between reaps.
    reaped: Vec<Done>,
    fallback_reason: Option<String>,
}

impl<T> std::fmt::Debug for BlockingRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRing")
            .field("capacity", &self.capacity())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .field("batch_threshold", &self.batch_threshold)
            .finish_non_exhaustive()
    }
}

impl<T> BlockingRing<T> {
    /// Creates the backend: `capacity` is `cfg.sq_entries` rounded up to a
    /// power of two (as io_uring would), workers are capped at
    /// `min(capacity, MAX_WORKERS)`. Invalid configs are rejected exactly
    /// as [`Ring::new`](crate::Ring::new) rejects them. No thread is started
    /// until the first op is handed off.
    pub fn new(cfg: &RingConfig) -> io::Result<Self> {
        let (sq, _) = cfg.validate()?;
        Self::with_max_workers(cfg, sq.min(MAX_WORKERS))
    }

    /// [`new`](Self::new) with a custom cap on worker threads (clamped to
    /// `1..=capacity`).
    pub fn with_max_workers(cfg: &RingConfig, max_workers: u32) -> io::Result<Self> {
        let (sq, _) = cfg.validate()?;
        let eventfd = if cfg.eventfd {
            // SAFETY: plain syscall; returns a new fd or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh eventfd nobody else owns.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            None
        };
        let shared = Arc::new(Shared::new(
            State::new(sq, max_workers.clamp(1, sq)),
            eventfd,
        ));
        Ok(BlockingRing {
            waiter: Waiter::blocking(Arc::clone(&shared)),
            shared,
            slots: SlotTable::new(sq),
            pending: Vec::new(),
            batch_threshold: cfg.batch_threshold.clamp(1, sq),
            supported: OpKind::ALL.iter().fold(0, |acc, k| acc | k.bit()),
            stats: RingStats::default(),
            gaps: CompletionGaps::new(),
            files: None,
            buffers: None,
            reaped: Vec::new(),
            fallback_reason: None,
        })
    }

    /// Why [`AnyRing::new`](crate::AnyRing::new) chose this backend (the
    /// io_uring setup error), when it fell back to it.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    pub(crate) fn set_fallback_reason(&mut self, reason: String) {
        self.fallback_reason = Some(reason);
    }

    /// Always [`RingKind::Normal`] (there is no SQ polling to fall back from).
    pub fn kind(&self) -> RingKind {
        RingKind::Normal
    }

    /// Every [`OpKind`] is supported (emulated), unless disabled with
    /// [`disable_op`](Self::disable_op).
    pub fn supports(&self, op: OpKind) -> bool {
        self.supported & op.bit() != 0
    }

    /// Treats `op` as unsupported from now on (as
    /// [`Ring::disable_op`](crate::Ring::disable_op)).
    pub fn disable_op(&mut self, op: OpKind) {
        self.supported &= !op.bit();
    }

    /// See [`Ring::token`](crate::Ring::token).
    pub fn token(&self, slot: SlotId) -> Option<&T> {
        self.slots.get(slot).map(|e| &e.token)
    }

    /// Most ops that can be in flight at once (slots).
    pub fn capacity(&self) -> u32 {
        self.slots.capacity()
    }

    /// Slots taken: ops submitted whose completion was not reaped yet.
    pub fn in_flight(&self) -> u32 {
        self.slots.len()
    }

    /// Ops submitted but not handed to the worker pool yet.
    pub fn queued(&self) -> u32 {
        self.pending.len() as u32
    }

    /// Always 0: finished ops wait in the shared completion queue (their
    /// slots stay taken until reaped), never in a side queue.
    pub fn ready_len(&self) -> usize {
        0
    }

    /// The capacity (the "SQ" of this backend).
    pub fn sq_entries(&self) -> u32 {
        self.capacity()
    }

    /// Twice the capacity, as a ring of the same config would have.
    pub fn cq_entries(&self) -> u32 {
        self.capacity().saturating_mul(2)
    }

    /// Hand off to the pool once this many ops are queued.
    pub fn batch_threshold(&self) -> u32 {
        self.batch_threshold
    }

    /// Sets the batch threshold, clamped to `1..=capacity`. Does not hand
    /// off by itself: the next submit, `flush`, `poll` or `wait` does.
    pub fn set_batch_threshold(&mut self, n: u32) {
        self.batch_threshold = n.clamp(1, self.capacity());
    }

    /// Cap on worker threads.
    pub fn max_workers(&self) -> u32 {
        self.shared.lock().max_workers
    }

    /// Changes the cap on worker threads (clamped to `1..=capacity`).
    /// Existing workers above a lowered cap finish their op and stay until
    /// they idle out.
    pub fn set_max_workers(&mut self, n: u32) {
        let cap = self.capacity();
        self.shared.lock().max_workers = n.clamp(1, cap);
    }

    /// Worker threads alive now.
    pub fn workers(&self) -> u32 {
        self.shared.lock().workers
    }

    /// Ops whose syscall is running now (started by a worker, not finished).
    pub fn running(&self) -> u32 {
        self.shared.lock().running
    }

    /// Most ops that ever ran at the same time (never above
    /// [`max_workers`](Self::max_workers) or the capacity).
    pub fn peak_running(&self) -> u32 {
        self.shared.lock().peak_running
    }

    /// A handle that blocks until completions are waiting, without `&self`.
    pub fn waiter(&self) -> Waiter {
        self.waiter.clone()
    }

    /// Cumulative counters (`enter_calls`: hand-offs plus blocking waits in
    /// [`wait`](Self::wait); `submit_calls`: hand-offs; `sqes_submitted`:
    /// ops handed off).
    pub fn stats(&self) -> RingStats {
        let mut s = self.stats;
        s.waiter_enter_calls = self.waiter.enters();
        s.gaps = self.gaps.stats();
        s
    }

    /// See [`Ring::set_long_gap_ns`](crate::Ring::set_long_gap_ns). A
    /// gap here ends at the latest finish time of the jobs reaped together.
    pub fn set_long_gap_ns(&mut self, ns: u64) {
        self.gaps.set_long_ns(ns);
    }

    /// The eventfd (when [`RingConfig::eventfd`] was set): workers signal it
    /// after every completion, as the kernel does for a ring.
    pub fn eventfd(&self) -> Option<RawFd> {
        self.shared.eventfd()
    }

    /// Nanoseconds since the ring was created (the clock latencies use).
    pub fn now_ns(&self) -> u64 {
        self.shared.now_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_batch_follow_the_config() {
        let r: BlockingRing<()> = BlockingRing::new(&RingConfig {
            sq_entries: 100,
            batch_threshold: 1000,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.capacity(), 128);
        assert_eq!(r.batch_threshold(), 128);
        assert_eq!(r.max_workers(), 128);
        assert_eq!(r.workers(), 0, "workers start lazily");
        assert!(OpKind::ALL.iter().all(|k| r.supports(*k)));
    }
}
