//! The Fixed sweep: the best fixed depth of a stationary segment
//! ([`sweep`], [`BestFixed`], [`SweepPoint`]).

use auraio_controller::{ControllerConfig, Limits};
use serde::Serialize;

use crate::runner::{self, HostParams, RunSpec, Step};
use crate::SimError;

use super::{Scenario, Segment, KNEE_SHARE};

/// One depth of a Fixed sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// Fixed in-flight depth.
    pub depth: u32,
    /// IOPS in the measurement window.
    pub iops: f64,
    /// P50, µs.
    pub p50_us: f64,
    /// P99, µs.
    pub p99_us: f64,
}

/// The outcome of a Fixed sweep on one stationary segment.
#[derive(Clone, Debug, Serialize)]
pub struct BestFixed {
    /// The best depth: the smallest whose throughput reaches 97 % of the
    /// best throughput among depths with P99 under the ceiling.
    pub depth: u32,
    /// The best throughput any eligible depth reached (the "best fixed"
    /// throughput that runs are divided by).
    pub max_iops: f64,
    /// P99 at the best depth, µs.
    pub p99_us: f64,
    /// P50 at the best depth, µs.
    pub p50_us: f64,
    /// Every depth tried, ascending.
    pub points: Vec<SweepPoint>,
}

/// Batch threshold of the sweep's Fixed runs.
pub const SWEEP_BATCH: u32 = 8;
const SWEEP_WARM_S: f64 = 0.2;

/// Sweep `Fixed` depths on a stationary device (the segment's changes
/// applied from t = 0): doublings until two in a row gain < 3 %, then a
/// bisection for the smallest depth reaching 97 % of the best throughput.
pub fn sweep(sc: &Scenario, seg: &Segment, seed: u64) -> Result<BestFixed, SimError> {
    let measure = sc.sweep_measure_s.max(0.1);
    let ceiling_us = sc.ceiling().as_secs_f64() * 1e6;
    let max_depth = sc.limits.max_in_flight.max(1);
    let run_depth = |d: u32| -> Result<SweepPoint, SimError> {
        let spec = RunSpec {
            device: sc.device.clone(),
            workload: sc.workload,
            host: HostParams::default(),
            steps: seg
                .changes
                .iter()
                .map(|&change| Step { at_s: 0.0, change })
                .collect(),
            duration_s: SWEEP_WARM_S + measure,
            tick_ms: 10,
            limits: Limits::new(1, max_depth, d),
            p99_ceiling: None,
            seed,
            windows: vec![(SWEEP_WARM_S, SWEEP_WARM_S + measure)],
        };
        let r = runner::run(
            &spec,
            &ControllerConfig::Fixed {
                in_flight: d,
                batch: SWEEP_BATCH,
            },
        )?;
        let w = &r.windows[0];
        Ok(SweepPoint {
            depth: d,
            iops: w.iops(),
            p50_us: w.latency.p50_ns() as f64 / 1e3,
            p99_us: w.latency.p99_ns() as f64 / 1e3,
        })
    };
    let mut points: Vec<SweepPoint> = Vec::new();
    let mut d = 1u32;
    let mut flat = 0;
    loop {
        let p = run_depth(d)?;
        if let Some(prev) = points.last() {
            if p.iops < prev.iops * 1.03 {
                flat += 1;
            } else {
                flat = 0;
            }
        }
        points.push(p);
        if flat >= 2 || d >= max_depth {
            break;
        }
        d = d.saturating_mul(2).min(max_depth);
    }
    let eligible = |p: &SweepPoint| p.p99_us <= ceiling_us;
    let any_eligible = points.iter().any(eligible);
    let ok = |p: &SweepPoint| !any_eligible || eligible(p);
    let max_iops = points
        .iter()
        .filter(|p| ok(p))
        .map(|p| p.iops)
        .fold(0.0, f64::max);
    let target = KNEE_SHARE * max_iops;
    let hi_point = points
        .iter()
        .find(|p| ok(p) && p.iops >= target)
        .cloned()
        .unwrap_or_else(|| points[0].clone());
    let mut hi = hi_point.depth;
    let mut lo = points
        .iter()
        .filter(|p| p.depth < hi)
        .map(|p| p.depth)
        .max()
        .unwrap_or(0);
    while hi - lo > 1 && hi - lo > hi / 40 {
        let mid = lo + (hi - lo) / 2;
        let p = run_depth(mid)?;
        let good = ok(&p) && p.iops >= target;
        points.push(p);
        if good {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    points.sort_by_key(|p| p.depth);
    let best = points
        .iter()
        .find(|p| p.depth == hi)
        .cloned()
        .unwrap_or(hi_point);
    Ok(BestFixed {
        depth: best.depth,
        max_iops,
        p99_us: best.p99_us,
        p50_us: best.p50_us,
        points,
    })
}
