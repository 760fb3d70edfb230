//! The closed-loop runner: one simulated ring in front of a simulated device,
//! driven by a real controller from `auraio-controller`.
//!
//! It enforces the limit and batch threshold as the engine does:
//! - an op takes a ring slot only while `in_flight < limit`; the rest wait in
//!   a FIFO backlog and are pushed as completions free slots (or a raised
//!   limit allows);
//! - pushed SQEs are submitted by one `io_uring_enter` as soon as
//!   `batch_threshold` of them are queued, and whatever is still queued at
//!   the end of a reaping round (the thread goes idle) is flushed then;
//! - completions are reaped by one thread that sleeps when idle (waking costs
//!   `HostParams::wake_ns`) and spends CPU per SQE, per CQE and per enter.
//!
//! Samples are built by [`auraio_controller::IoMeter`], the engine's own code
//! path; every tick the sample goes to the controller and its decision takes
//! effect at once. All randomness comes from ChaCha streams derived from the
//! seed: the same seed gives the same run.

use std::time::Duration;

use auraio_controller::{
    Controller, ControllerConfig, HistogramSnapshot, IntervalGaps, IoMeter, Limits, StallDetector,
};
use auraio_ring::{CompletionGaps, GapStats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};
use serde::{Deserialize, Serialize};

use crate::device::{DevOp, Device, DeviceChange, DeviceSpec};
use crate::sched::{Ev, Sched};
use crate::SimError;

/// How the application generates I/O.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadKind {
    /// `outstanding` ops always pending: a new op as soon as one completes.
    /// With `outstanding` above the controller's maximum there is always
    /// more demand than the limit (a backlog).
    Closed {
        /// Ops the application keeps pending (in flight + backlog).
        outstanding: u32,
    },
    /// Poisson arrivals at `iops` per second, whatever the device does.
    Open {
        /// Offered rate.
        iops: f64,
    },
}

/// The application's I/O pattern.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Closed or open loop.
    pub load: LoadKind,
    /// Fraction of reads (the rest are writes).
    pub read_fraction: f64,
    /// Block size, bytes.
    pub block_size: u32,
}

impl Workload {
    /// Closed-loop 4 KiB random reads with 2048 ops pending.
    pub fn closed() -> Self {
        Workload {
            load: LoadKind::Closed { outstanding: 2048 },
            read_fraction: 1.0,
            block_size: 4096,
        }
    }

    /// Open-loop 4 KiB random reads at `iops`.
    pub fn open(iops: f64) -> Self {
        Workload {
            load: LoadKind::Open { iops },
            read_fraction: 1.0,
            block_size: 4096,
        }
    }
}

/// CPU costs of the submitting/reaping thread.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostParams {
    /// From a completion arriving to the sleeping thread running, ns.
    pub wake_ns: u64,
    /// One `io_uring_enter`, ns.
    pub enter_ns: u64,
    /// Preparing one SQE, ns.
    pub per_sqe_ns: u64,
    /// Reaping one CQE and running its callback, ns.
    pub per_cqe_ns: u64,
}

impl Default for HostParams {
    fn default() -> Self {
        HostParams {
            wake_ns: 4_000,
            enter_ns: 1_500,
            per_sqe_ns: 80,
            per_cqe_ns: 120,
        }
    }
}

/// A device change at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When, seconds from the start.
    pub at_s: f64,
    /// What changes.
    pub change: DeviceChange,
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The device.
    pub device: DeviceSpec,
    /// The application.
    pub workload: Workload,
    /// The reaping thread's costs.
    pub host: HostParams,
    /// Device changes (any order).
    pub steps: Vec<Step>,
    /// Simulated time, s.
    pub duration_s: f64,
    /// Controller tick, ms.
    pub tick_ms: u64,
    /// Limits handed to the controller.
    pub limits: Limits,
    /// P99 ceiling handed to the controller (None = its default).
    pub p99_ceiling: Option<Duration>,
    /// Seed of every random stream.
    pub seed: u64,
    /// Time windows `[from_s, to_s)` whose latencies and completions are
    /// accumulated separately (evaluation windows).
    pub windows: Vec<(f64, f64)>,
}

