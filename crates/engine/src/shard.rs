//! One ring of the engine: the io_uring behind a mutex, its FIFO backlog of
//! ops held back by the in-flight limit, its meter and controller.

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use auraio_controller::{
    Controller, ControllerState, Decision, IntervalGaps, IoMeter, Limits, Sample, StallDetector,
};
use auraio_ring::{
    AnyRing, BackendKind, Completion, Op, Resources, RingKind, RingStats, SubmitError,
    SubmitErrorKind, Waiter,
};

use crate::callback::Callback;
use crate::engine::Shared;
use crate::error::canceled;
use crate::lean::{CbAlloc, CbTable, FreeBatch};
use crate::op_state::{panic_message, Finish, OpCtl, Owned, Phase, Target};
use crate::request::{clone_error, op_into_resources};
use crate::ring_lock::{RingGuard, RingLock};

/// Work accepted by the engine, not yet handed to the ring.
pub(crate) enum Work {
    Single {
        op: Op,
        target: Target,
        timeout: Option<Duration>,
    },
    /// Boxed: links are rare, and every move of a `Work` on the common
    /// path copies the size of its largest variant.
    Linked(Box<Pair>),
}

/// Two linked ops (`IOSQE_IO_LINK`), in order.
pub(crate) struct Pair {
    pub(crate) first: (Op, Target),
    pub(crate) second: (Op, Target),
}

impl Work {
    /// Two linked ops.
    pub(crate) fn linked(first: (Op, Target), second: (Op, Target)) -> Self {
        Work::Linked(Box::new(Pair { first, second }))
    }
}

impl Work {
    /// (ops using registered buffers, ops targeting registered files).
    fn fixed_uses(&self) -> (u64, u64) {
        let one = |t: &Target| {
            (
                u64::from(t.info().fixed_buf),
                u64::from(t.info().fixed_file),
            )
        };
        match self {
            Work::Single { target, .. } => one(target),
            Work::Linked(p) => {
                let (a, b) = (one(&p.first.1), one(&p.second.1));
                (a.0 + b.0, a.1 + b.1)
            }
        }
    }

    /// How many ops this is (each completes once).
    fn ops(&self) -> u64 {
        match self {
            Work::Single { .. } => 1,
            Work::Linked { .. } => 2,
        }
    }

    fn contains(&self, ctl: &Arc<OpCtl>) -> bool {
        match self {
            Work::Single { target, .. } => is_ctl(target, ctl),
            Work::Linked(p) => is_ctl(&p.first.1, ctl) || is_ctl(&p.second.1, ctl),
        }
    }

    /// Every target with the error it completes with (and its resources).
    pub(crate) fn into_failed(self, e: io::Error, out: &mut Vec<Failed>) {
        match self {
            Work::Single { op, target, .. } => out.push(Failed {
                target,
                result: Err(e),
                resources: op_into_resources(op),
            }),
            Work::Linked(p) => {
                let Pair { first, second } = *p;
                out.push(Failed {
                    target: first.1,
                    result: Err(clone_error(&e)),
                    resources: op_into_resources(first.0),
                });
                out.push(Failed {
                    target: second.1,
                    result: Err(e),
                    resources: op_into_resources(second.0),
                });
            }
        }
    }
}

/// A target completed without reaching the kernel (cancelled in the
/// backlog, failed at a deferred submit, or shut down).
pub(crate) struct Failed {
    pub(crate) target: Target,
    pub(crate) result: io::Result<u32>,
    pub(crate) resources: Resources,
}

/// A completion held back by a fault hook (see the `fault` module).
struct HeldOne {
    due: Instant,
    since: Instant,
    target: Target,
    result: i32,
    resources: Resources,
    latency_ns: u64,
}

/// Completions held back by fault injection, delivered when due.
#[derive(Default)]
struct HeldQueue {
    items: Vec<HeldOne>,
    /// Set at shutdown: nothing is held any more, all is delivered at once.
    closed: bool,
}

/// Why [`Shard::push`] gave work back. Boxed in its `Result`: the error is
/// rare, and a small `Result` comes back in registers instead of through
/// the stack on every push.
enum PushErr {
    /// No slot now: keep it in the backlog.
    Full(Work),
    /// Refused for good.
    Failed(Work, io::Error),
}

/// Work [`Shard::submit`] did not accept, with the reason (boxed, as
/// [`PushErr`]).
pub(crate) type Refused = Box<(Work, io::Error)>;

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

const STATS_WINDOW: Duration = Duration::from_secs(1);

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

