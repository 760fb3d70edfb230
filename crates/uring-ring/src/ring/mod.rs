//! [`Ring`]: one io_uring instance with its slot table and batching.
//!
//! The `Ring` type, its construction and its accessors live here, with the
//! `user_data` encoding of the ring's own requests and the slot value
//! (`InFlight`); its other methods are grouped by concern in the submodules:
//!
//! - `submit`: queuing ops (`submit`, `submit_in_place`, `submit_linked`,
//!   `submit_with_timeout`) and wake-up NOPs (`notify`);
//! - `admit`: checking an op and making room for it (slots, CQ budget, SQ
//!   entries);
//! - `slot`: putting an op and its token into a slot;
//! - `push`: pushing SQEs and booking them for their hand-off stamp;
//! - `enter`: batching and `io_uring_enter` (`flush`, the hand-off stamp);
//! - `cancel`: `CancelState`, `cancel` and the deferred/synchronous cancels;
//! - `wait`: handing out completions (`poll`, `wait`);
//! - `reap`: moving CQEs out of the CQ into completions;
//! - `shutdown`: draining for shutdown ([`DRAIN_TIMEOUT`]) and `Drop`.

mod admit;
mod cancel;
mod enter;
mod push;
mod reap;
mod shutdown;
mod slot;
mod submit;
mod wait;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{types, IoUring};

use crate::clock::Clock;
use crate::completion::Completion;
#[cfg(doc)]
use crate::completion::SubmitErrorKind;
use crate::config::{RingConfig, RingKind};
use crate::gaps::CompletionGaps;
use crate::op::OpKind;
use crate::probe;
use crate::resources::Held;
use crate::slots::{SlotId, SlotTable};
use crate::stats::RingStats;
use crate::waiter::Waiter;

use cancel::CancelState;
pub use shutdown::DRAIN_TIMEOUT;

/// `user_data` bit marking the ring's own requests; never set in a [`SlotId`].
const INTERNAL: u64 = 1 << 63;
/// `user_data` of link-timeout SQEs.
const UD_TIMEOUT: u64 = INTERNAL | 1;
/// `user_data` of async-cancel SQEs.
const UD_CANCEL: u64 = INTERNAL | 2;
/// `user_data` of wake-up NOPs ([`Ring::notify`]).
const UD_NOTIFY: u64 = INTERNAL | 3;

/// `submit_ns` of an op whose SQE has not been handed to the kernel yet
/// (a completion from that state reports a latency of 0).
const NOT_SUBMITTED: u64 = u64::MAX;

/// Retries for transient conditions (EINTR, EBUSY/EAGAIN, full SQ).
const RETRIES: u32 = 8;

/// One op in flight: the caller's token plus everything the kernel may touch.
struct InFlight<T> {
    token: T,
    held: Held,
    /// When the op's SQE was handed to the kernel ([`NOT_SUBMITTED`] before).
    submit_ns: u64,
    /// A link timeout's timespec (read by the kernel when it preps the SQE).
    timeout: Option<Box<types::Timespec>>,
    cancel: CancelState,
}

/// One io_uring instance: a slot table, SQE batching and completion reaping.
///
/// `T` is the caller's per-op completion target (a callback, a waker slot,
/// an index...). It is returned untouched with the op's [`Completion`].
///
/// Invariants:
/// - at most [`capacity`](Self::capacity) ops are in flight, and the CQEs the
///   kernel can owe us (ops + internal link-timeout and cancel requests) never
///   exceed the CQ size, so the CQ cannot overflow;
/// - every submitted op produces exactly one [`Completion`], after which its
///   slot is reused under a new generation;
/// - buffers, iovecs, paths and statx results stay owned by the slot until
///   the op's CQE arrives (also across [`Drop`]: ops that cannot be drained
///   have their resources leaked rather than freed under the kernel).
///
/// `Send` when `T: Send`; not `Sync` (wrap it in a `Mutex` to share). The
/// ring never runs caller code: completions are returned as values, so the
/// caller can release its lock before handling them.
pub struct Ring<T> {
    pub(crate) ring: IoUring,
    slots: SlotTable<InFlight<T>>,
    kind: RingKind,
    supported: u32,
    sq_entries: u32,
    cq_entries: u32,
    /// Internal requests (link timeouts, cancels, notifies) whose CQE has not
    /// been reaped yet.
    internal: u32,
    /// SQEs pushed but not yet handed to the kernel.
    queued: u32,
    /// `user_data` of every SQE pushed but not yet consumed by the kernel,
    /// in SQ order (normal rings only; `queued` long). The enter that hands
    /// them over stamps their ops' `submit_ns` with one clock read.
    /// Allocated once with room for the whole SQ, so it never grows.
    unstamped: Vec<u64>,
    batch_threshold: u32,
    ext_arg: bool,
    /// Whether `IORING_REGISTER_SYNC_CANCEL` may work (cleared on EINVAL).
    sync_cancel_ok: bool,
    stats: RingStats,
    /// Gaps between completions while ops are in flight.
    gaps: CompletionGaps,
    /// Completions reaped while submitting (EBUSY handling); handed out first.
    ready: VecDeque<Completion<T>>,
    deferred_cancels: Vec<SlotId>,
    /// The latency clock (TSC where the kernel uses it, see `clock`).
    clock: Clock,
    waiter: Waiter,
    eventfd: Option<OwnedFd>,
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("kind", &self.kind)
            .field("capacity", &self.capacity())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued)
            .field("internal", &self.internal)
            .field("batch_threshold", &self.batch_threshold)
            .finish_non_exhaustive()
    }
}