/// One tick as the controller saw it, plus its decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TickPoint {
    /// End of the tick, s.
    pub t_s: f64,
    /// In-flight limit decided at this tick.
    pub limit: u32,
    /// Batch threshold decided at this tick.
    pub batch: u32,
    /// Completions per second during the tick.
    pub iops: f64,
    /// Median latency of the tick, µs (0 if no completions).
    pub p50_us: f64,
    /// P99 latency of the tick, µs (0 if no completions).
    pub p99_us: f64,
    /// P99 for plots, µs: of this tick when it had at least
    /// [`PLOT_MIN_COMPLETIONS`] completions, else of the ticks accumulated
    /// until they had (the previous value is repeated meanwhile).
    pub p99_plot_us: f64,
    /// Time-averaged in-flight.
    pub in_flight_avg: f64,
    /// Peak in-flight.
    pub in_flight_peak: u32,
    /// Backlog at the tick.
    pub backlog: u32,
    /// Time the device stood still with ops in flight, ms (the sample's
    /// `stalled`, from the completion gaps).
    pub stalled_ms: f64,
    /// Controller phase after the tick.
    pub phase: String,
    /// The controller's reason after the tick when it changed at this tick,
    /// else empty.
    pub reason: String,
}

/// Totals of one evaluation window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Window start, s.
    pub from_s: f64,
    /// Window end, s.
    pub to_s: f64,
    /// Completions of the ring's ops whose tick ended inside the window.
    pub completions: u64,
    /// Latencies of those completions.
    pub latency: HistogramSnapshot,
    /// Ticks in the window.
    pub ticks: u32,
    /// Summed tick intervals, s.
    pub seconds: f64,
}

impl WindowStats {
    /// Completions per second.
    pub fn iops(&self) -> f64 {
        if self.seconds > 0.0 {
            self.completions as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Controller name (`ControllerConfig`'s short form).
    pub controller: String,
    /// One point per tick.
    pub ticks: Vec<TickPoint>,
    /// The evaluation windows, in the order given.
    pub windows: Vec<WindowStats>,
    /// Ring completions over the run.
    pub completions: u64,
    /// `io_uring_enter` calls over the run.
    pub enter_calls: u64,
    /// SQEs submitted over the run.
    pub sqes: u64,
    /// Events processed (a measure of simulation cost).
    pub events: u64,
}

/// Open loop: queued SQEs the application pushed are flushed by its next
/// poll, this long after the push, unless a full batch flushed them first.
pub const APP_FLUSH_NS: u64 = 5_000;

/// Longest simulated run, s (one day).
pub const MAX_DURATION_S: f64 = 86_400.0;

/// Completions a plotted P99 rests on at least (see [`TickPoint::p99_plot_us`]).
pub const PLOT_MIN_COMPLETIONS: u64 = 100;

struct Runner {
    sched: Sched,
    device: Device,
    meter: IoMeter,
    /// Completion gaps, measured as the engine's rings do…
    gaps: CompletionGaps,
    /// …their counts at the last tick…
    last_gaps: GapStats,
    /// …and the stalled time they show.
    stall: StallDetector,
    ctrl: Box<dyn Controller>,
    rng_dev: ChaCha8Rng,
    rng_stall: ChaCha8Rng,
    rng_app: ChaCha8Rng,
    rng_nb: ChaCha8Rng,
    workload: Workload,
    host: HostParams,
    limit: u32,
    batch: u32,
    in_flight: u32,
    backlog: u64,
    queued: Vec<DevOp>,
    cq: Vec<DevOp>,
    push_t: Vec<u64>,
    free_slots: Vec<u32>,
    host_state: HostState,
    app_flush_armed: bool,
    nb_rate: f64,
    nb_scheduled: bool,
    nominal_iops: f64,
    next_nb_id: u64,
    enter_calls: u64,
    sqes: u64,
    completions: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostState {
    Idle,
    WakePending,
    Busy,
}

fn stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(n);
    r
}

fn secs_to_ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9).round() as u64
    } else {
        0
    }
}