fn kind_error(kind: SubmitErrorKind) -> io::Error {
    match kind {
        SubmitErrorKind::Full => io::Error::new(io::ErrorKind::WouldBlock, "ring is full"),
        SubmitErrorKind::Unsupported(k) => io::Error::new(
            io::ErrorKind::Unsupported,
            format!("operation {k} is not supported by this kernel"),
        ),
        SubmitErrorKind::InvalidInput(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
        SubmitErrorKind::Io(e) => e,
    }
}

/// Whether `t` is the target of the op with control block `ctl`.
fn is_ctl(t: &Target, ctl: &Arc<OpCtl>) -> bool {
    t.ctl_ref()
        .is_some_and(|c| std::ptr::eq(c, Arc::as_ptr(ctl)))
}

/// Marks the op just pushed into `slot` as in the ring (where cancel finds
/// it). An op the ring already completed (reaped while submitting) keeps
/// its phase: its completion is on its way. A lean op has no phase.
fn set_in_ring(ring: &AnyRing<Target>, slot: auraio_ring::SlotId) {
    if let Some(ctl) = ring.token(slot).and_then(Target::ctl_ref) {
        ctl.set_phase(Phase::InRing(slot));
    }
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

    /// [`submit`](Self::submit) for one op without a per-op timeout, the
    /// common case, with its fast path written out: when the ring is open,
    /// supports the op, nothing waits in the backlog and the limit allows,
    /// the op and its target go straight to the ring (no `Work` assembled
    /// and matched on the way: each move of one after its narrow stores was
    /// a store-forwarding stall). Anything else takes the general path
    /// under the same lock.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub(crate) fn submit_one(
        &self,
        sh: &Shared,
        mut op: Op,
        target: Target,
    ) -> Result<(), Refused> {
        let mut core = self.lock();
        let info = target.info();
        if core.closed
            || !core.ring.supports(op.kind())
            || !core.backlog.is_empty()
            || info.fixed_buf
            || info.fixed_file
            || self.busy(&core) >= self.limit.load(Relaxed)
        {
            let work = Work::Single {
                op,
                target,
                timeout: None,
            };
            return self.submit_locked(sh, core, work);
        }
        self.push_accepted(sh, &mut core, &mut op, target)
    }

    /// [`submit_one`](Self::submit_one) for a plain callback op (see
    /// [`crate::lean`]): when it can go straight to the ring, its callback
    /// (built by `make_cb`) is written into a free entry of the shard's
    /// callback table and the op gets no control block; otherwise (ring
    /// closed or lacking the op, backlog or limit, table full) `make_ctl`
    /// builds its control block target from the callback and it takes the
    /// general path under the same lock.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(crate) fn submit_lean<M, C>(
        &self,
        sh: &Shared,
        op: &mut Op,
        make_cb: M,
        make_ctl: C,
    ) -> Result<(), Refused>
    where
        M: FnOnce() -> Callback,
        C: FnOnce(Callback) -> Target,
    {
        let mut core = self.lock();
        let kind = op.kind();
        if core.closed
            || !core.ring.supports(kind)
            || !core.backlog.is_empty()
            || self.busy(&core) >= self.limit.load(Relaxed)
        {
            let work = Work::Single {
                op: std::mem::replace(op, Op::Nop),
                target: make_ctl(make_cb()),
                timeout: None,
            };
            return self.submit_locked(sh, core, work);
        }
        let target = match self.cb_table.store(&mut core.cb_alloc, kind, make_cb) {
            Ok(l) => Target::lean(l),
            Err(make_cb) => make_ctl(make_cb()),
        };
        self.push_accepted(sh, &mut core, op, target)
    }

    /// The common end of [`submit_one`](Self::submit_one) and
    /// [`submit_lean`](Self::submit_lean) once the op may go straight to
    /// the ring: push it (into the backlog when the SQ is full), keep the
    /// ring busy, count it accepted.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    fn push_accepted(
        &self,
        sh: &Shared,
        core: &mut RingGuard<'_, Core>,
        op: &mut Op,
        target: Target,
    ) -> Result<(), Refused> {
        if let Err(p) = self.push_one(sh, core, op, target) {
            match *p {
                PushErr::Full(w) => core.backlog.push_back(w),
                PushErr::Failed(w, e) => return Err(Box::new((w, e))),
            }
        }
        self.keep_busy(sh, core);
        // Accepted (only written under this lock: no atomic RMW).
        self.accepted
            .store(self.accepted.load(Relaxed) + 1, Relaxed);
        self.mirror(core);
        Ok(())
    }

    /// Tests: free entries of the callback table, and its size.
    #[cfg(test)]
    pub(crate) fn lean_entries(&self) -> (usize, usize) {
        let mut core = self.lock();
        self.cb_table.free_entries(&mut core.cb_alloc)
    }

    /// Tests: takes every free entry of the callback table (the lean path
    /// then falls back to control blocks) or gives them back (`false`).
    #[cfg(test)]
    pub(crate) fn lean_exhaust(&self, exhaust: bool) {
        let mut core = self.lock();
        self.cb_table.exhaust_for_test(&mut core.cb_alloc, exhaust);
    }

    /// The op of work that was refused (not accepted): its targets are
    /// dropped without a completion, a lean op's callback uncalled with its
    /// table entry freed.
    pub(crate) fn refused_op(&self, work: Work) -> Op {
        let discard = |t: Target| match t.into_owned() {
            Owned::Lean(l) => self.cb_table.discard(l),
            Owned::Ctl(t) => drop(t),
        };
        match work {
            Work::Single { op, target, .. } => {
                discard(target);
                op
            }
            Work::Linked(p) => {
                let Pair { first, second } = *p;
                discard(first.1);
                discard(second.1);
                first.0
            }
        }
    }

    /// [`push`](Self::push) for one op without a per-op timeout, straight
    /// to the ring (no `Work` assembled and matched).
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    fn push_one(
        &self,
        sh: &Shared,
        core: &mut Core,
        op: &mut Op,
        target: Target,
    ) -> Result<(), Box<PushErr>> {
        let lean = match target.ctl_ref() {
            Some(ctl) => {
                if ctl.info.traced {
                    ctl.stamp_submit(sh.now_ns(), core.ring.in_flight());
                }
                false
            }
            None => true,
        };
        // The op is taken from where the caller keeps it (see
        // `Ring::submit_in_place`), not moved here whole.
        match core.ring.submit_in_place(op, target) {
            Ok(slot) => {
                if !lean {
                    set_in_ring(&core.ring, slot);
                }
                self.after_submit(core.ring.in_flight());
                Ok(())
            }
            Err((kind, token)) => {
                let w = Work::Single {
                    op: std::mem::replace(op, Op::Nop),
                    target: token,
                    timeout: None,
                };
                match kind {
                    SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                    k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                }
            }
        }
    }

    /// Keeps the device busy after a push: if nothing is in the kernel,
    /// submit now instead of waiting for the batch to fill. Only while the
    /// controller picks the batch: a batch threshold pinned by the user
    /// (`batch_threshold(Some(n))`) is honoured as asked, and queued SQEs go
    /// out when `n` are queued, at the next poll/wait/flush, or at the next
    /// tick at the latest. (Sending the first op of every burst alone costs
    /// a second `io_uring_enter` per burst.)
    #[inline]
    fn keep_busy(&self, sh: &Shared, core: &mut Core) {
        if sh.batch_override.load(Relaxed) == 0 {
            let q = core.ring.queued();
            if q > 0 && core.ring.in_flight() <= q {
                let _ = core.ring.flush();
            }
        }
    }

    /// Accepts `work`: hands it to the ring if the limit allows, otherwise
    /// parks it in the FIFO backlog. `Err` means it was not accepted (the
    /// caller gets the work back; no callback will run).
    #[allow(clippy::result_large_err)]
    pub(crate) fn submit(&self, sh: &Shared, work: Work) -> Result<(), Refused> {
        let core = self.lock();
        self.submit_locked(sh, core, work)
    }

    /// [`submit`](Self::submit) with the ring lock already taken (released
    /// here, before failed ops are delivered).
    #[allow(clippy::result_large_err)]
    #[inline(never)]
    fn submit_locked(
        &self,
        sh: &Shared,
        mut core: RingGuard<'_, Core>,
        work: Work,
    ) -> Result<(), Refused> {
        let mut failed = Vec::new();
        {
            if core.closed {
                return Err(Box::new((work, crate::error::shutdown_error())));
            }
            // Unsupported ops fail synchronously rather than later.
            if let Some(e) = self.unsupported(&core, &work) {
                return Err(Box::new((work, e)));
            }
            let (fixed_bufs, fixed_files) = work.fixed_uses();
            let ops = work.ops();
            let limit = self.limit.load(Relaxed);
            if core.backlog.is_empty() && self.busy(&core) < limit {
                match self.push(sh, &mut core, work) {
                    Ok(()) => {}
                    Err(p) => match *p {
                        PushErr::Full(w) => core.backlog.push_back(w),
                        PushErr::Failed(w, e) => return Err(Box::new((w, e))),
                    },
                }
                self.keep_busy(sh, &mut core);
            } else {
                core.backlog.push_back(work);
                self.refill_locked(sh, &mut core, &mut failed);
            }
            // Accepted (only written under this lock: no atomic RMW).
            self.accepted
                .store(self.accepted.load(Relaxed) + ops, Relaxed);
            // Counted under the ring lock, so a concurrent unregister (which
            // checks under the same lock) sees it.
            if fixed_bufs > 0 {
                self.fixed_bufs.fetch_add(fixed_bufs, Relaxed);
            }
            if fixed_files > 0 {
                self.fixed_files.fetch_add(fixed_files, Relaxed);
            }
            self.mirror(&core);
            drop(core);
        }
        if !failed.is_empty() {
            self.deliver_failed(sh, failed);
        }
        Ok(())
    }

    /// Starts a batch (see
    /// [`Engine::submit_batch`](crate::Engine::submit_batch)): takes the
    /// ring lock for the whole batch; `None` when the ring is shut down.
    /// Ops are then added with [`BatchGuard::accept`]; dropping the guard
    /// (also on a panic) ends the batch.
    pub(crate) fn begin_batch<'a>(&'a self, sh: &'a Shared) -> Option<BatchGuard<'a>> {
        let mut core = self.lock();
        if core.closed {
            return None;
        }
        let limit = self.limit.load(Relaxed);
        // Queue every SQE of the batch and submit them together at the end
        // (a full SQ is still submitted by the ring as needed).
        let batch = core.ring.batch_threshold();
        core.ring.set_batch_threshold(u32::MAX);
        Some(BatchGuard {
            shard: self,
            sh,
            core: ManuallyDrop::new(core),
            limit,
            batch,
            accepted: 0,
            fixed_bufs: 0,
            fixed_files: 0,
            failed: Vec::new(),
        })
    }

    /// Why the ring would refuse `op` (with a per-op timeout when
    /// `timeout`) as unsupported: checked before the op becomes work.
    pub(crate) fn unsupported_op(core: &Core, op: &Op, timeout: bool) -> Option<io::Error> {
        let k = op.kind();
        if !core.ring.supports(k) {
            return Some(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("operation {k} is not supported by this kernel"),
            ));
        }
        (timeout && !core.ring.supports(auraio_ring::OpKind::LinkTimeout)).then(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "per-op timeouts (link_timeout) are not supported by this kernel",
            )
        })
    }

    fn unsupported(&self, core: &Core, work: &Work) -> Option<io::Error> {
        let check = |op: &Op| {
            let k = op.kind();
            (!core.ring.supports(k)).then(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("operation {k} is not supported by this kernel"),
                )
            })
        };
        match work {
            Work::Single { op, timeout, .. } => check(op).or_else(|| {
                (timeout.is_some() && !core.ring.supports(auraio_ring::OpKind::LinkTimeout)).then(
                    || {
                        io::Error::new(
                            io::ErrorKind::Unsupported,
                            "per-op timeouts (link_timeout) are not supported by this kernel",
                        )
                    },
                )
            }),
            Work::Linked(p) => check(&p.first.0).or_else(|| check(&p.second.0)),
        }
    }

    /// Hands one unit of work to the ring (under the ring lock).
    #[allow(clippy::result_large_err)]
    fn push(&self, sh: &Shared, core: &mut Core, work: Work) -> Result<(), Box<PushErr>> {
        let ring = &mut core.ring;
        // Traced ops only: stamp the push for the trace record.
        let stamp = |t: &Target, in_flight: u32| {
            if let Some(ctl) = t.ctl_ref() {
                if ctl.info.traced {
                    ctl.stamp_submit(sh.now_ns(), in_flight);
                }
            }
        };
        match work {
            Work::Single {
                op,
                target,
                timeout,
            } => {
                stamp(&target, ring.in_flight());
                let r = match timeout {
                    Some(d) => ring.submit_with_timeout(op, target, d),
                    None => ring.submit(op, target),
                };
                match r {
                    Ok(slot) => {
                        set_in_ring(ring, slot);
                        self.after_submit(ring.in_flight());
                        Ok(())
                    }
                    Err(SubmitError {
                        kind, op, token, ..
                    }) => {
                        let w = Work::Single {
                            op,
                            target: token,
                            timeout,
                        };
                        match kind {
                            SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                            k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                        }
                    }
                }
            }
            Work::Linked(p) => {
                let Pair {
                    first: (op1, t1),
                    second: (op2, t2),
                } = *p;
                let inf = ring.in_flight();
                stamp(&t1, inf);
                stamp(&t2, inf + 1);
                match ring.submit_linked((op1, t1), (op2, t2)) {
                    Ok((s1, s2)) => {
                        set_in_ring(ring, s1);
                        set_in_ring(ring, s2);
                        self.after_submit(ring.in_flight());
                        Ok(())
                    }
                    Err(SubmitError {
                        kind,
                        op,
                        token,
                        second,
                    }) => {
                        let Some(second) = second else {
                            // The ring promised to return both halves; if it
                            // did not, the second is lost: fail the first.
                            let w = Work::Single {
                                op,
                                target: token,
                                timeout: None,
                            };
                            return Err(Box::new(PushErr::Failed(
                                w,
                                io::Error::other("linked submit lost its second op"),
                            )));
                        };
                        let w = Work::linked((op, token), second);
                        match kind {
                            SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                            k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn after_submit(&self, in_flight: u32) {
        self.meter.on_submit(in_flight);
        if in_flight > self.peak.load(Relaxed) {
            self.peak.fetch_max(in_flight, Relaxed);
        }
    }

    /// Moves backlog work into the ring while the limit allows.
    ///
    /// The refill goes to the kernel like any submission: one
    /// `io_uring_enter` per batch threshold of SQEs as they are pushed
    /// (what is left below the threshold waits for the caller's flush or
    /// the next one). Pushing a whole refill and entering once sent the
    /// disk every reaped wave back as one wave: on this machine's virtio
    /// disk, with 64 ops waiting in the backlog at a limit of 64, that
    /// was 64 SQEs per enter and 75.4k IOPS against 84.1k in
    /// threshold-sized pieces (docs/benchmarks.md, session 8).
    fn refill_locked(&self, sh: &Shared, core: &mut Core, failed: &mut Vec<Failed>) {
        self.refill_pushes(sh, core, failed, self.limit.load(Relaxed));
    }

    fn refill_pushes(&self, sh: &Shared, core: &mut Core, failed: &mut Vec<Failed>, limit: u32) {
        while self.busy(core) < limit {
            let Some(work) = core.backlog.pop_front() else {
                break;
            };
            match self.push(sh, core, work) {
                Ok(()) => {}
                Err(p) => match *p {
                    PushErr::Full(w) => {
                        core.backlog.push_front(w);
                        break;
                    }
                    PushErr::Failed(w, e) => w.into_failed(e, failed),
                },
            }
        }
    }

    /// Reaps what is ready (entering the kernel when ops are in flight),
    /// refills from the backlog, then delivers outside the lock.
    pub(crate) fn poll(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>) -> io::Result<usize> {
        buf.clear();
        let mut failed = Vec::new();
        let mut due = Vec::new();
        let res = {
            let mut core = self.lock();
            if core.closed {
                return Ok(0);
            }
            // Held completions that are due free their budget before the
            // refill below.
            self.take_held(false, &mut due);
            let res = core.ring.poll(buf);
            self.apply_faults(sh, buf, true);
            if !core.backlog.is_empty() {
                self.refill_locked(sh, &mut core, &mut failed);
                if core.ring.queued() > 0 {
                    let _ = core.ring.flush();
                }
            }
            self.mirror(&core);
            res
        };
        let n = buf.len() + failed.len() + due.len();
        self.deliver_held(sh, due);
        self.deliver_completions(sh, buf);
        self.deliver_failed(sh, failed);
        res.map(|_| n)
    }

    /// Moves held completions out of the held queue: the due ones, or all
    /// of them (`all`, at shutdown, which also closes the queue).
    fn take_held(&self, all: bool, out: &mut Vec<HeldOne>) {
        if !all && self.held_len.load(Relaxed) == 0 {
            return;
        }
        let mut h = lock(&self.held);
        if all {
            h.closed = true;
            out.append(&mut h.items);
        } else {
            let now = Instant::now();
            let mut i = 0;
            while i < h.items.len() {
                if h.items[i].due <= now {
                    out.push(h.items.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        self.held_len.store(h.items.len() as u32, Relaxed);
    }

    /// How long until the next held completion is due (`None`: none held).
    pub(crate) fn held_due_in(&self) -> Option<Duration> {
        if self.held_len.load(Relaxed) == 0 {
            return None;
        }
        let h = lock(&self.held);
        let now = Instant::now();
        h.items
            .iter()
            .map(|x| x.due.saturating_duration_since(now))
            .min()
    }

    /// Completions held back, delivered now; their latency includes the
    /// time they were held.
    fn deliver_held(&self, sh: &Shared, held: Vec<HeldOne>) {
        let mut done = 0;
        for h in held {
            let extra = u64::try_from(h.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let latency = h.latency_ns.saturating_add(extra);
            self.deliver_one(sh, h.target, h.result, h.resources, latency, &mut done);
        }
        self.add_delivered(done);
    }

    /// Parks a completion in the held queue until `delay` has passed.
    /// Gives it back when the queue is closed (shutdown): deliver it now.
    fn hold(&self, c: Completion<Target>, delay: Duration) -> Option<Completion<Target>> {
        let mut h = lock(&self.held);
        if h.closed {
            return Some(c);
        }
        let now = Instant::now();
        h.items.push(HeldOne {
            due: now.checked_add(delay).unwrap_or(now),
            since: now,
            target: c.token,
            result: c.result,
            resources: c.resources,
            latency_ns: c.latency_ns,
        });
        self.held_len.store(h.items.len() as u32, Relaxed);
        None
    }

    /// Flushes queued SQEs to the kernel.
    pub(crate) fn flush(&self) -> io::Result<u32> {
        let mut core = self.lock();
        if core.closed {
            return Ok(0);
        }
        core.ring.flush()
    }

    pub(crate) fn deliver_completions(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>) {
        if buf.is_empty() {
            return;
        }
        // The shard's counters move once per batch, before any callback of
        // the batch runs (a callback that reads `stats()` sees itself).
        // The meter too: its latency histogram gets one update per run of
        // equal latencies (every op reaped together shares one reap time,
        // and a round's ops one hand-off time), not two RMWs per op.
        let (mut bytes, mut errors) = (0u64, 0u64);
        let mut run_latency = buf[0].latency_ns;
        let mut run_len = 0u64;
        for c in buf.iter() {
            if c.result < 0 {
                errors += 1;
            } else if c.token.info().counts_bytes() {
                bytes += c.result as u64;
            }
            if c.latency_ns != run_latency {
                self.meter.on_complete_n(run_latency, run_len, 0, 0);
                run_latency = c.latency_ns;
                run_len = 0;
            }
            run_len += 1;
        }
        self.meter
            .on_complete_n(run_latency, run_len, bytes, errors);
        self.count_completions(buf.len() as u64, bytes, errors);
        let mut done = 0;
        let mut free = FreeBatch::default();
        let mut items = buf.drain(..);
        // One `catch_unwind` for the whole batch rather than one per op
        // (which passes each op's result and callback through memory): a
        // panicking callback unwinds to here, is counted and reported, and
        // delivery resumes with the next completion. Every op is still
        // delivered once: the panicking one had its callback taken and its
        // phase set to `Done` before the callback ran.
        loop {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for c in items.by_ref() {
                    self.deliver_counted::<false>(
                        sh,
                        c.token,
                        c.result,
                        c.resources,
                        c.latency_ns,
                        &mut done,
                        &mut free,
                    );
                }
            }));
            match run {
                Ok(()) => break,
                Err(payload) => {
                    self.panics.fetch_add(1, Relaxed);
                    sh.report_panic(self.idx, &panic_message(payload.as_ref()));
                }
            }
        }
        drop(items);
        // The lean ops' table entries go back once the batch ran (their
        // callbacks were taken out before each ran, also a panicking one).
        self.cb_table.flush(&mut free);
        self.add_delivered(done);
    }

    /// Adds a batch of completions to the shard's counters.
    fn count_completions(&self, completions: u64, bytes: u64, errors: u64) {
        self.completions.fetch_add(completions, Relaxed);
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Relaxed);
        }
        if errors > 0 {
            self.errors.fetch_add(errors, Relaxed);
        }
    }

    /// Fault injection (tests only), on freshly reaped completions: rewrites
    /// results in place and, when `hold`, moves the completions to delay
    /// into the held queue. Called under the ring lock, before the backlog
    /// refill, so a held op never leaves a gap in the in-flight budget.
    fn apply_faults(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>, hold: bool) {
        if !sh.has_faults() || buf.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(buf.len());
        for mut c in buf.drain(..) {
            let Some(fault) = sh.fault_for(self.idx, &c.token.info(), c.result, c.latency_ns)
            else {
                kept.push(c);
                continue;
            };
            if let Some(r) = fault.result {
                c.result = r;
            }
            match fault.delay.filter(|d| hold && !d.is_zero()) {
                Some(d) => {
                    if let Some(back) = self.hold(c, d) {
                        kept.push(back);
                    }
                }
                None => kept.push(c),
            }
        }
        *buf = kept;
    }

    /// Counts one completion, feeds the meter and trace, and delivers it.
    fn deliver_one(
        &self,
        sh: &Shared,
        token: Target,
        result: i32,
        resources: Resources,
        latency_ns: u64,
        done: &mut u64,
    ) {
        let ok = result >= 0;
        let bytes = completed_bytes(&token, result);
        self.count_completions(1, bytes, u64::from(!ok));
        // (Guarded: `finish` frees a lean op's entry itself.)
        let mut free = FreeBatch::default();
        self.deliver_counted::<true>(sh, token, result, resources, latency_ns, done, &mut free);
    }

    /// Feeds the meter (only when `GUARDED`: the unguarded caller feeds it
    /// once per batch) and trace and delivers one completion already
    /// counted in the shard's counters. A panicking callback is caught
    /// and reported here when `GUARDED`; otherwise it unwinds to the
    /// caller, which must catch it (see
    /// [`deliver_completions`](Self::deliver_completions)).
    /// Unguarded, a lean op's table entry is recorded in `free`, which the
    /// caller flushes.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn deliver_counted<const GUARDED: bool>(
        &self,
        sh: &Shared,
        token: Target,
        result: i32,
        resources: Resources,
        latency_ns: u64,
        done: &mut u64,
        free: &mut FreeBatch,
    ) {
        if GUARDED {
            // (The unguarded caller, `deliver_completions`, fed the meter
            // for its whole batch.)
            let bytes = completed_bytes(&token, result);
            self.meter.on_complete(latency_ns, bytes, result < 0);
        }
        let ok = result >= 0;
        if let Some(ctl) = token.ctl_ref() {
            if ctl.info.traced {
                sh.trace_io(self.idx, ctl, latency_ns, result);
            }
        }
        let res = if ok {
            Ok(result as u32)
        } else {
            Err(io::Error::from_raw_os_error(-result))
        };
        if GUARDED {
            self.finish(sh, token, res, resources, done);
        } else {
            self.count_finish(&token, done);
            token.finish_unguarded(&self.cb_table, free, res, resources);
        }
    }

    pub(crate) fn deliver_failed(&self, sh: &Shared, failed: Vec<Failed>) {
        let mut done = 0;
        for f in failed {
            self.finish(sh, f.target, f.result, f.resources, &mut done);
        }
        self.add_delivered(done);
    }

    /// Delivers one completion. A future's op is counted delivered here
    /// (before its waker runs, so a woken task that checks `pending()` sees
    /// it); a callback's is added to `done`, which the caller counts once
    /// its whole batch ran (so an op chained from a callback is accepted
    /// before its parent stops counting as pending).
    fn finish(
        &self,
        sh: &Shared,
        target: Target,
        result: io::Result<u32>,
        resources: Resources,
        done: &mut u64,
    ) {
        self.count_finish(&target, done);
        if let Finish::Panicked(msg) = target.finish(&self.cb_table, result, resources) {
            self.panics.fetch_add(1, Relaxed);
            sh.report_panic(self.idx, &msg);
        }
    }

    /// The counters of one completion about to be delivered: registered
    /// resources released, and the op counted delivered (a future's now,
    /// a callback's in `done`; see [`finish`](Self::finish)).
    #[inline]
    fn count_finish(&self, target: &Target, done: &mut u64) {
        // The kernel is done with the registered resources of this op.
        if target.info().fixed_buf {
            self.fixed_bufs.fetch_sub(1, Relaxed);
        }
        if target.info().fixed_file {
            self.fixed_files.fetch_sub(1, Relaxed);
        }
        if target.is_future() {
            self.add_delivered(1);
        } else {
            *done += 1;
        }
    }

    /// Cancels one op: removed from the backlog (completes with ECANCELED),
    /// or an async cancel to the kernel (it completes when the kernel says).
    pub(crate) fn cancel(&self, sh: &Shared, ctl: &Arc<OpCtl>) -> io::Result<()> {
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            match ctl.phase() {
                Phase::Done => return Ok(()),
                Phase::Backlogged => {
                    if let Some(pos) = core.backlog.iter().position(|w| w.contains(ctl)) {
                        if let Some(w) = core.backlog.remove(pos) {
                            w.into_failed(canceled(), &mut failed);
                        }
                    }
                    self.mirror(&core);
                }
                Phase::InRing(slot) => {
                    if !core.closed {
                        // A slot that already completed (reaped, being
                        // delivered) reports an error here: nothing to do.
                        if core.ring.cancel(slot).is_ok() {
                            let _ = core.ring.flush();
                        }
                    }
                }
            }
        }
        self.deliver_failed(sh, failed);
        Ok(())
    }

    /// Closes the ring: fails the backlog with ECANCELED, cancels and drains
    /// every in-flight op, and delivers each completion once.
    pub(crate) fn shutdown(&self, sh: &Shared) {
        let mut out = Vec::new();
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            core.closed = true;
            let backlog = std::mem::take(&mut core.backlog);
            for w in backlog {
                w.into_failed(canceled(), &mut failed);
            }
            if let Err(e) = core.ring.drain_for_shutdown(&mut out) {
                eprintln!(
                    "auraio: ring {} could not drain its in-flight operations at shutdown: {e}",
                    self.idx
                );
            }
            *lock(&self.ring_stats) = core.ring.stats();
            self.mirror(&core);
        }
        self.deliver_failed(sh, failed);
        self.apply_faults(sh, &mut out, false);
        self.deliver_completions(sh, &mut out);
        // Completions held back by fault injection: all of them, now (the
        // queue is closed, so none is held again).
        let mut held = Vec::new();
        self.take_held(true, &mut held);
        self.deliver_held(sh, held);
    }

    /// One controller tick for this ring.
    pub(crate) fn tick(&self, sh: &Shared, now: Duration) {
        let (in_flight, backlog, d_submits, d_sqes, stalled) = {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            // Bound the batching delay: SQEs still queued at a tick (e.g.
            // below the threshold while the ops in the kernel are slow) go
            // out now, so no op waits in the SQ longer than one tick.
            if core.ring.queued() > 0 {
                let _ = core.ring.flush();
            }
            let rs = core.ring.stats();
            let d_sub = rs.submit_calls.saturating_sub(core.last_stats.submit_calls);
            let d_sqes = rs
                .sqes_submitted
                .saturating_sub(core.last_stats.sqes_submitted);
            let g = rs.gaps.since(&core.last_stats.gaps);
            let stalled = core.stall.observe(IntervalGaps {
                gaps: g.gaps,
                gap_ns: g.gap_ns,
                long_gaps: g.long_gaps,
                long_gap_ns: g.long_gap_ns,
            });
            core.stall.observe_latency(self.last_p50_ns.load(Relaxed));
            let long = core.stall.long_gap_ns();
            core.ring.set_long_gap_ns(long);
            core.last_stats = rs;
            *lock(&self.ring_stats) = rs;
            (
                core.ring.in_flight(),
                core.backlog.len() as u32,
                d_sub,
                d_sqes,
                stalled,
            )
        };
        // The meter's backlog gauge is current: `mirror` sets it (under the
        // ring lock) whenever the backlog's length changes.
        let mut sample = self.meter.take_sample(now, in_flight);
        sample.enter_calls = d_submits;
        sample.sqes_submitted = d_sqes;
        sample.stalled = stalled;
        self.last_p50_ns.store(sample.latency.p50_ns(), Relaxed);
        let (decision, state) = {
            let mut c = lock(&self.ctl);
            let d = c.controller.tick(&sample);
            (d, c.controller.state())
        };
        let (limit, batch) = self.clamp_decision(sh, decision);
        let old_limit = self.limit.swap(limit, Relaxed);
        let old_batch = self.batch.swap(batch, Relaxed);
        sh.trace_tick(self.idx, &sample, decision, &state);
        {
            let mut p = lock(&self.published);
            p.lifetime.merge(&sample.latency);
            p.window_len += sample.interval;
            p.window.push_back(sample);
            while p.window.len() > 1 {
                let front = p.window.front().map_or(Duration::ZERO, |s| s.interval);
                if p.window_len.saturating_sub(front) >= STATS_WINDOW {
                    p.window_len -= front;
                    p.window.pop_front();
                } else {
                    break;
                }
            }
            p.state = state;
            p.decision = Decision {
                in_flight_limit: limit,
                batch_threshold: batch,
            };
        }
        if batch != old_batch || (limit > old_limit && backlog > 0) {
            self.apply(sh);
        }
    }

    /// Applies the current batch threshold and refills up to the limit.
    pub(crate) fn apply(&self, sh: &Shared) {
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            let batch = self.batch.load(Relaxed);
            if core.ring.batch_threshold() != batch {
                core.ring.set_batch_threshold(batch);
            }
            if !core.backlog.is_empty() {
                self.refill_locked(sh, &mut core, &mut failed);
                if core.ring.queued() > 0 {
                    let _ = core.ring.flush();
                }
            }
            self.mirror(&core);
        }
        self.deliver_failed(sh, failed);
    }

    /// Runs `f` on the ring under its lock (registration and the like).
    pub(crate) fn with_ring<R>(
        &self,
        f: impl FnOnce(&mut AnyRing<Target>) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut core = self.lock();
        if core.closed {
            return Err(crate::error::shutdown_error());
        }
        f(&mut core.ring)
    }

    /// Changes the controller (its limits, its P99 ceiling) and puts its
    /// new decision in force at once: the in-flight limit and the batch
    /// threshold (unless the user pinned the batch), then refills.
    pub(crate) fn update_controller(&self, sh: &Shared, f: impl FnOnce(&mut CtlBox)) {
        let mut c = lock(&self.ctl);
        f(&mut c);
        let d = c.controller.current();
        drop(c);
        let (limit, batch) = self.clamp_decision(sh, d);
        self.limit.store(limit, Relaxed);
        self.batch.store(batch, Relaxed);
        self.apply(sh);
    }

    /// A controller's decision as stored: both clamped to `[1, capacity]`,
    /// the batch replaced by the user's pinned one if there is one.
    fn clamp_decision(&self, sh: &Shared, d: Decision) -> (u32, u32) {
        let cap = self.capacity.max(1);
        let limit = d.in_flight_limit.clamp(1, cap);
        let batch = match sh.batch_override.load(Relaxed) {
            0 => d.batch_threshold,
            n => n,
        }
        .clamp(1, cap);
        (limit, batch)
    }
}

/// One batch in progress on a shard: holds the ring lock (see
/// [`Shard::begin_batch`]).
pub(crate) struct BatchGuard<'a> {
    shard: &'a Shard,
    sh: &'a Shared,
    /// Released in `Drop`, before the failed ops are delivered.
    core: ManuallyDrop<RingGuard<'a, Core>>,
    limit: u32,
    /// The ring's batch threshold, restored at the end.
    batch: u32,
    accepted: u64,
    fixed_bufs: u64,
    fixed_files: u64,
    failed: Vec<Failed>,
}

