//! Runs scenarios × controllers (and the Fixed sweeps they are judged
//! against) on a small pool of threads. Each run is deterministic on its
//! own, and results are gathered by index, so the outcome does not depend
//! on the number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use auraio_controller::ControllerConfig;
use serde::Serialize;

use crate::runner::{self, LoadKind, RunResult};
use crate::scenario::{self, BestFixed, RunMetrics, Scenario, Segment};
use crate::SimError;

/// Everything about one scenario after the suite ran.
#[derive(Clone, Debug)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Its segments.
    pub segments: Vec<Segment>,
    /// Best fixed depth per segment (None for open-loop workloads).
    pub best: Vec<Option<BestFixed>>,
    /// One per controller, in the order given.
    pub runs: Vec<(RunMetrics, RunResult)>,
}

/// Summary of a segment for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentSummary {
    /// Segment.
    #[serde(flatten)]
    pub segment: Segment,
    /// Its Fixed sweep.
    pub best: Option<BestFixed>,
}

/// Seed of a scenario's runs: the user's seed mixed with the scenario's
/// name (FNV-1a), so a scenario gives the same results whichever others run
/// with it; the same for every controller (they face the same stalls and
/// neighbours).
pub fn scenario_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ h
}

/// A controller with the label it gets in tables, plots and JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Labeled {
    /// Label (by default the config's short form).
    pub label: String,
    /// The controller.
    pub config: ControllerConfig,
}

impl From<ControllerConfig> for Labeled {
    fn from(config: ControllerConfig) -> Self {
        Labeled {
            label: config.to_string(),
            config,
        }
    }
}

/// Seed of a segment's Fixed sweep. Sweeps are shared by every scenario on
/// the same device and segment, so they use the user's seed; but a device
/// that drifts must be swept under the very drift path the scenario's runs
/// see (the drift is a function of the seed and time), so it gets the
/// scenario's seed (and a sweep of its own).
fn sweep_seed(sc: &Scenario, seed: u64) -> u64 {
    match &sc.device {
        crate::device::DeviceSpec::Model(p) if !p.drift.is_empty() => scenario_seed(seed, &sc.name),
        _ => seed,
    }
}

fn sweep_key(sc: &Scenario, seg: &Segment, seed: u64) -> String {
    let dev = match &sc.device {
        crate::device::DeviceSpec::Model(p) => format!("{p:?}"),
        crate::device::DeviceSpec::Empirical(e) => format!("{:p}", std::sync::Arc::as_ptr(e)),
    };
    format!(
        "{dev}|{:?}|{:?}|{}|{:?}|{}|{}",
        seg.changes,
        sc.workload,
        sc.sweep_measure_s,
        sc.p99_ceiling,
        sc.limits.max_in_flight,
        sweep_seed(sc, seed)
    )
}

enum Job {
    Sweep {
        scenario: usize,
        segment: usize,
        key: usize,
    },
    Run {
        scenario: usize,
        controller: usize,
    },
}

/// Run every scenario with every controller on `threads` threads.
pub fn run_suite(
    scenarios: &[Scenario],
    controllers: &[Labeled],
    seed: u64,
    threads: usize,
) -> Result<Vec<ScenarioReport>, SimError> {
    let mut jobs: Vec<(f64, Job)> = Vec::new();
    // Identical stationary segments (same device, changes, workload, sweep
    // settings) share one sweep: sweep_of[scenario][segment] = job's key index.
    let mut keys: Vec<String> = Vec::new();
    let mut sweep_of: Vec<Vec<Option<usize>>> = Vec::new();
    for (si, sc) in scenarios.iter().enumerate() {
        let segs = sc.segments();
        let iops = sc.device.nominal_peak_iops().max(1.0);
        let mut mine = vec![None; segs.len()];
        if matches!(sc.workload.load, LoadKind::Closed { .. }) {
            for (gi, seg) in segs.iter().enumerate() {
                let key = sweep_key(sc, seg, seed);
                let k = match keys.iter().position(|k| *k == key) {
                    Some(k) => k,
                    None => {
                        keys.push(key);
                        // A sweep is roughly a dozen measurement windows.
                        let cost = iops * (sc.sweep_measure_s + 0.2) * 8.0;
                        jobs.push((
                            cost,
                            Job::Sweep {
                                scenario: si,
                                segment: gi,
                                key: keys.len() - 1,
                            },
                        ));
                        keys.len() - 1
                    }
                };
                mine[gi] = Some(k);
            }
        }
        sweep_of.push(mine);
        for ci in 0..controllers.len() {
            jobs.push((
                iops * sc.duration_s,
                Job::Run {
                    scenario: si,
                    controller: ci,
                },
            ));
        }
    }
    // Longest first: the pool finishes together.
    jobs.sort_by(|a, b| b.0.total_cmp(&a.0));
    enum Out {
        Sweep(usize, BestFixed),
        Run(usize, usize, RunResult),
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<Out, SimError>>> = Mutex::new(Vec::new());
    let threads = threads.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, job)) = jobs.get(i) else { break };
                let out = match *job {
                    Job::Sweep {
                        scenario,
                        segment,
                        key,
                    } => {
                        let sc = &scenarios[scenario];
                        let seg = &sc.segments()[segment];
                        // Sweeps depend on the key only, not on the scenario's position.
                        scenario::sweep(sc, seg, sweep_seed(sc, seed)).map(|b| Out::Sweep(key, b))
                    }
                    Job::Run {
                        scenario,
                        controller,
                    } => {
                        let sc = &scenarios[scenario];
                        let c = &controllers[controller];
                        runner::run(&sc.run_spec(scenario_seed(seed, &sc.name)), &c.config).map(
                            |mut r| {
                                r.controller = c.label.clone();
                                Out::Run(scenario, controller, r)
                            },
                        )
                    }
                };
                let failed = out.is_err();
                if let Ok(mut v) = results.lock() {
                    v.push(out);
                }
                if failed {
                    // Stop handing out work; the error is reported below.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| SimError::Config("a simulation thread panicked".into()))?;
    let mut swept: Vec<Option<BestFixed>> = vec![None; keys.len()];
    let mut runs: Vec<Vec<Option<RunResult>>> = scenarios
        .iter()
        .map(|_| vec![None; controllers.len()])
        .collect();
    for r in results {
        match r? {
            Out::Sweep(k, b) => swept[k] = Some(b),
            Out::Run(s, c, r) => runs[s][c] = Some(r),
        }
    }
    let mut out = Vec::new();
    for (si, sc) in scenarios.iter().enumerate() {
        let b: Vec<Option<BestFixed>> = sweep_of[si]
            .iter()
            .map(|k| k.and_then(|k| swept[k].clone()))
            .collect();
        let mut rs = Vec::new();
        for r in std::mem::take(&mut runs[si]).into_iter().flatten() {
            rs.push((scenario::judge(sc, &b, &r), r));
        }
        out.push(ScenarioReport {
            scenario: sc.clone(),
            segments: sc.segments(),
            best: b,
            runs: rs,
        });
    }
    Ok(out)
}