/// Run one controller through one scenario.
pub fn run(spec: &RunSpec, config: &ControllerConfig) -> Result<RunResult, SimError> {
    if let DeviceSpec::Model(p) = &spec.device {
        p.validate().map_err(SimError::Config)?;
    }
    if spec.tick_ms == 0 {
        return Err(SimError::Config("tick_ms must be at least 1".into()));
    }
    if !(spec.duration_s.is_finite() && spec.duration_s > 0.0 && spec.duration_s <= MAX_DURATION_S)
    {
        return Err(SimError::Config(format!(
            "duration must be in (0, {MAX_DURATION_S}] s, got {}",
            spec.duration_s
        )));
    }
    let mut ctrl = config.build(spec.limits)?;
    if let Some(c) = spec.p99_ceiling {
        ctrl.set_p99_ceiling(c);
    }
    let first = ctrl.current();
    let mut r = Runner {
        sched: Sched::new(),
        device: Device::new(&spec.device),
        meter: IoMeter::new(),
        gaps: CompletionGaps::new(),
        last_gaps: GapStats::default(),
        stall: StallDetector::new(),
        ctrl,
        rng_dev: stream(spec.seed, 1),
        rng_stall: stream(spec.seed, 2),
        rng_app: stream(spec.seed, 3),
        rng_nb: stream(spec.seed, 4),
        workload: spec.workload,
        host: spec.host,
        limit: first.in_flight_limit.max(1),
        batch: first.batch_threshold.max(1),
        in_flight: 0,
        backlog: 0,
        queued: Vec::new(),
        cq: Vec::new(),
        push_t: Vec::new(),
        free_slots: Vec::new(),
        host_state: HostState::Idle,
        app_flush_armed: false,
        nb_rate: 0.0,
        nb_scheduled: false,
        nominal_iops: spec.device.nominal_peak_iops(),
        next_nb_id: 0,
        enter_calls: 0,
        sqes: 0,
        completions: 0,
    };
    let end = secs_to_ns(spec.duration_s);
    let tick_ns = spec.tick_ms * 1_000_000;
    let mut steps: Vec<Step> = spec.steps.clone();
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for (i, s) in steps.iter().enumerate() {
        r.sched.push(secs_to_ns(s.at_s), Ev::Step(i));
    }
    r.device.start(&mut r.sched, &mut r.rng_stall);
    match r.workload.load {
        LoadKind::Closed { outstanding } => r.backlog = u64::from(outstanding.max(1)),
        LoadKind::Open { iops } => {
            if iops > 0.0 {
                let gap = r.exp_gap(iops, false);
                r.sched.push(gap, Ev::Arrival);
            }
        }
    }
    r.sched.push(tick_ns, Ev::Tick);
    // Start: the application submits its first ops at t = 0.
    r.round();

    let mut ticks = Vec::with_capacity(((end / tick_ns) as usize + 1).min(1 << 20));
    let mut windows: Vec<WindowStats> = spec
        .windows
        .iter()
        .map(|&(a, b)| WindowStats {
            from_s: a,
            to_s: b,
            ..WindowStats::default()
        })
        .collect();
    let mut events = 0u64;
    let mut plot_acc = HistogramSnapshot::default();
    let mut plot_p99 = 0.0;
    let mut last_reason = String::new();
    while let Some(ev) = r.sched.pop_until(end) {
        events += 1;
        match ev {
            Ev::DevDone(op) => {
                if let Some(op) = r.device.on_done(op, &mut r.sched, &mut r.rng_dev) {
                    if !op.neighbour {
                        r.cq.push(op);
                        if r.host_state == HostState::Idle {
                            r.host_state = HostState::WakePending;
                            let t = r.sched.now() + r.host.wake_ns;
                            r.sched.push(t, Ev::HostWake);
                        }
                    }
                }
            }
            Ev::Stall => r.device.on_stall(&mut r.sched, &mut r.rng_stall),
            Ev::HostWake => r.round(),
            Ev::HostDone => {
                if !r.cq.is_empty() || (r.backlog > 0 && r.in_flight < r.limit) {
                    r.round();
                } else {
                    r.host_state = HostState::Idle;
                }
            }
            Ev::Tick => {
                let now = r.sched.now();
                r.meter
                    .set_backlog(r.backlog.min(u64::from(u32::MAX)) as u32);
                let mut sample = r.meter.take_sample(Duration::from_nanos(now), r.in_flight);
                sample.stalled = r.stalled_since_last_tick(sample.latency.p50_ns());
                let d = r.ctrl.tick(&sample);
                r.limit = d.in_flight_limit.max(1);
                r.batch = d.batch_threshold.max(1);
                let t_s = now as f64 * 1e-9;
                let interval = sample.interval.as_secs_f64();
                let iops = if interval > 0.0 {
                    sample.completions as f64 / interval
                } else {
                    0.0
                };
                for w in windows.iter_mut() {
                    if t_s > w.from_s + 1e-9 && t_s <= w.to_s + 1e-9 {
                        w.completions += sample.completions;
                        w.latency.merge(&sample.latency);
                        w.ticks += 1;
                        w.seconds += interval;
                    }
                }
                plot_acc.merge(&sample.latency);
                if plot_acc.count() >= PLOT_MIN_COMPLETIONS {
                    plot_p99 = plot_acc.p99_ns() as f64 / 1e3;
                    plot_acc = HistogramSnapshot::default();
                }
                let state = r.ctrl.state();
                ticks.push(TickPoint {
                    t_s,
                    limit: r.limit,
                    batch: r.batch,
                    iops,
                    p50_us: sample.latency.p50_ns() as f64 / 1e3,
                    p99_us: sample.latency.p99_ns() as f64 / 1e3,
                    p99_plot_us: plot_p99,
                    in_flight_avg: sample.in_flight_avg,
                    in_flight_peak: sample.in_flight_peak,
                    backlog: sample.backlog,
                    stalled_ms: sample.stalled.as_secs_f64() * 1e3,
                    phase: state.phase,
                    reason: if state.reason != last_reason {
                        last_reason.clone_from(&state.reason);
                        state.reason
                    } else {
                        String::new()
                    },
                });
                r.sched.push(now + tick_ns, Ev::Tick);
                if r.host_state == HostState::Idle && r.backlog > 0 && r.in_flight < r.limit {
                    r.round();
                }
            }
            Ev::Arrival => {
                if let LoadKind::Open { iops } = r.workload.load {
                    let t = r.sched.now() + r.exp_gap(iops, false);
                    r.sched.push(t, Ev::Arrival);
                    r.app_submit();
                }
            }
            Ev::AppFlush => {
                r.app_flush_armed = false;
                if !r.queued.is_empty() {
                    let mut t = r.sched.now();
                    r.enter(&mut t);
                }
            }
            Ev::NeighbourArrival => {
                r.nb_scheduled = false;
                if r.nb_rate > 0.0 {
                    r.next_nb_id += 1;
                    let op = DevOp {
                        id: r.next_nb_id,
                        bytes: 4096,
                        write: false,
                        neighbour: true,
                    };
                    let now = r.sched.now();
                    r.device.submit(op, now, &mut r.sched, &mut r.rng_dev);
                    r.schedule_neighbour();
                }
            }
            Ev::Step(i) => {
                if let Some(s) = steps.get(i) {
                    match s.change {
                        DeviceChange::Neighbour { share } => {
                            r.nb_rate = (share.max(0.0)) * r.nominal_iops;
                            r.schedule_neighbour();
                        }
                        c => r.device.apply(c, &mut r.sched, &mut r.rng_dev),
                    }
                }
            }
        }
    }
    Ok(RunResult {
        controller: config.to_string(),
        ticks,
        windows,
        completions: r.completions,
        enter_calls: r.enter_calls,
        sqes: r.sqes,
        events,
    })
}