impl BatchGuard<'_> {
    /// The locked ring, to check an op before it becomes work.
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Ops accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted
    }

    /// [`accept`](Self::accept) for a plain callback op without a timeout,
    /// as [`Shard::submit_lean`] takes it: straight to the ring with its
    /// callback in the callback table when the backlog is empty and the
    /// limit allows (and an entry is free); otherwise `make_ctl` builds its
    /// control block target and it is accepted as any other op.
    #[inline(always)]
    pub(crate) fn accept_lean<M, C>(&mut self, op: &mut Op, make_cb: M, make_ctl: C)
    where
        M: FnOnce() -> Callback,
        C: FnOnce(Callback) -> Target,
    {
        let shard = self.shard;
        let core = &mut **self.core;
        if !(core.backlog.is_empty() && shard.busy(core) < self.limit) {
            let op = std::mem::replace(op, Op::Nop);
            return self.accept(op, make_ctl(make_cb()), None);
        }
        let target = match shard.cb_table.store(&mut core.cb_alloc, op.kind(), make_cb) {
            Ok(l) => Target::lean(l),
            Err(make_cb) => {
                let op = std::mem::replace(op, Op::Nop);
                return self.accept(op, make_ctl(make_cb()), None);
            }
        };
        self.accepted += 1;
        if let Err(p) = shard.push_one(self.sh, core, op, target) {
            match *p {
                PushErr::Full(w) => core.backlog.push_back(w),
                PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
            }
        }
    }

    /// Accepts one op exactly as [`Shard::submit`] does: pushed while the
    /// backlog is empty and the in-flight limit allows, otherwise appended
    /// to the FIFO backlog. A push the ring refuses for good (not expected:
    /// the caller checks first) completes the op with the error, so it
    /// still gets its one completion.
    #[inline(always)]
    pub(crate) fn accept(&mut self, mut op: Op, target: Target, timeout: Option<Duration>) {
        let info = target.info();
        self.fixed_bufs += u64::from(info.fixed_buf);
        self.fixed_files += u64::from(info.fixed_file);
        self.accepted += 1;
        let shard = self.shard;
        let core = &mut **self.core;
        if timeout.is_none() && core.backlog.is_empty() && shard.busy(core) < self.limit {
            if let Err(p) = shard.push_one(self.sh, core, &mut op, target) {
                match *p {
                    PushErr::Full(w) => core.backlog.push_back(w),
                    PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
                }
            }
            return;
        }
        let work = Work::Single {
            op,
            target,
            timeout,
        };
        if core.backlog.is_empty() && shard.busy(core) < self.limit {
            if let Err(p) = shard.push(self.sh, core, work) {
                match *p {
                    PushErr::Full(w) => core.backlog.push_back(w),
                    PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
                }
            }
        } else {
            core.backlog.push_back(work);
        }
    }
}