/// Builds the kernel ring. It asks for `IORING_SETUP_NO_SQARRAY` (Linux
/// 6.6+: the kernel takes SQE `tail & mask` directly instead of reading
/// it from the SQ index array, one load and one cache line less per SQE;
/// the io-uring crate's identity-mapped array gave the same order) and
/// falls back to a ring with the array when the kernel rejects the flag
/// (`EINVAL` before 6.6).
fn build(sq: u32, cq: u32, sqpoll: Option<Duration>) -> io::Result<IoUring> {
    let make = |no_sqarray: bool| {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq);
        if let Some(idle) = sqpoll {
            b.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX));
        }
        if no_sqarray {
            b.setup_no_sqarray();
        }
        b.build(sq)
    };
    match make(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => make(false),
        r => r,
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}

impl<T> Ring<T> {
    /// Creates a ring. With `sqpoll_idle` set it first tries SQPOLL and falls
    /// back to a normal ring if that fails (e.g. `EPERM`); see [`kind`](Self::kind).
    ///
    /// Errors keep the kernel's `raw_os_error()` (`ENOSYS` without io_uring,
    /// `EPERM` when it is disabled) so callers can fall back.
    pub fn new(cfg: &RingConfig) -> io::Result<Self> {
        let (sq, cq) = cfg.validate()?;
        let (ring, kind) = match cfg.sqpoll_idle {
            Some(idle) => match build(sq, cq, Some(idle)) {
                Ok(r) => (r, RingKind::SqPoll),
                Err(_) => (build(sq, cq, None)?, RingKind::Normal),
            },
            None => (build(sq, cq, None)?, RingKind::Normal),
        };
        let params = ring.params();
        let sq_entries = params.sq_entries();
        let cq_entries = params.cq_entries();
        let ext_arg = params.is_feature_ext_arg() && cfg.timed_waits;
        let capacity = sq_entries.min(cq_entries / 2).max(1);
        let supported = probe::supported_ops(&ring);
        let waiter = Waiter::new(ring.as_raw_fd(), ext_arg)?;
        let eventfd = if cfg.eventfd {
            // SAFETY: plain syscall; returns a new fd or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh eventfd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            ring.submitter().register_eventfd(fd.as_raw_fd())?;
            Some(fd)
        } else {
            None
        };
        Ok(Ring {
            ring,
            slots: SlotTable::new(capacity),
            kind,
            supported,
            sq_entries,
            cq_entries,
            internal: 0,
            queued: 0,
            unstamped: Vec::with_capacity(sq_entries as usize),
            batch_threshold: cfg.batch_threshold.clamp(1, sq_entries),
            ext_arg,
            sync_cancel_ok: true,
            stats: RingStats::default(),
            gaps: CompletionGaps::new(),
            ready: VecDeque::new(),
            deferred_cancels: Vec::new(),
            clock: Clock::new(),
            waiter,
            eventfd,
        })
    }

    /// Which kind of ring was built (SQPOLL may have fallen back to normal).
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    /// Whether the kernel supports `op` (from `IORING_REGISTER_PROBE`).
    pub fn supports(&self, op: OpKind) -> bool {
        self.supported & op.bit() != 0
    }

    /// Treats `op` as unsupported from now on: submitting it fails with
    /// [`SubmitErrorKind::Unsupported`]. Useful to forbid an op or to test
    /// a caller's fallback path on a kernel that has it.
    pub fn disable_op(&mut self, op: OpKind) {
        self.supported &= !op.bit();
    }

    /// Most ops that can be in flight at once (slots). Never more than half
    /// the CQ, leaving room for the ring's internal CQEs.
    pub fn capacity(&self) -> u32 {
        self.slots.capacity()
    }

    /// Slots taken: ops pushed or submitted whose completion was not reaped.
    ///
    /// A completion reaped internally (while submitting) frees its slot at
    /// once and waits in a small queue for the next `poll`/`wait`; see
    /// [`ready_len`](Self::ready_len).
    pub fn in_flight(&self) -> u32 {
        self.slots.len()
    }

    /// The token of the op in `slot`, while it is in flight (`None` once
    /// its completion was reaped, or for a stale id).
    pub fn token(&self, slot: SlotId) -> Option<&T> {
        self.slots.get(slot).map(|f| &f.token)
    }

    /// SQEs pushed but not yet handed to the kernel.
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Completions already reaped from the CQ (their slots are free) that
    /// the next `poll`/`wait` will hand out.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// SQ size the kernel gave us.
    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    /// CQ size the kernel gave us.
    pub fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// Submit automatically once this many SQEs are queued.
    pub fn batch_threshold(&self) -> u32 {
        self.batch_threshold
    }

    /// Sets the batch threshold, clamped to `1..=sq_entries`. Does not
    /// submit by itself: the next push, `flush`, `poll` or `wait` does.
    pub fn set_batch_threshold(&mut self, n: u32) {
        self.batch_threshold = n.clamp(1, self.sq_entries);
    }

    /// A handle that blocks in the kernel for completions without `&self`.
    pub fn waiter(&self) -> Waiter {
        self.waiter.clone()
    }

    /// Cumulative counters.
    pub fn stats(&self) -> RingStats {
        let mut s = self.stats;
        s.waiter_enter_calls = self.waiter.enters();
        s.gaps = self.gaps.stats();
        s
    }

    /// Gaps between completions longer than `ns` (while ops are in flight)
    /// count as long in [`RingStats::gaps`] from now on.
    pub fn set_long_gap_ns(&mut self, ns: u64) {
        self.gaps.set_long_ns(ns);
    }

    /// The registered eventfd (when [`RingConfig::eventfd`] was set). It
    /// becomes readable when CQEs are posted; read 8 bytes to reset it.
    pub fn eventfd(&self) -> Option<RawFd> {
        self.eventfd.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Nanoseconds since the ring was created (the clock latencies use).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}
