//! The event loop: [`run`] validates a [`RunSpec`], builds the runner, and
//! hands every event to its handler (`events.rs`) until the end of the run;
//! each tick's sample is recorded (`record.rs`).

use auraio_controller::ControllerConfig;

use super::record::TickRecorder;
use super::result::RunResult;
use super::spec::{LoadKind, RunSpec, Step};
use super::state::Runner;
use crate::device::DeviceSpec;
use crate::sched::Ev;
use crate::SimError;

/// Longest simulated run, s (one day).
pub const MAX_DURATION_S: f64 = 86_400.0;

fn secs_to_ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9).round() as u64
    } else {
        0
    }
}

/// The spec's errors a run cannot start with.
fn validate(spec: &RunSpec) -> Result<(), SimError> {
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
    Ok(())
}

/// Run one controller through one scenario.
pub fn run(spec: &RunSpec, config: &ControllerConfig) -> Result<RunResult, SimError> {
    validate(spec)?;
    let mut ctrl = config.build(spec.limits)?;
    if let Some(c) = spec.p99_ceiling {
        ctrl.set_p99_ceiling(c);
    }
    let mut r = Runner::new(spec, ctrl);
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

    let mut rec = TickRecorder::new((end / tick_ns) as usize + 1, &spec.windows);
    let mut events = 0u64;
    while let Some(ev) = r.sched.pop_until(end) {
        events += 1;
        match ev {
            Ev::DevDone(op) => r.on_dev_done(op),
            Ev::Stall => r.device.on_stall(&mut r.sched, &mut r.rng_stall),
            Ev::HostWake => r.round(),
            Ev::HostDone => r.on_host_done(),
            Ev::Tick => {
                let sample = r.on_tick();
                rec.record(r.sched.now(), &sample, r.limit, r.batch, r.ctrl.state());
                r.after_tick(tick_ns);
            }
            Ev::Arrival => r.on_arrival(),
            Ev::AppFlush => r.on_app_flush(),
            Ev::NeighbourArrival => r.on_neighbour_arrival(),
            Ev::Step(i) => {
                if let Some(s) = steps.get(i) {
                    r.on_step(s);
                }
            }
        }
    }
    Ok(RunResult {
        controller: config.to_string(),
        ticks: rec.ticks,
        windows: rec.windows,
        completions: r.completions,
        enter_calls: r.enter_calls,
        sqes: r.sqes,
        events,
    })
}
