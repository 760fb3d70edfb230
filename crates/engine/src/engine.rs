//! [`Engine`]: the shared core behind both faces (callbacks and futures).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use auraio_controller::{
    ControllerState, Decision, IoRecord, Sample, TickRecord, TraceHeader, TraceWriter,
};
use auraio_ring::{AnyRing, BackendKind, Completion, IoBufMut, RingConfig, RingKind};

use crate::batch::BatchError;
use crate::callback::Callback;
use crate::config::{EngineBuilder, ReaperMode, RingSelection};
use crate::error::{shutdown_error, SubmitError};
use crate::future::OpFuture;
use crate::op_state::{Deliver, OpCtl, OpHandle, OpInfo, Target};
use crate::request::{
    check_op, check_ring_limits, clone_error, fail_op, AsIoFd, BufResult, FixedFile, Request,
};
use crate::shard::{Shard, Work};

/// How long a background reaper blocks in the kernel before re-checking for
/// shutdown (it is also woken by a NOP at shutdown).
const REAPER_WAIT: Duration = Duration::from_millis(50);
/// Longest single block in [`Engine::wait`] before re-checking all rings.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// How long `Engine::wait` sleeps between polls on a kernel without timed
/// waits (no `IORING_FEAT_EXT_ARG`, before Linux 5.11).
const UNTIMED_SLICE: Duration = Duration::from_micros(200);

