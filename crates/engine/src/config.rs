//! [`EngineBuilder`]: every knob, with zero-configuration defaults.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auraio_controller::{Controller, ControllerConfig};
use auraio_ring::BackendChoice;

pub use crate::fault::{Fault, FaultInjector, FaultPlan, FaultPoint, FaultStats};
use crate::Engine;

/// How a submission picks its ring (per call, unless the [`Engine`] handle
/// was pinned with [`Engine::on_ring`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RingSelection {
    /// The ring of the CPU the calling thread runs on (`sched_getcpu`,
    /// modulo the ring count); round robin if that fails. Default.
    #[default]
    CurrentCpu,
    /// Rotate over the rings.
    RoundRobin,
}

/// Who reaps completions in the background.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReaperMode {
    /// Start one reaper thread per ring the first time a future is created
    /// (the async face needs someone to drive the rings). Callback-only
    /// programs keep running callbacks in their own `poll`/`wait`/`run`
    /// calls. Default.
    #[default]
    Auto,
    /// Start the reaper threads at build time. Callbacks then run on them
    /// (as well as in any `poll`/`wait` call).
    Always,
    /// Never start reaper threads: the program must call
    /// [`Engine::poll`]/[`Engine::wait`]/[`Engine::run`] (also to drive
    /// futures), or integrate [`Engine::eventfd`] in its own reactor.
    Never,
}

pub(crate) type ControllerFactory = Arc<dyn Fn(usize) -> Box<dyn Controller> + Send + Sync>;

/// Configures and builds an [`Engine`]. Every setting has a default that
/// gives near-best throughput without tuning.
#[derive(Clone)]
pub struct EngineBuilder {
    pub(crate) rings: Option<usize>,
    pub(crate) queue_depth: u32,
    pub(crate) controller: ControllerConfig,
    pub(crate) factory: Option<ControllerFactory>,
    pub(crate) max_p99: Option<Duration>,
    pub(crate) min_in_flight: u32,
    pub(crate) max_in_flight: Option<u32>,
    pub(crate) initial_in_flight: u32,
    pub(crate) batch_threshold: Option<u32>,
    pub(crate) sqpoll: bool,
    pub(crate) sqpoll_idle: Duration,
    pub(crate) ring_selection: RingSelection,
    pub(crate) trace_path: Option<PathBuf>,
    pub(crate) trace_io_every: u32,
    pub(crate) trace_note: Option<String>,
    pub(crate) tick: Duration,
    pub(crate) reaper: ReaperMode,
    pub(crate) eventfd: bool,
    pub(crate) timed_waits: bool,
    pub(crate) backend: BackendChoice,
    pub(crate) fault: Option<FaultInjector>,
    pub(crate) fault_plan: Option<FaultPlan>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("rings", &self.rings)
            .field("queue_depth", &self.queue_depth)
            .field("controller", &self.controller)
            .field("custom_factory", &self.factory.is_some())
            .field("max_p99", &self.max_p99)
            .field("min_in_flight", &self.min_in_flight)
            .field("max_in_flight", &self.max_in_flight)
            .field("initial_in_flight", &self.initial_in_flight)
            .field("batch_threshold", &self.batch_threshold)
            .field("sqpoll", &self.sqpoll)
            .field("ring_selection", &self.ring_selection)
            .field("trace_path", &self.trace_path)
            .field("trace_io_every", &self.trace_io_every)
            .field("tick", &self.tick)
            .field("reaper", &self.reaper)
            .field("eventfd", &self.eventfd)
            .field("timed_waits", &self.timed_waits)
            .field("backend", &self.backend)
            .field("fault_injector", &self.fault.is_some())
            .field("fault_plan", &self.fault_plan)
            .finish()
    }
}