impl Drop for BatchGuard<'_> {
    /// Ends the batch: FIFO refill up to the limit, one flush, the counters,
    /// then (unlocked) the ops that failed.
    fn drop(&mut self) {
        let shard = self.shard;
        {
            let core = &mut **self.core;
            // Older backlog work (and this batch's) goes in FIFO order as far
            // as the limit allows.
            if !core.backlog.is_empty() {
                shard.refill_pushes(self.sh, core, &mut self.failed, self.limit);
            }
            core.ring.set_batch_threshold(self.batch);
            if core.ring.queued() > 0 {
                let _ = core.ring.flush();
            }
            // Accepted (only written under the ring lock: no atomic RMW).
            shard
                .accepted
                .store(shard.accepted.load(Relaxed) + self.accepted, Relaxed);
            // Counted under the ring lock, so a concurrent unregister (which
            // checks under the same lock) sees them.
            if self.fixed_bufs > 0 {
                shard.fixed_bufs.fetch_add(self.fixed_bufs, Relaxed);
            }
            if self.fixed_files > 0 {
                shard.fixed_files.fetch_add(self.fixed_files, Relaxed);
            }
            shard.mirror(core);
        }
        // SAFETY: `core` is dropped exactly once, here, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.core) };
        let failed = std::mem::take(&mut self.failed);
        if !failed.is_empty() {
            shard.deliver_failed(self.sh, failed);
        }
    }
}

