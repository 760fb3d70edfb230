//! Judging a run: its per-segment and whole-run metrics ([`SegmentMetrics`],
//! [`RunMetrics`]) and the criteria it fails ([`judge`]).

use serde::Serialize;

use crate::metrics;
use crate::runner::RunResult;

use super::{BestFixed, Criteria, Scenario, CONVERGE_BAND, CONVERGE_HOLD_S, HOLD_S, REACT_TOL};

/// Metrics of one run on one segment.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentMetrics {
    /// Segment start, s.
    pub start_s: f64,
    /// Best fixed depth of the segment (None for open-loop workloads).
    pub best_depth: Option<u32>,
    /// IOPS in the evaluation window.
    pub iops: f64,
    /// IOPS ÷ best fixed throughput (closed loop) or ÷ offered (open loop).
    pub thr_ratio: f64,
    /// P50 in the evaluation window, µs.
    pub p50_us: f64,
    /// P99 in the evaluation window, µs.
    pub p99_us: f64,
    /// P99 ÷ the best fixed depth's P99.
    pub p99_ratio: Option<f64>,
    /// Mean limit in the evaluation window.
    pub mean_limit: f64,
    /// Mean limit ÷ best depth.
    pub limit_ratio: Option<f64>,
    /// CoV of the limit in the evaluation window.
    pub cov: f64,
    /// Time from the segment start until the limit stays within −10 %..+25 % of the
    /// best depth for 1 s (None = never).
    pub converge_s: Option<f64>,
    /// The same with ±25 % (reaction after a step; None = never).
    pub react_s: Option<f64>,
    /// Highest limit in the segment above the best depth (fraction).
    pub overshoot: Option<f64>,
    /// Highest limit in the evaluation window.
    pub max_limit: u32,
    /// Highest in-flight peak in the evaluation window.
    pub peak_in_flight: u32,
    /// Ticks with P99 over the ceiling in the segment.
    pub ticks_over_ceiling: u32,
}

/// Metrics of one run, with the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct RunMetrics {
    /// Controller (short form).
    pub controller: String,
    /// Per segment.
    pub segments: Vec<SegmentMetrics>,
    /// Worst throughput ratio over the segments.
    pub thr_ratio: f64,
    /// Closed loop without steps: throughput over the *whole* run (probing
    /// from the start limit included, as `auraio-bench` measures it) ÷ the
    /// best fixed depth's.
    pub run_thr_ratio: Option<f64>,
    /// P50 over every evaluation window, µs.
    pub p50_us: f64,
    /// P99 over every evaluation window, µs.
    pub p99_us: f64,
    /// Worst P99 ratio.
    pub p99_ratio: Option<f64>,
    /// Segment 0 convergence, s.
    pub converge_s: Option<f64>,
    /// Worst re-convergence after a step, s (None = never or no steps).
    pub react_s: Option<f64>,
    /// True if there are steps and some segment never re-converged.
    pub react_never: bool,
    /// Worst CoV of the limit.
    pub cov: f64,
    /// Segment 0 overshoot (fraction).
    pub overshoot: Option<f64>,
    /// Limit drops of more than 5 % below both previous ticks' limits,
    /// whole run.
    pub backoffs: u32,
    /// Highest limit ÷ highest in-flight peak over the evaluation windows.
    pub limit_over_peak: f64,
    /// Mean limit ÷ best depth, the one furthest from 1.
    pub limit_ratio: Option<f64>,
    /// Average SQEs per `io_uring_enter`.
    pub sqes_per_enter: f64,
    /// Criteria that failed (empty = pass).
    pub failures: Vec<String>,
    /// Whether criteria were checked at all.
    pub checked: bool,
}

