//! One ring of the engine: the io_uring behind a mutex, its FIFO backlog of
//! ops held back by the in-flight limit, its meter and controller.
//!
//! [`Shard`] and its locked state [`Core`] live here, with construction and
//! the counters' small helpers; the rest of `impl Shard` is grouped by
//! concern in the submodules:
//!
//! - `work`: [`Work`], what the engine accepted and has not handed to the
//!   ring yet, and `Failed`, work completed without reaching the kernel;
//! - `submit`: accepting work (`submit`, `submit_one`, `submit_lean`): the
//!   in-flight limit and the FIFO backlog;
//! - `push`: handing work to the ring, and the backlog refill;
//! - `batch`: `begin_batch` and its `BatchGuard`;
//! - `deliver`: reaping (`poll`) and delivering completions;
//! - `held`: completions held back by fault injection;
//! - `control`: cancel, shutdown, the controller tick and its decisions.

mod batch;
mod control;
mod deliver;
mod held;
mod push;
mod submit;
#[cfg(all(test, not(loom)))]
mod tests;
mod work;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use auraio_controller::{
    Controller, ControllerState, Decision, IoMeter, Limits, Sample, StallDetector,
};
use auraio_ring::{AnyRing, BackendKind, RingKind, RingStats, Waiter};

use crate::lean::{CbAlloc, CbTable};
use crate::op_state::Target;
use crate::ring_lock::{RingGuard, RingLock};

use held::HeldQueue;
pub(crate) use work::Work;

pub(crate) struct Core {
    pub(crate) ring: AnyRing<Target>,
    pub(crate) backlog: VecDeque<Work>,
    pub(crate) closed: bool,
    last_stats: RingStats,
    /// Turns the ring's completion gaps into the device's stalled time.
    stall: StallDetector,
    /// The free entries of the shard's [`CbTable`].
    cb_alloc: CbAlloc,
}

pub(crate) struct CtlBox {
    pub(crate) controller: Box<dyn Controller>,
    pub(crate) limits: Limits,
}

/// What the tick thread publishes for `stats()`.
pub(crate) struct Published {
    /// The last ~1 s of samples.
    pub(crate) window: VecDeque<Sample>,
    pub(crate) window_len: Duration,
    pub(crate) state: ControllerState,
    pub(crate) decision: Decision,
    /// Every latency since start (merged at each tick).
    pub(crate) lifetime: auraio_controller::HistogramSnapshot,
}

pub(crate) struct Shard {
    pub(crate) idx: u32,
    core: RingLock<Core>,
    pub(crate) waiter: Waiter,
    pub(crate) eventfd: Option<RawFd>,
    pub(crate) kind: RingKind,
    pub(crate) backend: BackendKind,
    pub(crate) fallback_reason: Option<String>,
    pub(crate) capacity: u32,
    pub(crate) meter: IoMeter,
    pub(crate) limit: AtomicU32,
    pub(crate) batch: AtomicU32,
    /// Mirrors of the locked state, for lock-free reads.
    pub(crate) in_flight: AtomicU32,
    pub(crate) backlog_len: AtomicU32,
    /// Ops accepted by [`submit`](Self::submit). Written only under the
    /// ring lock (a plain load + store, no read-modify-write on the submit
    /// path); see [`pending`](Self::pending).
    accepted: AtomicU64,
    /// Ops whose completion has been delivered: a future's before its waker
    /// runs, a callback's after its callback returned (counted once per
    /// delivered batch).
    delivered: AtomicU64,
    pub(crate) peak: AtomicU32,
    pub(crate) completions: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    /// Accepted ops (not yet delivered) that use registered buffers.
    pub(crate) fixed_bufs: AtomicU64,
    /// Accepted ops (not yet delivered) that target registered files.
    pub(crate) fixed_files: AtomicU64,
    held: Mutex<HeldQueue>,
    /// `held.items.len()`, readable without the lock; counts against the
    /// in-flight limit.
    held_len: AtomicU32,
    pub(crate) ring_stats: Mutex<RingStats>,
    /// The last tick's median latency (ns), for the stall detector at the
    /// next tick (which runs under the ring lock, before the sample).
    last_p50_ns: AtomicU64,
    io_seq: AtomicU64,
    pub(crate) ctl: Mutex<CtlBox>,
    pub(crate) published: Mutex<Published>,
    /// The callbacks of lean ops (see [`crate::lean`]).
    pub(crate) cb_table: CbTable,
}