/// Default ring queue depth (slots per ring).
pub const DEFAULT_QUEUE_DEPTH: u32 = 1024;
/// Default starting in-flight limit per ring (the controller tunes it).
pub const DEFAULT_INITIAL_IN_FLIGHT: u32 = 16;
/// Default controller tick.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            rings: None,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            controller: ControllerConfig::default(),
            factory: None,
            max_p99: None,
            min_in_flight: 1,
            max_in_flight: None,
            initial_in_flight: DEFAULT_INITIAL_IN_FLIGHT,
            batch_threshold: None,
            sqpoll: false,
            sqpoll_idle: Duration::from_millis(100),
            ring_selection: RingSelection::default(),
            trace_path: None,
            trace_io_every: 0,
            trace_note: None,
            tick: DEFAULT_TICK,
            reaper: ReaperMode::default(),
            eventfd: false,
            timed_waits: true,
            backend: BackendChoice::Auto,
            fault: None,
            fault_plan: None,
        }
    }
}

impl EngineBuilder {
    /// A builder with every default (same as [`Engine::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rings (default: one per online CPU). 0 is an error at build.
    pub fn rings(mut self, n: usize) -> Self {
        self.rings = Some(n);
        self
    }

    /// Slots (SQ entries) per ring, i.e. the most ops one ring can have in
    /// flight (default 1024; rounded up to a power of two).
    pub fn queue_depth(mut self, n: u32) -> Self {
        self.queue_depth = n;
        self
    }

    /// The tuning policy, one instance per ring (default AIMD).
    pub fn controller(mut self, cfg: ControllerConfig) -> Self {
        self.controller = cfg;
        self.factory = None;
        self
    }

    /// Any controller: `factory(ring_index)` builds one per ring. The engine
    /// then applies its limits (`set_limits`) and P99 ceiling to it.
    pub fn controller_factory<F>(mut self, factory: F) -> Self
    where
        F: Fn(usize) -> Box<dyn Controller> + Send + Sync + 'static,
    {
        self.factory = Some(Arc::new(factory));
        self
    }

    /// P99 latency ceiling: the controller backs off above it.
    pub fn max_p99(mut self, ceiling: Duration) -> Self {
        self.max_p99 = Some(ceiling);
        self
    }

    /// Lowest in-flight limit the controller may choose (default 1).
    pub fn min_in_flight(mut self, n: u32) -> Self {
        self.min_in_flight = n;
        self
    }

    /// Highest in-flight limit (default and cap: the ring's capacity).
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// The in-flight limit before the first tick (default 16; the controller
    /// tunes it from there).
    pub fn initial_in_flight(mut self, n: u32) -> Self {
        self.initial_in_flight = n;
        self
    }

    /// `Some(n)`: submit once `n` SQEs are queued, always. `None` (default):
    /// the controller picks the batch threshold.
    ///
    /// With `None`, an op submitted while nothing of its ring is in the
    /// kernel goes out at once (the device is never left idle waiting for a
    /// batch to fill). With `Some(n)` the batch is taken as asked: queued
    /// SQEs go to the kernel when `n` are queued, at the next
    /// [`Engine::poll`]/[`Engine::wait`]/[`Engine::flush`] on the ring, or
    /// at the next tick at the latest (`tick_interval`, 10 ms by default).
    /// This saves one `io_uring_enter` per burst, at the price of a lone op
    /// waiting for one of those.
    pub fn batch_threshold(mut self, n: Option<u32>) -> Self {
        self.batch_threshold = n;
        self
    }

    /// Ask for kernel submission polling (SQPOLL). Without the privilege the
    /// rings fall back to normal submission; [`Engine::stats`] reports the
    /// kind each ring got.
    pub fn sqpoll(mut self, on: bool) -> Self {
        self.sqpoll = on;
        self
    }

    /// How a submission picks its ring (default [`RingSelection::CurrentCpu`]).
    pub fn ring_selection(mut self, sel: RingSelection) -> Self {
        self.ring_selection = sel;
        self
    }

    /// Record a JSON-lines trace to `path`: a header, one tick record per ring
    /// per tick, and sampled per-I/O records (see
    /// [`trace_io_sample_every`](Self::trace_io_sample_every)).
    pub fn record_trace(mut self, path: impl Into<PathBuf>) -> Self {
        self.trace_path = Some(path.into());
        self
    }