/// Compute a run's metrics and judge them against the scenario's criteria.
pub fn judge(sc: &Scenario, best: &[Option<BestFixed>], r: &RunResult) -> RunMetrics {
    let segs = sc.segments();
    let ceiling_us = sc.ceiling().as_secs_f64() * 1e6;
    let mut out = Vec::new();
    let mut all = auraio_controller::HistogramSnapshot::default();
    // Levels held for at least HOLD_S (see `metrics::held`).
    let tick_s = match r.ticks.as_slice() {
        [a, b, ..] => (b.t_s - a.t_s).max(1e-6),
        _ => 0.01,
    };
    let hold_ticks = (HOLD_S / tick_s).round() as usize;
    let held = metrics::held(&r.ticks, hold_ticks);
    for (i, seg) in segs.iter().enumerate() {
        let w = r.windows.get(i).cloned().unwrap_or_default();
        all.merge(&w.latency);
        let b = best.get(i).and_then(|b| b.as_ref());
        let iops = w.iops();
        let thr_ratio = match (sc.offered_iops(), b) {
            (Some(off), _) if off > 0.0 => iops / off,
            (_, Some(b)) if b.max_iops > 0.0 => iops / b.max_iops,
            _ => 0.0,
        };
        let p50_us = w.latency.p50_ns() as f64 / 1e3;
        let p99_us = w.latency.p99_ns() as f64 / 1e3;
        let lim = metrics::limits_in(&r.ticks, seg.eval.0, seg.eval.1);
        let mean_limit = metrics::mean(&lim);
        let best_depth = b.map(|b| f64::from(b.depth));
        out.push(SegmentMetrics {
            start_s: seg.start_s,
            best_depth: b.map(|b| b.depth),
            iops,
            thr_ratio,
            p50_us,
            p99_us,
            p99_ratio: b.filter(|b| b.p99_us > 0.0).map(|b| p99_us / b.p99_us),
            mean_limit,
            limit_ratio: best_depth.map(|d| mean_limit / d),
            cov: metrics::cov(&lim),
            converge_s: best_depth.and_then(|d| {
                metrics::converge_time(
                    &held,
                    seg.start_s,
                    seg.end_s,
                    d,
                    CONVERGE_BAND,
                    CONVERGE_HOLD_S,
                )
            }),
            react_s: best_depth.and_then(|d| {
                metrics::converge_time(
                    &held,
                    seg.start_s,
                    seg.end_s,
                    d,
                    (REACT_TOL, REACT_TOL),
                    CONVERGE_HOLD_S,
                )
            }),
            overshoot: best_depth.map(|d| metrics::overshoot(&held, seg.start_s, seg.end_s, d)),
            max_limit: lim.iter().fold(0.0, |a: f64, &b| a.max(b)) as u32,
            peak_in_flight: metrics::peak_in_flight(&r.ticks, seg.eval.0, seg.eval.1),
            ticks_over_ceiling: metrics::ticks_over(&r.ticks, seg.start_s, seg.end_s, ceiling_us),
        });
    }
    let worst = |f: &dyn Fn(&SegmentMetrics) -> Option<f64>| {
        out.iter()
            .filter_map(f)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
    };
    let react_never = out
        .iter()
        .skip(1)
        .any(|s| s.best_depth.is_some() && s.react_s.is_none());
    let max_limit = out.iter().map(|s| s.max_limit).max().unwrap_or(0);
    let max_peak = out.iter().map(|s| s.peak_in_flight).max().unwrap_or(0);
    let limit_ratio = out
        .iter()
        .filter_map(|s| s.limit_ratio)
        .fold(None, |a: Option<f64>, v| match a {
            Some(a) if (a - 1.0).abs() >= (v - 1.0).abs() => Some(a),
            _ => Some(v),
        });
    let run_thr_ratio = match (segs.len(), sc.offered_iops(), best.first()) {
        (1, None, Some(Some(b))) if b.max_iops > 0.0 && sc.duration_s > 0.0 => {
            Some(r.completions as f64 / sc.duration_s / b.max_iops)
        }
        _ => None,
    };
    let mut m = RunMetrics {
        controller: r.controller.clone(),
        run_thr_ratio,
        thr_ratio: out
            .iter()
            .map(|s| s.thr_ratio)
            .fold(f64::INFINITY, f64::min),
        p50_us: all.p50_ns() as f64 / 1e3,
        p99_us: all.p99_ns() as f64 / 1e3,
        p99_ratio: worst(&|s| s.p99_ratio),
        converge_s: out.first().and_then(|s| s.converge_s),
        react_s: worst(&|s| if s.start_s > 0.0 { s.react_s } else { None }),
        react_never,
        cov: out.iter().map(|s| s.cov).fold(0.0, f64::max),
        overshoot: out.first().and_then(|s| s.overshoot),
        backoffs: metrics::backoffs(&held, 0.0, sc.duration_s, 0.05),
        limit_over_peak: if max_peak > 0 {
            f64::from(max_limit) / f64::from(max_peak)
        } else {
            f64::INFINITY
        },
        limit_ratio,
        sqes_per_enter: if r.enter_calls > 0 {
            r.sqes as f64 / r.enter_calls as f64
        } else {
            0.0
        },
        segments: out,
        failures: Vec::new(),
        checked: sc.criteria != Criteria::default(),
    };
    if !m.thr_ratio.is_finite() {
        m.thr_ratio = 0.0;
    }
    m.failures = failures(&sc.criteria, &m);
    m
}