#[inline]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shard {
    pub(crate) fn new(
        idx: u32,
        ring: AnyRing<Target>,
        controller: Box<dyn Controller>,
        limits: Limits,
    ) -> io::Result<Self> {
        let waiter = ring.waiter();
        let eventfd = ring.eventfd();
        let kind = ring.kind();
        let backend = ring.backend();
        let fallback_reason = ring.fallback_reason().map(str::to_string);
        let capacity = ring.capacity();
        let decision = controller.current();
        let state = controller.state();
        let limit = decision.in_flight_limit.clamp(1, capacity.max(1));
        let batch = decision.batch_threshold.clamp(1, capacity.max(1));
        let mut ring = ring;
        ring.set_batch_threshold(batch);
        let last_stats = ring.stats();
        let (cb_table, cb_alloc) = CbTable::new(capacity);
        Ok(Shard {
            idx,
            core: RingLock::new(Core {
                ring,
                backlog: VecDeque::new(),
                closed: false,
                last_stats,
                stall: StallDetector::new(),
                cb_alloc,
            }),
            waiter,
            eventfd,
            kind,
            backend,
            fallback_reason,
            capacity,
            meter: IoMeter::new(),
            limit: AtomicU32::new(limit),
            batch: AtomicU32::new(batch),
            in_flight: AtomicU32::new(0),
            backlog_len: AtomicU32::new(0),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            peak: AtomicU32::new(0),
            completions: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            fixed_bufs: AtomicU64::new(0),
            fixed_files: AtomicU64::new(0),
            held: Mutex::new(HeldQueue::default()),
            held_len: AtomicU32::new(0),
            ring_stats: Mutex::new(last_stats),
            last_p50_ns: AtomicU64::new(0),
            io_seq: AtomicU64::new(0),
            ctl: Mutex::new(CtlBox { controller, limits }),
            published: Mutex::new(Published {
                window: VecDeque::new(),
                lifetime: auraio_controller::HistogramSnapshot::default(),
                window_len: Duration::ZERO,
                state,
                decision,
            }),
            cb_table,
        })
    }

    #[inline]
    pub(crate) fn lock(&self) -> RingGuard<'_, Core> {
        self.core.lock()
    }

    /// Decides whether the next op on this ring gets a per-I/O trace record.
    pub(crate) fn sample_io(&self, every: u32) -> bool {
        every > 0
            && self
                .io_seq
                .fetch_add(1, Relaxed)
                .is_multiple_of(u64::from(every))
    }

    /// Ops occupying the in-flight budget: in the ring, or held back by
    /// fault injection (as a slow device would keep them).
    #[inline(always)]
    fn busy(&self, core: &Core) -> u32 {
        core.ring.in_flight() + self.held_len.load(Relaxed)
    }

    /// Accepted ops whose completion has not been delivered yet.
    pub(crate) fn pending(&self) -> u64 {
        // `delivered` first, with Acquire: every delivery counted there
        // happened after its op's acceptance was stored (under the ring
        // lock), so `accepted` read next is never behind it.
        let delivered = self.delivered.load(Acquire);
        self.accepted.load(Relaxed).saturating_sub(delivered)
    }

    /// Counts `n` delivered completions.
    fn add_delivered(&self, n: u64) {
        if n > 0 {
            self.delivered.fetch_add(n, Release);
        }
    }

    /// Publishes the in-flight count and the backlog length (under the
    /// ring lock). The backlog gauges (`backlog_len` and the meter's) are
    /// written only here, always together, so they are stored only when
    /// the length changed: on the submit path the backlog is empty before
    /// and after, and a load is all it costs (no store per op).
    #[inline(always)]
    fn mirror(&self, core: &Core) {
        let inf = core.ring.in_flight();
        self.in_flight.store(inf, Relaxed);
        let bl = core.backlog.len() as u32;
        if self.backlog_len.load(Relaxed) != bl {
            self.mirror_backlog(bl);
        }
    }

    #[cold]
    fn mirror_backlog(&self, bl: u32) {
        self.backlog_len.store(bl, Relaxed);
        self.meter.set_backlog(bl);
    }
}
