//! [`Engine`]: the shared core behind both faces (callbacks and futures).
//!
//! The `Engine` type, its construction and its ring accessors live here;
//! its other methods are grouped by concern in the submodules:
//!
//! - `shared`: [`Shared`], the state behind every handle, the threads and
//!   the futures; the `Handle` whose drop shuts the engine down;
//! - `threads`: the reaper and tick thread loops;
//! - `submit`: submitting one op or a linked pair (`submit`,
//!   `submit_with_handle`, `submit_linked`);
//! - `submit_batch`: `submit_batch` and `submit_batch_with_handles`;
//! - `ops`: futures (`call`), `cancel`, and the typed callback and async
//!   methods (`read`, `read_at`, ...);
//! - `drive`: driving completions (`poll`, `wait`, `run`, `flush`,
//!   `pending`, `shutdown`);
//! - `registry`: registered buffers and files, `disable_op`;
//! - `tuning`: the runtime knobs (`set_max_p99`, `set_batch_threshold`, ...).

mod drive;
mod ops;
mod registry;
mod shared;
mod submit;
mod submit_batch;
mod threads;
mod tuning;

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use auraio_controller::{TraceHeader, TraceWriter};
use auraio_ring::{AnyRing, BackendKind, RingConfig, RingKind};

use crate::config::{EngineBuilder, ReaperMode, RingSelection};
use crate::op_state::{OpInfo, Target};
use crate::shard::Shard;

pub(crate) use shared::Shared;
use shared::{Handle, Threads};
use threads::tick_loop;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
}