fn failures(c: &Criteria, m: &RunMetrics) -> Vec<String> {
    let mut f = Vec::new();
    for (i, s) in m.segments.iter().enumerate() {
        let tag = if m.segments.len() > 1 {
            format!("segment {i} (from {:.0} s): ", s.start_s)
        } else {
            String::new()
        };
        if let Some(min) = c.min_thr_ratio {
            if s.thr_ratio < min {
                f.push(format!(
                    "{tag}throughput {:.2} of best fixed < {min:.2}",
                    s.thr_ratio
                ));
            }
        }
        if let (Some((lo, hi)), Some(r)) = (c.limit_band, s.limit_ratio) {
            if r < lo || r > hi {
                f.push(format!(
                    "{tag}mean limit {:.1} = {r:.2}× best depth {}, outside [{lo:.2}, {hi:.2}]",
                    s.mean_limit,
                    s.best_depth.unwrap_or(0)
                ));
            }
        }
        if let Some(max) = c.max_cov {
            if s.cov > max {
                f.push(format!("{tag}limit CoV {:.3} > {max:.3}", s.cov));
            }
        }
        if let (Some(max), Some(r)) = (c.max_p99_ratio, s.p99_ratio) {
            if r > max {
                f.push(format!(
                    "{tag}P99 {:.0} µs = {r:.2}× the best fixed depth's > {max:.2}×",
                    s.p99_us
                ));
            }
        }
        let (limit, time, band) = if i == 0 {
            (c.max_converge_s, s.converge_s, CONVERGE_BAND)
        } else {
            (c.max_react_s, s.react_s, (REACT_TOL, REACT_TOL))
        };
        if let (Some(max), Some(_)) = (limit, s.best_depth) {
            let what = if i == 0 { "convergence" } else { "reaction" };
            match time {
                None => f.push(format!(
                    "{tag}{what}: limit never stayed within -{:.0} %..+{:.0} % of best depth {} for 1 s",
                    band.0 * 100.0,
                    band.1 * 100.0,
                    s.best_depth.unwrap_or(0)
                )),
                Some(t) if t > max => f.push(format!("{tag}{what} {t:.2} s > {max:.1} s")),
                _ => {}
            }
        }
    }
    if let (Some(max), Some(o)) = (c.max_overshoot, m.overshoot) {
        if o > max {
            f.push(format!(
                "overshoot {:.0} % > {:.0} %",
                o * 100.0,
                max * 100.0
            ));
        }
    }
    if let Some(max) = c.max_backoffs {
        if m.backoffs > max {
            f.push(format!("{} backoffs > {max}", m.backoffs));
        }
    }
    if let Some(max) = c.max_limit_over_peak {
        if m.limit_over_peak > max {
            f.push(format!(
                "limit drifted to {:.2}× the peak in-flight > {max:.1}×",
                m.limit_over_peak
            ));
        }
    }
    if let Some(min) = c.min_served_ratio {
        if m.thr_ratio < min {
            f.push(format!(
                "served {:.3} of the offered load < {min:.2}",
                m.thr_ratio
            ));
        }
    }
    f
}
