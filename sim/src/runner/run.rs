//! The event loop: [`run`] validates a [`RunSpec`], builds the runner, and
//! dispatches every event until the end of the run.

use std::time::Duration;

use auraio_controller::{ControllerConfig, HistogramSnapshot, IoMeter, StallDetector};
use auraio_ring::{CompletionGaps, GapStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::result::{RunResult, TickPoint, WindowStats, PLOT_MIN_COMPLETIONS};
use super::spec::{LoadKind, RunSpec, Step};
use super::state::{HostState, Runner};
use crate::device::{DevOp, Device, DeviceChange, DeviceSpec};
use crate::sched::{Ev, Sched};
use crate::SimError;

/// Longest simulated run, s (one day).
pub const MAX_DURATION_S: f64 = 86_400.0;

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