impl Runner {
    fn exp_gap(&mut self, rate: f64, neighbour: bool) -> u64 {
        let rng = if neighbour {
            &mut self.rng_nb
        } else {
            &mut self.rng_app
        };
        let e: f64 = Exp1.sample(rng);
        ((e / rate) * 1e9).max(1.0) as u64
    }

    fn schedule_neighbour(&mut self) {
        if self.nb_rate > 0.0 && !self.nb_scheduled {
            self.nb_scheduled = true;
            let t = self.sched.now() + self.exp_gap(self.nb_rate, true);
            self.sched.push(t, Ev::NeighbourArrival);
        }
    }

    /// The application submits one op from its own thread (open loop): it
    /// takes a slot and is pushed if the limit allows (entering the kernel
    /// once `batch` SQEs are queued, or at the application's next poll,
    /// `APP_FLUSH_NS` later), else it waits in the backlog.
    fn app_submit(&mut self) {
        if self.in_flight >= self.limit || self.backlog > 0 {
            self.backlog += 1;
            self.meter
                .set_backlog(self.backlog.min(u64::from(u32::MAX)) as u32);
            return;
        }
        let mut t = self.sched.now();
        self.push_one(t);
        if self.queued.len() >= self.batch as usize {
            self.enter(&mut t);
        } else if !self.app_flush_armed {
            self.app_flush_armed = true;
            self.sched.push(t + APP_FLUSH_NS, Ev::AppFlush);
        }
    }