/// Blocks on `waiter` until a completion may be ready or `slice` passed.
/// On a kernel without timed waits (before Linux 5.11) it cannot block in
/// the kernel with a timeout, so it sleeps a short while instead, as the
/// reapers do: the caller polls again either way.
fn block_on_ring(waiter: &auraio_ring::Waiter, slice: Duration) -> io::Result<()> {
    match waiter.wait(1, Some(slice)) {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            thread::sleep(slice.min(UNTIMED_SLICE));
            Ok(())
        }
        r => r,
    }
}
/// Block slice when several rings have ops in flight (the caller can only
/// block on one ring at a time).
const MULTI_RING_SLICE: Duration = Duration::from_millis(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Threads {
    tick: Option<JoinHandle<()>>,
    reapers: Vec<JoinHandle<()>>,
}

type TraceSink = TraceWriter<BufWriter<File>>;

/// State shared by every handle, the tick and reaper threads and futures.
pub(crate) struct Shared {
    pub(crate) rings: Vec<Shard>,
    selection: RingSelection,
    rr: AtomicUsize,
    pub(crate) closed: AtomicBool,
    start: Instant,
    tick: Duration,
    stop_tick: Mutex<bool>,
    stop_cv: Condvar,
    threads: Mutex<Threads>,
    reapers_started: AtomicBool,
    reaper_mode: ReaperMode,
    pub(crate) batch_override: AtomicU32,
    trace: Option<Mutex<TraceSink>>,
    trace_io_every: u32,
    pub(crate) fault: Option<crate::config::FaultInjector>,
    pub(crate) fault_plan: Option<crate::config::FaultPlan>,
    /// Completions seen by the fault hook/plan (their `FaultPoint::seq`).
    fault_seq: AtomicU64,
    trace_errors: AtomicU64,
    panic_reported: AtomicBool,
    tick_panic_reported: AtomicBool,
    stop_run: AtomicBool,
    pub(crate) controller_name: String,
    wait_cursor: AtomicUsize,
}

impl Shared {
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn id(&self) -> usize {
        self as *const Shared as usize
    }

    pub(crate) fn trace_errors(&self) -> u64 {
        self.trace_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn trace_io(&self, ring: u32, ctl: &OpCtl, latency_ns: u64, result: i32) {
        if let Some(t) = &self.trace {
            let info = &ctl.info;
            let (t_submit_ns, in_flight_at_submit) = ctl.submit_stamp();
            let rec = IoRecord {
                ring,
                t_submit_ns,
                latency_ns,
                op: info.kind.name().to_string(),
                len: info.len,
                in_flight_at_submit,
                result: i64::from(result),
            };
            if lock(t).io(&rec).is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn trace_tick(
        &self,
        ring: u32,
        sample: &Sample,
        decision: Decision,
        state: &ControllerState,
    ) {
        if let Some(t) = &self.trace {
            let rec = TickRecord {
                ring,
                sample: sample.clone(),
                decision,
                state: state.clone(),
            };
            if lock(t).tick(&rec).is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// True when a fault hook or plan is configured (tests only).
    pub(crate) fn has_faults(&self) -> bool {
        self.fault.is_some() || self.fault_plan.is_some()
    }

    /// The fault to apply to one completion (`None`: no fault injection
    /// configured, the normal case).
    pub(crate) fn fault_for(
        &self,
        ring: u32,
        info: &OpInfo,
        result: i32,
        latency_ns: u64,
    ) -> Option<crate::config::Fault> {
        if !self.has_faults() {
            return None;
        }
        let point = crate::config::FaultPoint {
            ring,
            op: info.kind,
            result,
            latency_ns,
            seq: self.fault_seq.fetch_add(1, Ordering::Relaxed),
            len: info.len,
        };
        let mut f = crate::config::Fault::none();
        if let Some(p) = &self.fault_plan {
            f = p.decide(&point);
        }
        if let Some(hook) = &self.fault {
            f = f.or(hook(&point));
        }
        Some(f)
    }

    pub(crate) fn report_panic(&self, ring: u32, msg: &str) {
        if !self.panic_reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "auraio: a completion callback panicked on ring {ring} ({msg}); the engine \
                 keeps running. Later panics are only counted (EngineStats::callback_panics)."
            );
        }
    }

    /// Starts one reaper thread per ring (once).
    fn start_reapers(self: &Arc<Self>) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) || self.reapers_started.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let mut handles = Vec::with_capacity(self.rings.len());
        for idx in 0..self.rings.len() {
            let sh = Arc::clone(self);
            let h = thread::Builder::new()
                .name(format!("auraio-reap-{idx}"))
                .spawn(move || reaper_loop(sh, idx))?;
            handles.push(h);
        }
        lock(&self.threads).reapers.extend(handles);
        Ok(())
    }

    pub(crate) fn cancel(&self, ctl: &Arc<OpCtl>) -> io::Result<()> {
        if ctl.owner != self.id() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this operation belongs to another engine",
            ));
        }
        match self.rings.get(ctl.ring as usize) {
            Some(shard) => shard.cancel(self, ctl),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "operation handle names no ring of this engine",
            )),
        }
    }

    /// Stops the threads, fails the backlog, drains every ring; every
    /// accepted op gets its one completion. Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        *lock(&self.stop_tick) = true;
        self.stop_cv.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = thread::current().id();
        if let Some(t) = threads.tick {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        // Wake reapers blocked in the kernel.
        for shard in &self.rings {
            let _ = shard.with_ring(|r| r.notify());
        }
        for shard in &self.rings {
            shard.shutdown(self);
        }
        for r in threads.reapers {
            if r.thread().id() != me {
                let _ = r.join();
            }
        }
        if let Some(t) = &self.trace {
            if lock(t).flush().is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn reaper_loop(sh: Arc<Shared>, idx: usize) {
    let shard = &sh.rings[idx];
    let mut buf: Vec<Completion<Target>> = Vec::with_capacity(64);
    let mut reported = false;
    while !sh.closed.load(Ordering::Acquire) {
        match shard.poll(&sh, &mut buf) {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                if !reported {
                    eprintln!("auraio: reaper for ring {idx}: poll failed: {e}");
                    reported = true;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
        if sh.closed.load(Ordering::Acquire) {
            break;
        }
        // Completions held back by fault injection are delivered by a poll
        // once due: do not sleep past that.
        let slice = shard.held_due_in().map_or(REAPER_WAIT, |d| {
            d.clamp(Duration::from_micros(50), REAPER_WAIT)
        });
        if shard.waiter.wait(1, Some(slice)).is_err() {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

fn tick_loop(sh: Arc<Shared>) {
    let mut next = Instant::now() + sh.tick;
    loop {
        {
            let mut stop = lock(&sh.stop_tick);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = sh
                    .stop_cv
                    .wait_timeout(stop, next - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        let now_i = Instant::now();
        next += sh.tick;
        if next < now_i {
            next = now_i + sh.tick;
        }
        let now = sh.start.elapsed();
        for shard in &sh.rings {
            // A panicking controller (e.g. a custom one) must not take the
            // tick thread down: the ring keeps its last decision.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.tick(&sh, now)));
            if r.is_err() && !sh.tick_panic_reported.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "auraio: the controller of ring {} panicked during a tick; \
                     its ring keeps the last decision",
                    shard.idx
                );
            }
        }
    }
}

/// Shuts the engine down when the last [`Engine`] clone is dropped.
struct Handle {
    sh: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.sh.shutdown();
    }
}

thread_local! {
    static POLL_BUF: Cell<Vec<Completion<Target>>> = const { Cell::new(Vec::new()) };
}

/// A self-tuning io_uring engine: one ring per CPU (by default), each with
/// its own controller choosing the in-flight limit and batch size.
///
/// `Send + Sync` and cheap to clone (all clones share one engine); many
/// threads may submit at once. Dropping the last clone shuts it down: the
/// backlog fails with `ECANCELED`, in-flight ops are cancelled or drained,
/// and every accepted op still gets its one completion.
///
/// Two faces over one core:
/// - callbacks: [`read`](Self::read), [`write`](Self::write), ... and
///   [`submit`](Self::submit); callbacks run in [`poll`](Self::poll),
///   [`wait`](Self::wait), [`run`](Self::run) (or on the reaper threads when
///   they run, see [`ReaperMode`]). Never under an engine lock: a callback
///   may submit more I/O.
/// - futures: [`read_at`](Self::read_at), [`write_at`](Self::write_at), ...
///   and [`call`](Self::call); they work on any executor.
#[derive(Clone)]
pub struct Engine {
    handle: Arc<Handle>,
    pinned: Option<usize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rings", &self.sh().rings.len())
            .field("pinned", &self.pinned)
            .field("closed", &self.sh().closed.load(Ordering::Relaxed))
            .finish()
    }
}

macro_rules! cb_op {
    ($(#[$m:meta])* $name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty, $req:expr) => {
        $(#[$m])*
        pub fn $name<F>(&self, $($arg: $ty,)* cb: F) -> Result<OpHandle, SubmitError<$out>>
        where
            F: FnOnce($out) + Send + 'static,
        {
            self.submit_with_handle($req, cb)
        }
    };
}

impl Engine {
    /// An engine with every default: one ring per online CPU, AIMD per ring,
    /// 1024 slots per ring, the in-flight limit starting low and tuned.
    pub fn new() -> io::Result<Engine> {
        EngineBuilder::default().build()
    }

    /// A builder for every knob.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    pub(crate) fn from_builder(b: EngineBuilder) -> io::Result<Engine> {
        let n = match b.rings {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an engine needs at least one ring",
                ))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if b.queue_depth == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "queue depth must be at least 1",
            ));
        }
        let mut shards = Vec::with_capacity(n);
        let mut controller_name = String::new();
        let mut capacity = 0;
        for i in 0..n {
            let cfg = RingConfig {
                sq_entries: b.queue_depth,
                cq_entries: None,
                sqpoll_idle: b.sqpoll.then_some(b.sqpoll_idle),
                batch_threshold: b.batch_threshold.unwrap_or(8).max(1),
                eventfd: b.eventfd,
                timed_waits: b.timed_waits,
            };
            let ring: AnyRing<Target> = AnyRing::new(&cfg, b.backend)?;
            let cap = ring.capacity();
            capacity = cap;
            let max = b.max_in_flight.unwrap_or(cap).min(cap);
            let limits = auraio_controller::Limits::new(b.min_in_flight, max, b.initial_in_flight);
            let mut ctl = match &b.factory {
                Some(f) => f(i),
                None => b
                    .controller
                    .build(limits)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
            };
            ctl.set_limits(limits);
            if let Some(p) = b.max_p99 {
                ctl.set_p99_ceiling(p);
            }
            if i == 0 {
                controller_name = ctl.state().name;
            }
            shards.push(Shard::new(i as u32, ring, ctl, limits)?);
        }
        let tick = b.tick.max(Duration::from_millis(1));
        let trace = match &b.trace_path {
            Some(p) => {
                let f = File::create(p).map_err(|e| {
                    io::Error::new(e.kind(), format!("creating trace {}: {e}", p.display()))
                })?;
                let mut header = TraceHeader::new(
                    controller_name.clone(),
                    n as u32,
                    capacity,
                    u64::try_from(tick.as_millis()).unwrap_or(u64::MAX),
                );
                header.note = b.trace_note.clone();
                Some(Mutex::new(TraceWriter::new(BufWriter::new(f), header)?))
            }
            None => None,
        };
        let sh = Arc::new(Shared {
            rings: shards,
            selection: b.ring_selection,
            rr: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            start: Instant::now(),
            tick,
            stop_tick: Mutex::new(false),
            stop_cv: Condvar::new(),
            threads: Mutex::new(Threads::default()),
            reapers_started: AtomicBool::new(false),
            reaper_mode: b.reaper,
            batch_override: AtomicU32::new(b.batch_threshold.map_or(0, |n| n.max(1))),
            trace,
            trace_io_every: b.trace_io_every,
            fault: b.fault.clone(),
            fault_plan: b.fault_plan.clone(),
            fault_seq: AtomicU64::new(0),
            trace_errors: AtomicU64::new(0),
            panic_reported: AtomicBool::new(false),
            tick_panic_reported: AtomicBool::new(false),
            stop_run: AtomicBool::new(false),
            controller_name,
            wait_cursor: AtomicUsize::new(0),
        });
        if let Some(n) = b.batch_threshold {
            for shard in &sh.rings {
                shard
                    .batch
                    .store(n.clamp(1, shard.capacity.max(1)), Ordering::Relaxed);
                shard.apply(&sh);
            }
        }
        // From here on, dropping `engine` shuts everything down cleanly.
        let engine = Engine {
            handle: Arc::new(Handle {
                sh: Arc::clone(&sh),
            }),
            pinned: None,
        };
        let ticker = Arc::clone(&sh);
        let t = thread::Builder::new()
            .name("auraio-tick".into())
            .spawn(move || tick_loop(ticker))?;
        lock(&sh.threads).tick = Some(t);
        if b.reaper == ReaperMode::Always {
            sh.start_reapers()?;
        }
        Ok(engine)
    }

    pub(crate) fn sh(&self) -> &Arc<Shared> {
        &self.handle.sh
    }

    /// Number of rings.
    pub fn ring_count(&self) -> usize {
        self.sh().rings.len()
    }

    /// A handle (sharing this engine) whose submissions all go to ring
    /// `ring`: the caller-chosen ring selection.
    pub fn on_ring(&self, ring: usize) -> io::Result<Engine> {
        if ring >= self.ring_count() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ring {ring} out of range (engine has {})",
                    self.ring_count()
                ),
            ));
        }
        Ok(Engine {
            handle: Arc::clone(&self.handle),
            pinned: Some(ring),
        })
    }

    /// The backend each ring runs on: io_uring, or the blocking thread pool
    /// (asked for, or the fallback when io_uring is unavailable).
    pub fn backend(&self, ring: usize) -> Option<BackendKind> {
        self.sh().rings.get(ring).map(|s| s.backend)
    }

    /// Why ring `ring` fell back to the blocking backend (`None` when it did
    /// not).
    pub fn fallback_reason(&self, ring: usize) -> Option<String> {
        self.sh()
            .rings
            .get(ring)
            .and_then(|s| s.fallback_reason.clone())
    }

    /// The kind each ring got (`SqPoll` only when asked for and permitted).
    pub fn ring_kind(&self, ring: usize) -> Option<RingKind> {
        self.sh().rings.get(ring).map(|s| s.kind)
    }

    /// The eventfd the kernel signals when ring `ring` posts completions
    /// (when built with [`EngineBuilder::eventfd`]). Register it with a
    /// reactor and call [`poll`](Self::poll) when it is readable (read it to
    /// reset it).
    pub fn eventfd(&self, ring: usize) -> Option<RawFd> {
        self.sh().rings.get(ring).and_then(|s| s.eventfd)
    }

    #[inline]
    fn pick(&self) -> usize {
        if let Some(p) = self.pinned {
            return p;
        }
        let sh = self.sh();
        let n = sh.rings.len();
        if n <= 1 {
            return 0;
        }
        match sh.selection {
            RingSelection::CurrentCpu => {
                // SAFETY: sched_getcpu has no preconditions.
                let cpu = unsafe { libc::sched_getcpu() };
                if cpu >= 0 {
                    cpu as usize % n
                } else {
                    sh.rr.fetch_add(1, Ordering::Relaxed) % n
                }
            }
            RingSelection::RoundRobin => sh.rr.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// What a new op is, for stats, traces and fault injection.
    #[inline(always)]
    fn op_info(&self, idx: usize, op: &auraio_ring::Op, shortened: bool) -> OpInfo {
        let sh = self.sh();
        OpInfo {
            kind: op.kind(),
            len: op.len(),
            traced: sh.rings[idx].sample_io(sh.trace_io_every),
            shortened,
            fixed_buf: matches!(
                op,
                auraio_ring::Op::ReadFixed { .. } | auraio_ring::Op::WriteFixed { .. }
            ),
            fixed_file: crate::request::uses_fixed_file(op),
        }
    }

    /// A new op's control block (for its handle or future) and its
    /// completion target (for the ring): the op's one `Target`, as the
    /// callback kept in the block requires.
    #[inline(always)]
    fn target(
        &self,
        idx: usize,
        (deliver, cb): (Deliver, Option<Callback>),
        op: &auraio_ring::Op,
        shortened: bool,
    ) -> (Arc<OpCtl>, Target) {
        let sh = self.sh();
        let info = self.op_info(idx, op, shortened);
        let ctl = OpCtl::new(idx as u32, sh.id(), info, cb);
        let target = Target::ctl(Arc::clone(&ctl), deliver);
        (ctl, target)
    }

    /// For [`submit_single`](Self::submit_single): a control block shared
    /// by the target and the caller (a handle or a future).
    #[inline(always)]
    fn with_handle(
        &self,
        idx: usize,
        deliver: (Deliver, Option<Callback>),
        op: &auraio_ring::Op,
        shortened: bool,
    ) -> (Arc<OpCtl>, Target) {
        self.target(idx, deliver, op, shortened)
    }

    /// The batch path behind [`submit_batch`](Self::submit_batch) and
    /// [`submit_batch_with_handles`](Self::submit_batch_with_handles).
    fn batch_impl<O, F, It>(
        &self,
        mut iter: It,
        mut handles: Option<&mut Vec<OpHandle>>,
    ) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        It: Iterator<Item = (Request<O>, F)>,
    {
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            return Err(BatchError::new(0, shutdown_error(), None, iter.collect()));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let Some(mut guard) = shard.begin_batch(sh) else {
            // Shut down before anything was taken: all of it comes back.
            return Err(BatchError::new(0, shutdown_error(), None, iter.collect()));
        };
        for (req, cb) in iter.by_ref() {
            // The op stays where the request put it (see `submit_single`).
            let Request {
                mut op,
                pre_error,
                timeout,
                conv,
            } = req;
            // Everything that can refuse the op is checked here, before its
            // callback is handed over, so a refused op comes back whole.
            if let Some(e) = pre_error
                .or_else(|| check_op(&op))
                .or_else(|| check_ring_limits(&op))
                .or_else(|| Shard::unsupported_op(guard.core(), &op, timeout.is_some()))
            {
                let accepted = guard.accepted() as usize;
                drop(guard);
                let out = fail_op(op, conv, clone_error(&e));
                return Err(BatchError::new(
                    accepted,
                    e,
                    Some((out, cb)),
                    iter.collect(),
                ));
            }
            let shortened = match &sh.fault_plan {
                Some(p) => p.maybe_shorten_in_place(&mut op),
                None => false,
            };
            let make_cb = move || Callback::new(move |r, res| cb(conv(r, res)));
            let info = self.op_info(idx, &op, shortened);
            let make_ctl = |cb: Callback| {
                Target::ctl(
                    OpCtl::new(idx as u32, sh.id(), info, Some(cb)),
                    Deliver::Callback,
                )
            };
            // The lean path as in `submit` (see there), for ops nobody
            // gets a handle to.
            let lean = handles.is_none()
                && timeout.is_none()
                && !info.traced
                && !info.shortened
                && !info.fixed_buf
                && !info.fixed_file
                && !sh.has_faults();
            if lean {
                guard.accept_lean(&mut op, make_cb, make_ctl);
                // Taken (`Op::Nop` left in its place, which owns nothing:
                // no drop glue per op), as in `submit`.
                if matches!(op, auraio_ring::Op::Nop) {
                    std::mem::forget(op);
                }
                continue;
            }
            let target = make_ctl(make_cb());
            if let Some(h) = handles.as_deref_mut() {
                if let Some(ctl) = target.ctl_arc() {
                    h.push(OpHandle { ctl });
                }
            }
            guard.accept(op, target, timeout);
        }
        let accepted = guard.accepted() as usize;
        drop(guard);
        Ok(accepted)
    }

    /// Submits one request; `deliver` is built from its converter, and
    /// `make` builds the op's control block and target (see
    /// [`with_handle`](Self::with_handle)) and what comes back on success.
    /// (`submit` has its own path, see there.)
    #[inline(always)]
    fn submit_single<O: 'static, R>(
        &self,
        req: Request<O>,
        deliver: impl FnOnce(crate::request::Conv<O>) -> (Deliver, Option<Callback>),
        make: impl FnOnce(
            &Self,
            usize,
            (Deliver, Option<Callback>),
            &auraio_ring::Op,
            bool,
        ) -> (R, Target),
    ) -> Result<R, SubmitError<O>> {
        // The op stays where the request put it until the ring takes it (no
        // move into a new local, nor through a match: each copy of it
        // right after the caller's narrow stores is a store-forwarding
        // stall).
        let Request {
            mut op,
            pre_error,
            timeout,
            conv,
        } = req;
        if let Some(e) = pre_error.or_else(|| check_op(&op)) {
            return Err(SubmitError::new(clone_error(&e), fail_op(op, conv, e)));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            let e = shutdown_error();
            return Err(SubmitError::new(shutdown_error(), fail_op(op, conv, e)));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let shortened = match &sh.fault_plan {
            Some(p) => p.maybe_shorten_in_place(&mut op),
            None => false,
        };
        let (ctl, target) = make(self, idx, deliver(conv), &op, shortened);
        let submitted = match timeout {
            None => shard.submit_one(sh, op, target),
            Some(_) => shard.submit(
                sh,
                Work::Single {
                    op,
                    target,
                    timeout,
                },
            ),
        };
        match submitted {
            Ok(()) => Ok(ctl),
            Err(refused) => {
                let (work, e) = *refused;
                let op = shard.refused_op(work);
                let op = if shortened {
                    crate::fault::unshorten_op(op)
                } else {
                    op
                };
                let out = fail_op(op, conv, clone_error(&e));
                Err(SubmitError::new(e, out))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn submit_pair<A: 'static, B: 'static>(
        &self,
        first: Request<A>,
        da: impl FnOnce(crate::request::Conv<A>) -> (Deliver, Option<Callback>),
        second: Request<B>,
        db: impl FnOnce(crate::request::Conv<B>) -> (Deliver, Option<Callback>),
    ) -> Result<(Arc<OpCtl>, Arc<OpCtl>), SubmitError<(A, B)>> {
        let fail = |a: Request<A>, b: Request<B>, e: io::Error| {
            let out = (a.fail(clone_error(&e)), b.fail(clone_error(&e)));
            SubmitError::new(e, out)
        };
        if let Some(e) = first.pre_error.as_ref().or(second.pre_error.as_ref()) {
            let e = clone_error(e);
            return Err(fail(first, second, e));
        }
        if let Some(e) = check_op(&first.op).or_else(|| check_op(&second.op)) {
            return Err(fail(first, second, e));
        }
        if first.timeout.is_some() || second.timeout.is_some() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "per-op timeouts cannot be combined with linked operations",
            );
            return Err(fail(first, second, e));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            return Err(fail(first, second, shutdown_error()));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let (conv_a, conv_b) = (first.conv, second.conv);
        let (ca, ta) = self.target(idx, da(conv_a), &first.op, false);
        let (cb, tb) = self.target(idx, db(conv_b), &second.op, false);
        let work = Work::linked((first.op, ta), (second.op, tb));
        match shard.submit(sh, work) {
            Ok(()) => Ok((ca, cb)),
            Err(refused) => {
                let (work, e) = *refused;
                let (oa, ob) = match work {
                    Work::Linked(p) => (p.first.0, p.second.0),
                    // Not produced for linked work; keep the buffers anyway.
                    Work::Single { op, .. } => (op, auraio_ring::Op::Nop),
                };
                let out = (
                    fail_op(oa, conv_a, clone_error(&e)),
                    fail_op(ob, conv_b, clone_error(&e)),
                );
                Err(SubmitError::new(e, out))
            }
        }
    }

    // ----- generic faces --------------------------------------------------

    /// Submits `req`; `cb` gets its output once it completes.
    ///
    /// Contract: `Err` means nothing was submitted and `cb` will never be
    /// called (the error carries the output, with the buffers); `Ok` means
    /// `cb` will be called exactly once: with the result, or with
    /// `ECANCELED` if the op is cancelled or the engine shuts down first.
    /// A panic in `cb` is caught and counted; the engine keeps working.
    ///
    /// No [`OpHandle`] is made (the cheapest way to submit one op); use
    /// [`submit_with_handle`](Self::submit_with_handle) to be able to
    /// [`cancel`](Self::cancel) the op or ask whether it is done.
    #[inline(always)]
    pub fn submit<O, F>(&self, req: Request<O>, cb: F) -> Result<(), SubmitError<O>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
    {
        // The lean path (see `crate::lean`): no control block, the
        // callback straight into the ring's callback table, for an op
        // without a timeout that nothing else needs to observe: not traced,
        // not rewritten by a fault plan, no fault hook, no registered
        // buffer or file (counted per op for unregistering).
        let Request {
            mut op,
            pre_error,
            timeout,
            conv,
        } = req;
        if let Some(e) = pre_error.or_else(|| check_op(&op)) {
            return Err(SubmitError::new(clone_error(&e), fail_op(op, conv, e)));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            let e = shutdown_error();
            return Err(SubmitError::new(shutdown_error(), fail_op(op, conv, e)));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let shortened = match &sh.fault_plan {
            Some(p) => p.maybe_shorten_in_place(&mut op),
            None => false,
        };
        let info = self.op_info(idx, &op, shortened);
        let make_cb = move || Callback::new(move |r, res| cb(conv(r, res)));
        let make_ctl = |cb: Callback| {
            Target::ctl(
                OpCtl::new(idx as u32, sh.id(), info, Some(cb)),
                Deliver::Callback,
            )
        };
        let lean = timeout.is_none()
            && !info.traced
            && !info.shortened
            && !info.fixed_buf
            && !info.fixed_file
            && !sh.has_faults();
        let submitted = if lean {
            let r = shard.submit_lean(sh, &mut op, make_cb, make_ctl);
            // The op was taken out of `op` (accepted or refused, `Op::Nop`
            // is left in its place: it owns nothing). Said here so no drop
            // glue is called per op.
            if matches!(op, auraio_ring::Op::Nop) {
                std::mem::forget(op);
            } else {
                drop(op);
            }
            r
        } else {
            let target = make_ctl(make_cb());
            match timeout {
                None => shard.submit_one(sh, op, target),
                Some(_) => shard.submit(
                    sh,
                    Work::Single {
                        op,
                        target,
                        timeout,
                    },
                ),
            }
        };
        match submitted {
            Ok(()) => Ok(()),
            Err(refused) => {
                let (work, e) = *refused;
                let op = shard.refused_op(work);
                let op = if shortened {
                    crate::fault::unshorten_op(op)
                } else {
                    op
                };
                let out = fail_op(op, conv, clone_error(&e));
                Err(SubmitError::new(e, out))
            }
        }
    }

    /// [`submit`](Self::submit), also returning an [`OpHandle`] to
    /// [`cancel`](Self::cancel) the op or ask whether it is done. Same
    /// contract; the handle costs a shared reference to the op's control
    /// block (an atomic increment now, a decrement when it is dropped).
    pub fn submit_with_handle<O, F>(
        &self,
        req: Request<O>,
        cb: F,
    ) -> Result<OpHandle, SubmitError<O>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
    {
        self.submit_single(
            req,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb(conv(r, res)))),
                )
            },
            Self::with_handle,
        )
        .map(|ctl| OpHandle { ctl })
    }

    /// Submits many `(request, callback)` pairs at once, in order, on one
    /// ring: the cheap way to submit a burst of ops.
    ///
    /// Same per-op contract as [`submit`](Self::submit), at a lower cost per
    /// op: the ring is locked once for the whole batch, no [`OpHandle`] is
    /// made (use [`submit_batch_with_handles`](Self::submit_batch_with_handles)
    /// to get them), and the batch's SQEs go to the kernel together, in one
    /// `io_uring_enter`, after the last op was queued (or earlier in pieces
    /// when the submission queue fills up). The in-flight limit and the FIFO
    /// backlog apply exactly as for `submit`: ops beyond the controller's
    /// limit wait in the ring's backlog, in batch order, behind any ops
    /// already waiting there. The whole batch goes to the ring `submit`
    /// would pick for its first op (the current CPU's by default, or the
    /// pinned ring of an [`on_ring`](Self::on_ring) handle).
    ///
    /// Returns how many ops were accepted (all of them on `Ok`); each of
    /// their callbacks is then called exactly once, with the result or
    /// `ECANCELED` (cancel, shutdown). An empty batch is `Ok(0)`.
    ///
    /// # A bad request in the batch
    ///
    /// Each op is checked (its request's own error, file positions, buffer
    /// sizes, kernel support) just before it is queued. The first op that
    /// fails a check stops the batch: the ops before it stay accepted (they
    /// run and complete normally); that op and every later one are **not**
    /// submitted, and come back in the [`BatchError`] (the refused op as its
    /// output, with the error and its buffers, plus its callback; the later
    /// ones as untouched `(request, callback)` pairs). The engine never
    /// calls those callbacks; [`BatchError::complete_all`] does, once each,
    /// if the caller wants that. Nothing is lost or completed twice.
    ///
    /// After [`shutdown`](Self::shutdown) nothing is taken: the error
    /// satisfies [`is_shutdown`](crate::is_shutdown), `accepted()` is 0 and
    /// every pair comes back in the error.
    ///
    /// The iterator is driven while the ring is locked: it should only
    /// produce the pairs (it must not submit to this engine itself).
    pub fn submit_batch<O, F, I>(&self, batch: I) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        I: IntoIterator<Item = (Request<O>, F)>,
    {
        self.batch_impl(batch.into_iter(), None)
    }

    /// [`submit_batch`](Self::submit_batch), also pushing one [`OpHandle`]
    /// per accepted op onto `handles` (in batch order), e.g. to
    /// [`cancel`](Self::cancel) them later. On `Err`, the handles of the
    /// accepted ops were pushed all the same.
    pub fn submit_batch_with_handles<O, F, I>(
        &self,
        batch: I,
        handles: &mut Vec<OpHandle>,
    ) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        I: IntoIterator<Item = (Request<O>, F)>,
    {
        self.batch_impl(batch.into_iter(), Some(handles))
    }

    /// Submits two requests linked (`IOSQE_IO_LINK`): `second` starts only
    /// after `first` succeeded, else it completes with `ECANCELED`. Each gets
    /// its own callback; same contract as [`submit`](Self::submit).
    /// Per-op timeouts cannot be combined with links.
    #[allow(clippy::type_complexity)]
    pub fn submit_linked<A, B, FA, FB>(
        &self,
        first: Request<A>,
        cb_first: FA,
        second: Request<B>,
        cb_second: FB,
    ) -> Result<(OpHandle, OpHandle), SubmitError<(A, B)>>
    where
        A: 'static,
        B: 'static,
        FA: FnOnce(A) + Send + 'static,
        FB: FnOnce(B) + Send + 'static,
    {
        self.submit_pair(
            first,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb_first(conv(r, res)))),
                )
            },
            second,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb_second(conv(r, res)))),
                )
            },
        )
        .map(|(a, b)| (OpHandle { ctl: a }, OpHandle { ctl: b }))
    }

    fn ensure_reaper(&self) {
        let sh = self.sh();
        if sh.reaper_mode == ReaperMode::Auto && !sh.reapers_started.load(Ordering::Acquire) {
            if let Err(e) = sh.start_reapers() {
                eprintln!("auraio: could not start reaper threads: {e}");
            }
        }
    }

    /// Submits `req` and returns a future for its output. The op is
    /// submitted now (not at the first poll). Dropping the future before it
    /// completes cancels the op; the engine keeps its buffers until the
    /// kernel's completion arrives. Works on any executor: completions are
    /// driven by the reaper threads (started on first use, see
    /// [`ReaperMode`]).
    pub fn call<O: 'static>(&self, req: Request<O>) -> OpFuture<O> {
        self.ensure_reaper();
        let conv = req.conv;
        match self.submit_single(req, |_| (Deliver::Future, None), Self::with_handle) {
            Ok(ctl) => OpFuture::pending(ctl, Arc::clone(self.sh()), conv),
            Err(e) => OpFuture::ready(e.into_output()),
        }
    }

    /// Two linked requests as futures (see [`submit_linked`](Self::submit_linked)).
    pub fn call_linked<A: 'static, B: 'static>(
        &self,
        first: Request<A>,
        second: Request<B>,
    ) -> (OpFuture<A>, OpFuture<B>) {
        self.ensure_reaper();
        let (conv_a, conv_b) = (first.conv, second.conv);
        match self.submit_pair(
            first,
            |_| (Deliver::Future, None),
            second,
            |_| (Deliver::Future, None),
        ) {
            Ok((a, b)) => (
                OpFuture::pending(a, Arc::clone(self.sh()), conv_a),
                OpFuture::pending(b, Arc::clone(self.sh()), conv_b),
            ),
            Err(e) => {
                let (a, b) = e.into_output();
                (OpFuture::ready(a), OpFuture::ready(b))
            }
        }
    }

    /// Cancels a submitted op. If it is still in the backlog it completes at
    /// once with `ECANCELED`; if it is in the kernel, an async cancel is
    /// issued and the op completes with `ECANCELED` or, if it finished
    /// first, its own result. Cancelling a finished op does nothing.
    pub fn cancel(&self, op: &OpHandle) -> io::Result<()> {
        self.sh().cancel(&op.ctl)
    }

    // ----- callback face ------------------------------------------------------

    /// Reads up to `buf.bytes_total()` bytes of `fd` at `offset`; `cb` gets
    /// the byte count (or error) and the buffer. See [`submit`](Self::submit)
    /// for the contract.
    pub fn read<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(Request::read(fd, buf, offset), move |(r, b)| cb(r, b))
    }

    /// Writes `buf.bytes_init()` bytes to `fd` at `offset`.
    pub fn write<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(Request::write(fd, buf, offset), move |(r, b)| cb(r, b))
    }

    /// Scatter read into `bufs` at `offset`.
    pub fn readv<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<Vec<B>>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, Vec<B>) + Send + 'static,
    {
        self.submit_with_handle(Request::readv(fd, bufs, offset), move |(r, b)| cb(r, b))
    }

    /// Gather write from `bufs` at `offset`.
    pub fn writev<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<Vec<B>>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, Vec<B>) + Send + 'static,
    {
        self.submit_with_handle(Request::writev(fd, bufs, offset), move |(r, b)| cb(r, b))
    }

    /// Read into a registered buffer (see [`register_buffers`](Self::register_buffers)).
    pub fn read_fixed<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(
            Request::read_fixed(fd, buf, buf_index, offset),
            move |(r, b)| cb(r, b),
        )
    }

    /// Write from a registered buffer.
    pub fn write_fixed<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(
            Request::write_fixed(fd, buf, buf_index, offset),
            move |(r, b)| cb(r, b),
        )
    }

    cb_op!(
        /// `fsync(fd)`.
        fsync(fd: &(impl AsIoFd + ?Sized)) -> io::Result<()>, Request::fsync(fd)
    );
    cb_op!(
        /// `fdatasync(fd)`.
        fdatasync(fd: &(impl AsIoFd + ?Sized)) -> io::Result<()>, Request::fdatasync(fd)
    );
    cb_op!(
        /// `fallocate(fd, mode, offset, len)`.
        fallocate(fd: &(impl AsIoFd + ?Sized), mode: i32, offset: u64, len: u64) -> io::Result<()>,
        Request::fallocate(fd, mode, offset, len)
    );
    cb_op!(
        /// `ftruncate(fd, len)` (`Unsupported` before Linux 6.9).
        ftruncate(fd: &(impl AsIoFd + ?Sized), len: u64) -> io::Result<()>,
        Request::ftruncate(fd, len)
    );
    cb_op!(
        /// Closes `fd` (owned by the op from now on).
        close(fd: OwnedFd) -> io::Result<()>, Request::close(fd)
    );
    cb_op!(
        /// A no-op round trip through the ring.
        nop() -> io::Result<()>, Request::nop()
    );
    cb_op!(
        /// `statx(dir, path, flags, mask)`; `dir` `None` = current directory.
        statx(dir: Option<BorrowedFd<'_>>, path: impl AsRef<Path>, flags: i32, mask: u32)
            -> io::Result<Box<libc::statx>>, Request::statx(dir, path, flags, mask)
    );
    cb_op!(
        /// `openat(dir, path, flags, mode)`; the callback gets the new fd.
        openat(dir: Option<BorrowedFd<'_>>, path: impl AsRef<Path>, flags: i32, mode: u32)
            -> io::Result<OwnedFd>, Request::openat(dir, path, flags, mode)
    );

    // ----- async face ---------------------------------------------------------

    /// Reads up to `buf.bytes_total()` bytes at `offset`:
    /// `let (res, buf) = engine.read_at(&file, buf, 0).await;`
    pub fn read_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::read(fd, buf, offset))
    }

    /// Writes `buf.bytes_init()` bytes at `offset`.
    pub fn write_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::write(fd, buf, offset))
    }

    /// Scatter read at `offset`.
    pub fn readv_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
    ) -> OpFuture<BufResult<Vec<B>>> {
        self.call(Request::readv(fd, bufs, offset))
    }

    /// Gather write at `offset`.
    pub fn writev_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
    ) -> OpFuture<BufResult<Vec<B>>> {
        self.call(Request::writev(fd, bufs, offset))
    }

    /// Read into a registered buffer.
    pub fn read_fixed_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::read_fixed(fd, buf, buf_index, offset))
    }

    /// Write from a registered buffer.
    pub fn write_fixed_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::write_fixed(fd, buf, buf_index, offset))
    }

    /// `fsync(fd)` as a future.
    pub fn fsync_async(&self, fd: &(impl AsIoFd + ?Sized)) -> OpFuture<io::Result<()>> {
        self.call(Request::fsync(fd))
    }

    /// `fdatasync(fd)` as a future.
    pub fn fdatasync_async(&self, fd: &(impl AsIoFd + ?Sized)) -> OpFuture<io::Result<()>> {
        self.call(Request::fdatasync(fd))
    }

    /// `fallocate` as a future.
    pub fn fallocate_async(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        mode: i32,
        offset: u64,
        len: u64,
    ) -> OpFuture<io::Result<()>> {
        self.call(Request::fallocate(fd, mode, offset, len))
    }

    /// `ftruncate` as a future.
    pub fn ftruncate_async(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        len: u64,
    ) -> OpFuture<io::Result<()>> {
        self.call(Request::ftruncate(fd, len))
    }

    /// `close` as a future.
    pub fn close_async(&self, fd: OwnedFd) -> OpFuture<io::Result<()>> {
        self.call(Request::close(fd))
    }

    /// A no-op as a future.
    pub fn nop_async(&self) -> OpFuture<io::Result<()>> {
        self.call(Request::nop())
    }

    /// `statx` as a future.
    pub fn statx_async(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mask: u32,
    ) -> OpFuture<io::Result<Box<libc::statx>>> {
        self.call(Request::statx(dir, path, flags, mask))
    }

    /// `openat` as a future.
    pub fn openat_async(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mode: u32,
    ) -> OpFuture<io::Result<OwnedFd>> {
        self.call(Request::openat(dir, path, flags, mode))
    }

    // ----- driving completions ------------------------------------------------

    /// The rings this handle drives: its pinned ring, or all of them.
    fn driven(&self) -> &[Shard] {
        let rings = &self.sh().rings;
        match self.pinned {
            Some(p) => &rings[p..=p],
            None => rings,
        }
    }

    /// Reaps every ready completion (entering the kernel when ops are in
    /// flight), runs their callbacks / wakes their futures, and refills from
    /// the backlogs. Never blocks. Returns completions delivered.
    ///
    /// Drives every ring, or only the pinned ring of a handle from
    /// [`on_ring`](Self::on_ring) (one thread per ring, no contention).
    pub fn poll(&self) -> io::Result<usize> {
        let sh = self.sh();
        let mut buf = POLL_BUF.with(|b| b.take());
        let mut total = 0;
        let mut first_err = None;
        for shard in self.driven() {
            match shard.poll(sh, &mut buf) {
                Ok(n) => total += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        buf.clear();
        POLL_BUF.with(|b| b.set(buf));
        match first_err {
            Some(e) if total == 0 => Err(e),
            _ => Ok(total),
        }
    }

    /// Like [`poll`](Self::poll), but if nothing is ready and ops are
    /// pending, blocks in the kernel until at least one completion is
    /// delivered or `timeout` passes (`None`: no limit). Returns at once
    /// with 0 when nothing is pending. Same rings as `poll`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let sh = self.sh();
        let rings = self.driven();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let n = self.poll()?;
            if n > 0 {
                return Ok(n);
            }
            if self.pending() == 0 || sh.closed.load(Ordering::Acquire) {
                return Ok(0);
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(0);
                    }
                    d - now
                }
                None => WAIT_SLICE,
            };
            // Completions held back by fault injection are delivered by a
            // poll once due: do not block past that.
            let remaining = match rings.iter().filter_map(|s| s.held_due_in()).min() {
                Some(d) => remaining.min(d.max(Duration::from_micros(50))),
                None => remaining,
            };
            let mut busy = rings
                .iter()
                .filter(|s| s.in_flight.load(Ordering::Relaxed) > 0);
            let first = busy.next();
            let more = busy.count();
            match first {
                None => {
                    // Pending ops are being delivered by another thread.
                    thread::sleep(remaining.min(Duration::from_micros(100)));
                }
                Some(only) if more == 0 => {
                    // Block in the kernel (never busy-peek): GETEVENTS runs
                    // completion work and returns when a CQE is posted.
                    block_on_ring(&only.waiter, remaining.min(WAIT_SLICE))?;
                }
                Some(_) => {
                    // Several rings busy: block on each in turn, briefly.
                    let k = more + 1;
                    let c = sh.wait_cursor.fetch_add(1, Ordering::Relaxed) % k;
                    if let Some(s) = rings
                        .iter()
                        .filter(|s| s.in_flight.load(Ordering::Relaxed) > 0)
                        .nth(c)
                    {
                        block_on_ring(&s.waiter, remaining.min(MULTI_RING_SLICE))?;
                    }
                }
            }
        }
    }

    /// Runs callbacks until [`stop`](Self::stop) is called (from any thread
    /// or a callback) or the engine shuts down.
    pub fn run(&self) -> io::Result<()> {
        let sh = self.sh();
        loop {
            if sh.stop_run.swap(false, Ordering::AcqRel) || sh.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.pending() == 0 {
                let _ = self.poll()?;
                thread::sleep(Duration::from_millis(1));
            } else {
                self.wait(Some(Duration::from_millis(10)))?;
            }
        }
    }

    /// Makes [`run`](Self::run) return.
    pub fn stop(&self) {
        self.sh().stop_run.store(true, Ordering::Release);
    }

    /// Drives completions until no op is pending (on the rings this handle
    /// drives).
    pub fn run_until_idle(&self) -> io::Result<()> {
        while self.pending() > 0 {
            self.wait(Some(Duration::from_millis(100)))?;
        }
        Ok(())
    }

    /// Hands every queued SQE to the kernel now (normally batched up to the
    /// threshold and flushed by `poll`/`wait`).
    pub fn flush(&self) -> io::Result<()> {
        for shard in self.driven() {
            shard.flush()?;
        }
        Ok(())
    }

    /// Ops accepted and not yet completed (delivered): on every ring, or on
    /// the pinned ring of a handle from [`on_ring`](Self::on_ring).
    pub fn pending(&self) -> usize {
        self.driven().iter().map(Shard::pending).sum::<u64>() as usize
    }

    /// Shuts the engine down now (also done when the last clone is dropped):
    /// later submissions fail with an error that [`is_shutdown`](crate::is_shutdown)
    /// recognises; every accepted op gets its one completion
    /// (`ECANCELED` for those not finished).
    pub fn shutdown(&self) {
        self.sh().shutdown();
    }

    /// True after [`shutdown`](Self::shutdown).
    pub fn is_shut_down(&self) -> bool {
        self.sh().closed.load(Ordering::Acquire)
    }

    // ----- registration ---------------------------------------------------------

    /// Locks every ring (in index order) for an operation that must apply
    /// to all of them or none.
    fn lock_all(&self) -> io::Result<Vec<crate::ring_lock::RingGuard<'_, crate::shard::Core>>> {
        let guards: Vec<_> = self.sh().rings.iter().map(|s| s.lock()).collect();
        if guards.iter().any(|g| g.closed) {
            return Err(shutdown_error());
        }
        Ok(guards)
    }

    /// Registers buffers with every ring for [`read_fixed`](Self::read_fixed)
    /// / [`write_fixed`](Self::write_fixed) (index = position in `iovecs`).
    ///
    /// All rings or none: if one ring refuses (e.g. `EBUSY`, buffers already
    /// registered), those already registered are unregistered again.
    /// An empty `iovecs` is an `InvalidInput` error.
    ///
    /// # Safety
    /// The memory described by `iovecs` must stay valid until
    /// [`unregister_buffers`](Self::unregister_buffers) or the engine is
    /// dropped, and must only be accessed through owned buffers passed to
    /// fixed ops while an op uses it.
    pub unsafe fn register_buffers(&self, iovecs: &[libc::iovec]) -> io::Result<()> {
        if iovecs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "register_buffers needs at least one buffer",
            ));
        }
        let mut guards = self.lock_all()?;
        for i in 0..guards.len() {
            // SAFETY: forwarded from this function's contract.
            if let Err(e) = unsafe { guards[i].ring.register_buffers(iovecs) } {
                for g in guards.iter_mut().take(i) {
                    let _ = g.ring.unregister_buffers();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Unregisters the buffers of every ring.
    ///
    /// Refused with `ResourceBusy` (`EBUSY`), changing nothing, while any
    /// accepted op that uses a registered buffer has not completed: drain
    /// them first (older kernels would block here until they complete, and
    /// the ops' buffers must stay registered while the kernel uses them).
    pub fn unregister_buffers(&self) -> io::Result<()> {
        self.unregister_all(
            |s| s.fixed_bufs.load(Ordering::Relaxed),
            "using registered buffers",
            |r| r.unregister_buffers(),
        )
    }

    /// Registers `fds` with every ring; use the returned [`FixedFile`]s as
    /// the target of any op. The files must stay open while registered.
    /// All rings or none (as [`register_buffers`](Self::register_buffers));
    /// an empty `fds` is an `InvalidInput` error.
    pub fn register_files(&self, fds: &[RawFd]) -> io::Result<Vec<FixedFile>> {
        if fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "register_files needs at least one file (use -1 for an empty slot)",
            ));
        }
        let n = u32::try_from(fds.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "too many files to register")
        })?;
        let mut guards = self.lock_all()?;
        for i in 0..guards.len() {
            if let Err(e) = guards[i].ring.register_files(fds) {
                for g in guards.iter_mut().take(i) {
                    let _ = g.ring.unregister_files();
                }
                return Err(e);
            }
        }
        Ok((0..n).map(FixedFile).collect())
    }

    /// Replaces registered file `file` with `fd` (-1 clears the slot).
    pub fn update_file(&self, file: FixedFile, fd: RawFd) -> io::Result<()> {
        for shard in &self.sh().rings {
            shard.with_ring(|r| r.update_file(file.0, fd))?;
        }
        Ok(())
    }

    /// Treats `op` as unsupported on every ring from now on: submitting it
    /// fails with `io::ErrorKind::Unsupported`. Useful to forbid an op, or to
    /// test a program's fallback path on a kernel that has it.
    pub fn disable_op(&self, op: auraio_ring::OpKind) {
        for shard in &self.sh().rings {
            let _ = shard.with_ring(|r| {
                r.disable_op(op);
                Ok(())
            });
        }
    }

    /// Unregisters the files of every ring. Refused with `ResourceBusy`,
    /// changing nothing, while any accepted op on a registered file has not
    /// completed (as [`unregister_buffers`](Self::unregister_buffers)).
    pub fn unregister_files(&self) -> io::Result<()> {
        self.unregister_all(
            |s| s.fixed_files.load(Ordering::Relaxed),
            "on registered files",
            |r| r.unregister_files(),
        )
    }

    /// Unregisters one kind of registered resource on every ring, under all
    /// ring locks. Refused with `ResourceBusy`, changing nothing, while
    /// `pending` counts accepted ops that still use it; otherwise every ring
    /// is tried and the first error is returned.
    fn unregister_all(
        &self,
        pending: impl Fn(&Shard) -> u64,
        what: &str,
        unregister: impl Fn(&mut AnyRing<Target>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut guards = self.lock_all()?;
        let busy: u64 = self.sh().rings.iter().map(pending).sum();
        if busy > 0 {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "{busy} operation(s) {what} are still pending; \
                     wait for them before unregistering"
                ),
            ));
        }
        let mut first_err = None;
        for g in guards.iter_mut() {
            if let Err(e) = unregister(&mut g.ring) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    // ----- runtime knobs --------------------------------------------------------

    /// Sets the P99 latency ceiling of every ring's controller.
    pub fn set_max_p99(&self, ceiling: Duration) {
        for shard in &self.sh().rings {
            shard.update_controller(self.sh(), |c| c.controller.set_p99_ceiling(ceiling));
        }
    }

    /// Sets the lowest in-flight limit of every ring's controller.
    pub fn set_min_in_flight(&self, n: u32) {
        let sh = self.sh();
        for shard in &sh.rings {
            shard.update_controller(sh, |c| {
                c.limits.min_in_flight = n.min(shard.capacity);
                c.limits = c.limits.normalized();
                c.controller.set_limits(c.limits);
            });
        }
    }

    /// Sets the highest in-flight limit (capped at each ring's capacity).
    pub fn set_max_in_flight(&self, n: u32) {
        let sh = self.sh();
        for shard in &sh.rings {
            shard.update_controller(sh, |c| {
                c.limits.max_in_flight = n.min(shard.capacity);
                c.limits = c.limits.normalized();
                c.controller.set_limits(c.limits);
            });
        }
    }

    /// `Some(n)`: fixed batch threshold on every ring; `None`: the
    /// controller decides again (from its next tick). A pinned batch is
    /// taken as asked (see [`EngineBuilder::batch_threshold`]): a lone op
    /// is not sent ahead of its batch.
    pub fn set_batch_threshold(&self, n: Option<u32>) {
        let sh = self.sh();
        sh.batch_override
            .store(n.map_or(0, |n| n.max(1)), Ordering::Relaxed);
        if let Some(n) = n {
            for shard in &sh.rings {
                shard
                    .batch
                    .store(n.clamp(1, shard.capacity.max(1)), Ordering::Relaxed);
                shard.apply(sh);
            }
        }
    }

    /// The in-flight limit now in force on ring `ring`.
    pub fn in_flight_limit(&self, ring: usize) -> Option<u32> {
        self.sh()
            .rings
            .get(ring)
            .map(|s| s.limit.load(Ordering::Relaxed))
    }

    /// The batch threshold now in force on ring `ring`.
    pub fn batch_threshold(&self, ring: usize) -> Option<u32> {
        self.sh()
            .rings
            .get(ring)
            .map(|s| s.batch.load(Ordering::Relaxed))
    }
}