    /// With a trace: write one per-I/O record every `n` completions per ring
    /// (0 = none, the default; 1 = every op).
    pub fn trace_io_sample_every(mut self, n: u32) -> Self {
        self.trace_io_every = n;
        self
    }

    /// A free-form note stored in the trace header.
    pub fn trace_note(mut self, note: impl Into<String>) -> Self {
        self.trace_note = Some(note.into());
        self
    }

    /// Controller tick (default 10 ms; at least 1 ms).
    pub fn tick_interval(mut self, d: Duration) -> Self {
        self.tick = d;
        self
    }

    /// Who reaps completions in the background (default [`ReaperMode::Auto`]).
    pub fn reaper(mut self, mode: ReaperMode) -> Self {
        self.reaper = mode;
        self
    }

    /// Register an eventfd per ring that the kernel signals on completions
    /// ([`Engine::eventfd`]), for reactor integration (default off).
    pub fn eventfd(mut self, on: bool) -> Self {
        self.eventfd = on;
        self
    }

    /// `false`: behave as on a kernel without timed waits in io_uring
    /// (`IORING_FEAT_EXT_ARG`, before Linux 5.11) even where they exist, to
    /// test that path. There, [`Engine::wait`] and the reaper threads poll
    /// in short sleeps instead of blocking in the kernel with a timeout.
    /// Default `true` (use them when the kernel has them).
    pub fn timed_waits(mut self, on: bool) -> Self {
        self.timed_waits = on;
        self
    }

    /// Which backend runs the ops. `Auto` (default): io_uring, or a pool of
    /// threads doing blocking syscalls when io_uring is unavailable
    /// (`io_uring_setup` fails with `EPERM`/`EACCES`/`ENOSYS`: seccomp,
    /// `kernel.io_uring_disabled`). Same API and guarantees either way; the
    /// controller's in-flight limit governs the pool's concurrency.
    /// [`Engine::stats`] says which backend is active.
    pub fn backend(mut self, choice: BackendChoice) -> Self {
        self.backend = choice;
        self
    }

    /// Test hook (fault injection): `f` sees every completion and may
    /// rewrite its result before it is counted, fed to the controller and
    /// delivered. Not for production use. Shorthand for
    /// [`fault_hook`](Self::fault_hook) with results only.
    #[doc(hidden)]
    pub fn fault_injector<F>(mut self, f: F) -> Self
    where
        F: Fn(&FaultPoint) -> Option<i32> + Send + Sync + 'static,
    {
        self.fault = Some(Arc::new(move |pt: &FaultPoint| Fault {
            result: f(pt),
            delay: None,
        }));
        self
    }

    /// Test hook (fault injection): `f` sees every completion and may
    /// rewrite its result and/or hold it back for a while (see the
    /// `fault` module docs: a held op keeps counting against the in-flight
    /// limit and its latency includes the hold). Replaces a previous
    /// [`fault_injector`](Self::fault_injector). Applied after a
    /// [`fault_plan`](Self::fault_plan), overriding what it set. Runs under
    /// the ring's lock when a completion is reaped: keep it quick and never
    /// call the engine from it.
    #[doc(hidden)]
    pub fn fault_hook<F>(mut self, f: F) -> Self
    where
        F: Fn(&FaultPoint) -> Fault + Send + Sync + 'static,
    {
        self.fault = Some(Arc::new(f));
        self
    }

    /// Test hook (fault injection): a seeded plan injecting errors, short
    /// reads/writes and delays into a chosen fraction of ops; keep a clone
    /// to switch faults on and off while the engine runs.
    #[doc(hidden)]
    pub fn fault_plan(mut self, plan: FaultPlan) -> Self {
        self.fault_plan = Some(plan);
        self
    }

    /// Creates the rings, controllers and the tick thread.
    pub fn build(self) -> io::Result<Engine> {
        Engine::from_builder(self)
    }
}