/// Bytes a completion transferred, for the stats: the result of a
/// successful read or write (0 for errors and for ops that move no data).
#[inline]
fn completed_bytes(token: &Target, result: i32) -> u64 {
    if result >= 0 && token.info().counts_bytes() {
        result as u64
    } else {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    /// The backlog gauges (`backlog_len` and the meter's, which the
    /// controller's samples report) follow the backlog as it grows and
    /// drains, though `mirror` stores them only when the length changes.
    #[test]
    fn backlog_gauges_follow_the_backlog() {
        let Ok(e) = crate::Engine::builder()
            .rings(1)
            .queue_depth(8)
            .controller(auraio_controller::ControllerConfig::Fixed {
                in_flight: 1,
                batch: 1,
            })
            .reaper(crate::ReaperMode::Never)
            .build()
        else {
            eprintln!("io_uring unavailable: skipped");
            return;
        };
        let shard = &e.sh().rings[0];
        for _ in 0..4 {
            e.submit(crate::Request::nop(), |r: std::io::Result<()>| r.unwrap())
                .unwrap();
        }
        assert_eq!(shard.backlog_len.load(Relaxed), 3);
        let s = shard.meter.take_sample(Duration::from_secs(1), 1);
        assert_eq!(s.backlog, 3, "the sample sees the backlog");
        e.run_until_idle().unwrap();
        assert_eq!(shard.backlog_len.load(Relaxed), 0);
        // The first sample after draining still reports the interval's
        // peak; the next one the empty backlog.
        let _ = shard.meter.take_sample(Duration::from_secs(2), 0);
        let s = shard.meter.take_sample(Duration::from_secs(3), 0);
        assert_eq!(s.backlog, 0, "the gauge went back to 0");
    }
}
