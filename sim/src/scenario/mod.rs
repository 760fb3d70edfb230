//! Scenarios: a device, a workload, step events and pass criteria; the Fixed
//! sweep that finds the best depth of each stationary segment; and the
//! per-run metrics judged against the criteria.
//!
//! Criteria and their sources are described in `docs/simulator.md`.

//! The types live here; the rest is split by concern:
//!
//! - `builtin`: the scenario catalogue ([`BUILTIN`], [`builtin`](fn@builtin),
//!   [`steady_on`], [`default_limits`]) and its criteria presets;
//! - `sweep`: the Fixed sweep ([`sweep`](fn@sweep), [`SweepPoint`], [`BestFixed`]);
//! - `judge`: per-run metrics and the verdict ([`judge`](fn@judge), [`RunMetrics`],
//!   [`SegmentMetrics`]).

mod builtin;
mod judge;
mod sweep;
#[cfg(test)]
mod tests;

use std::time::Duration;

use auraio_controller::Limits;
use serde::Serialize;

use crate::device::{DeviceChange, DeviceSpec};
#[cfg(doc)]
use crate::metrics;
use crate::runner::{HostParams, LoadKind, RunSpec, Step, Workload};

pub use builtin::{builtin, default_limits, steady_on, BUILTIN};
pub use judge::{judge, RunMetrics, SegmentMetrics};
pub use sweep::{sweep, BestFixed, SweepPoint, SWEEP_BATCH};

/// Pass criteria of a scenario (every `Some` is checked on every segment it
/// applies to).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Criteria {
    /// Throughput in each evaluation window ÷ the best fixed depth's (at
    /// least this).
    pub min_thr_ratio: Option<f64>,
    /// Segment 0: time until the limit stays within −10 %..+25 % of the best depth
    /// for 1 s (at most this, s).
    pub max_converge_s: Option<f64>,
    /// Later segments: time from the step until the limit stays within ±25 %
    /// of the new best depth for 1 s (at most this, s).
    pub max_react_s: Option<f64>,
    /// Mean limit in each evaluation window ÷ best depth, within `[lo, hi]`.
    pub limit_band: Option<(f64, f64)>,
    /// Coefficient of variation of the limit in each evaluation window.
    pub max_cov: Option<f64>,
    /// Segment 0 overshoot above the best depth (fraction).
    pub max_overshoot: Option<f64>,
    /// P99 in each evaluation window ÷ the best fixed depth's P99.
    pub max_p99_ratio: Option<f64>,
    /// Limit drops of more than 5 % below both previous ticks' limits,
    /// whole run (see [`metrics::backoffs`]).
    pub max_backoffs: Option<u32>,
    /// Open loop: highest limit ÷ highest in-flight peak in the evaluation
    /// windows.
    pub max_limit_over_peak: Option<f64>,
    /// Open loop: completions ÷ offered ops in the evaluation windows.
    pub min_served_ratio: Option<f64>,
}

/// One scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name used on the command line and in file names.
    pub name: String,
    /// One line on what it tests.
    pub about: String,
    /// The device.
    pub device: DeviceSpec,
    /// The application.
    pub workload: Workload,
    /// Device changes.
    pub steps: Vec<Step>,
    /// Simulated time, s.
    pub duration_s: f64,
    /// P99 ceiling given to the controllers (None = controller default, and
    /// 10 ms for judging ceiling breaches).
    pub p99_ceiling: Option<Duration>,
    /// Limits given to the controllers.
    pub limits: Limits,
    /// Measurement time per depth in the Fixed sweep, s.
    pub sweep_measure_s: f64,
    /// Pass criteria (empty = informational).
    pub criteria: Criteria,
}

/// Default P99 ceiling assumed when a scenario sets none (the AIMD default).
pub const DEFAULT_CEILING: Duration = Duration::from_millis(10);
/// Convergence band: from 10 % below to 25 % above the best depth. The best
/// depth is the *smallest* reaching 97 % of the best throughput; a little
/// deeper still gains a little throughput for a little latency (which the
/// P99 criterion bounds), so the band is wider above than below.
pub const CONVERGE_BAND: (f64, f64) = (0.10, 0.25);
/// Reaction band after a step: ±25 % of the new best depth (issue 3's
/// closed-loop band), held for [`CONVERGE_HOLD_S`].
pub const REACT_TOL: f64 = 0.25;
/// Convergence hold: the limit stays in the band this long.
pub const CONVERGE_HOLD_S: f64 = 1.0;
/// A limit counts as *held* once it lasts this long (s): shorter runs are
/// AIMD's trial legs (see [`metrics::held`]).
pub const HOLD_S: f64 = 0.1;
/// The best depth is the smallest reaching this share of the best throughput.
pub const KNEE_SHARE: f64 = 0.97;

/// A stationary stretch of a scenario between two steps.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
    /// Evaluation window (the segment's second half), s.
    pub eval: (f64, f64),
    /// Steps in force (cumulative), as applied from t = 0 in the sweep.
    #[serde(skip)]
    pub changes: Vec<DeviceChange>,
}

impl Scenario {
    /// The scenario cut at its steps.
    pub fn segments(&self) -> Vec<Segment> {
        let mut steps = self.steps.clone();
        steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut out = Vec::new();
        let mut start = 0.0;
        let mut changes: Vec<DeviceChange> = Vec::new();
        let mut i = 0;
        loop {
            while i < steps.len() && steps[i].at_s <= start + 1e-9 {
                changes.push(steps[i].change);
                i += 1;
            }
            let end = steps
                .get(i)
                .map(|s| s.at_s.min(self.duration_s))
                .unwrap_or(self.duration_s);
            if end > start + 1e-9 {
                out.push(Segment {
                    start_s: start,
                    end_s: end,
                    eval: (start + (end - start) / 2.0, end),
                    changes: changes.clone(),
                });
            }
            if i >= steps.len() || end >= self.duration_s {
                break;
            }
            start = end;
        }
        out
    }

    /// The ceiling used to judge breaches and eligible sweep depths.
    pub fn ceiling(&self) -> Duration {
        self.p99_ceiling.unwrap_or(DEFAULT_CEILING)
    }

    /// Offered IOPS for open-loop workloads.
    pub fn offered_iops(&self) -> Option<f64> {
        match self.workload.load {
            LoadKind::Open { iops } => Some(iops),
            LoadKind::Closed { .. } => None,
        }
    }

    /// The run spec of a controller run.
    pub fn run_spec(&self, seed: u64) -> RunSpec {
        RunSpec {
            device: self.device.clone(),
            workload: self.workload,
            host: HostParams::default(),
            steps: self.steps.clone(),
            duration_s: self.duration_s,
            tick_ms: 10,
            limits: self.limits,
            p99_ceiling: self.p99_ceiling,
            seed,
            windows: self.segments().iter().map(|s| s.eval).collect(),
        }
    }
}