    /// Take a slot and queue an SQE for one op at time `t`.
    fn push_one(&mut self, t: u64) {
        let slot = match self.free_slots.pop() {
            Some(s) => s as usize,
            None => {
                self.push_t.push(0);
                self.push_t.len() - 1
            }
        };
        self.push_t[slot] = t;
        let write = self.rng_app.gen::<f64>() >= self.workload.read_fraction;
        self.queued.push(DevOp {
            id: slot as u64,
            bytes: self.workload.block_size,
            write,
            neighbour: false,
        });
        self.in_flight += 1;
        self.meter.on_submit(self.in_flight);
    }

    /// One round of the reaping/submitting thread at `now`: reap every CQE,
    /// push from the backlog up to the limit (entering the kernel whenever
    /// `batch` SQEs are queued), flush the rest, then stay busy for the CPU
    /// time all that took.
    fn round(&mut self) {
        let now = self.sched.now();
        let mut t = now;
        let closed = matches!(self.workload.load, LoadKind::Closed { .. });
        let mut cq = std::mem::take(&mut self.cq);
        let reaped = !cq.is_empty();
        for op in cq.drain(..) {
            let slot = op.id as usize;
            let lat = t.saturating_sub(self.push_t[slot]);
            self.meter.on_complete(lat, u64::from(op.bytes), false);
            self.free_slots.push(op.id as u32);
            self.in_flight = self.in_flight.saturating_sub(1);
            self.completions += 1;
            t += self.host.per_cqe_ns;
            if closed {
                self.backlog += 1;
            }
        }
        self.cq = cq;
        if reaped {
            // Ops pushed but not entered are not the device's yet.
            let busy = self.in_flight as usize > self.queued.len();
            self.gaps.on_reap(now, busy);
        }
        while self.in_flight < self.limit && self.backlog > 0 {
            self.backlog -= 1;
            self.push_one(t);
            t += self.host.per_sqe_ns;
            if self.queued.len() >= self.batch as usize {
                self.enter(&mut t);
            }
        }
        if !self.queued.is_empty() {
            self.enter(&mut t);
        }
        self.meter
            .set_backlog(self.backlog.min(u64::from(u32::MAX)) as u32);
        self.host_state = HostState::Busy;
        self.sched.push(t.max(now), Ev::HostDone);
    }

    /// The device's stalled time since the last tick (see
    /// [`StallDetector`]), and the threshold for the next interval (which
    /// also rests on the interval's median latency, `p50_ns`).
    fn stalled_since_last_tick(&mut self, p50_ns: u64) -> Duration {
        let now = self.gaps.stats();
        let g = now.since(&self.last_gaps);
        self.last_gaps = now;
        let gaps = IntervalGaps {
            gaps: g.gaps,
            gap_ns: g.gap_ns,
            long_gaps: g.long_gaps,
            long_gap_ns: g.long_gap_ns,
        };
        let interval = self.stall.interval(gaps, p50_ns);
        self.gaps.set_long_ns(interval.next_long_gap_ns);
        interval.stalled
    }

    fn enter(&mut self, t: &mut u64) {
        *t += self.host.enter_ns;
        let n = self.queued.len() as u32;
        self.meter.on_enter(n);
        self.gaps.on_handoff(*t);
        self.enter_calls += 1;
        self.sqes += u64::from(n);
        let mut q = std::mem::take(&mut self.queued);
        for op in q.drain(..) {
            self.device
                .submit(op, *t, &mut self.sched, &mut self.rng_dev);
        }
        self.queued = q;
    }
}
