//! Output: the scorecard table, `summary.json`, and one convergence plot per
//! scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::plot::{self, Figure, Panel, Series};
use crate::runner::TickPoint;
use crate::scenario::{Criteria, RunMetrics};
use crate::suite::{ScenarioReport, SegmentSummary};
use crate::SimError;

fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    }
}

/// The scorecard: one row per scenario × controller.
pub fn scorecard(reports: &[ScenarioReport]) -> String {
    let header = [
        "scenario",
        "controller",
        "best",
        "thr/best",
        "run/best",
        "P50us",
        "P99us",
        "P99/best",
        "conv_s",
        "react_s",
        "CoV",
        "oversh",
        "backoffs",
        "lim/best",
        "sqe/ent",
        "verdict",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in reports {
        let best: Vec<String> = r
            .best
            .iter()
            .map(|b| {
                b.as_ref()
                    .map(|b| b.depth.to_string())
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        for (m, _) in &r.runs {
            let react = if r.segments.len() < 2 {
                "-".to_string()
            } else if m.react_never {
                "never".to_string()
            } else {
                opt(m.react_s, 2)
            };
            let verdict = if !m.checked {
                "info".to_string()
            } else if m.failures.is_empty() {
                "PASS".to_string()
            } else {
                format!("FAIL({})", m.failures.len())
            };
            rows.push(vec![
                r.scenario.name.clone(),
                m.controller.clone(),
                best.join("/"),
                format!("{:.3}", m.thr_ratio),
                opt(m.run_thr_ratio, 3),
                format!("{:.0}", m.p50_us),
                format!("{:.0}", m.p99_us),
                opt(m.p99_ratio, 2),
                if m.segments.first().and_then(|s| s.best_depth).is_some() {
                    m.converge_s
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "never".into())
                } else {
                    "-".into()
                },
                react,
                format!("{:.3}", m.cov),
                m.overshoot
                    .map(|o| format!("{:.0}%", o * 100.0))
                    .unwrap_or_else(|| "-".into()),
                m.backoffs.to_string(),
                opt(m.limit_ratio, 2),
                format!("{:.1}", m.sqes_per_enter),
                verdict,
            ]);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c < 2 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    out
}

/// Every failed criterion, one line each (`scenario / controller: what`).
pub fn failures(reports: &[ScenarioReport], only: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    for r in reports {
        for (m, _) in &r.runs {
            if only.is_some_and(|o| o != m.controller) || !m.checked {
                continue;
            }
            for f in &m.failures {
                v.push(format!("{} / {}: {f}", r.scenario.name, m.controller));
            }
        }
    }
    v
}

#[derive(Serialize)]
struct ScenarioJson<'a> {
    name: &'a str,
    about: &'a str,
    device: String,
    duration_s: f64,
    p99_ceiling_ms: f64,
    criteria: &'a Criteria,
    segments: Vec<SegmentSummary>,
    runs: Vec<&'a RunMetrics>,
    plot_png: Option<String>,
}

/// The `summary.json` document.
#[derive(Serialize)]
pub struct Summary<'a> {
    /// Generator.
    pub tool: &'static str,
    /// Seed of the suite.
    pub seed: u64,
    /// Controllers run.
    pub controllers: Vec<String>,
    /// Wall-clock seconds the suite took.
    pub elapsed_s: f64,
    /// Whether every checked run passed.
    pub pass: bool,
    scenarios: Vec<ScenarioJson<'a>>,
}

/// Build the summary (plots named relative to the output directory).
pub fn summary<'a>(
    reports: &'a [ScenarioReport],
    seed: u64,
    controllers: Vec<String>,
    elapsed_s: f64,
    pass: bool,
    plots: bool,
) -> Summary<'a> {
    Summary {
        tool: "auraio-sim",
        seed,
        controllers,
        elapsed_s,
        pass,
        scenarios: reports
            .iter()
            .map(|r| ScenarioJson {
                name: &r.scenario.name,
                about: &r.scenario.about,
                device: r.scenario.device.name(),
                duration_s: r.scenario.duration_s,
                p99_ceiling_ms: r.scenario.ceiling().as_secs_f64() * 1e3,
                criteria: &r.scenario.criteria,
                segments: r
                    .segments
                    .iter()
                    .zip(&r.best)
                    .map(|(s, b)| SegmentSummary {
                        segment: s.clone(),
                        best: b.clone(),
                    })
                    .collect(),
                runs: r.runs.iter().map(|(m, _)| m).collect(),
                plot_png: plots.then(|| format!("{}.png", r.scenario.name)),
            })
            .collect(),
    }
}

/// Moving average over `w` points (trailing), for readable IOPS lines.
pub fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let w = w.max(1);
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= w {
            sum -= points[i - w].1;
        }
        let n = (i + 1).min(w) as f64;
        out.push((x, sum / n));
    }
    out
}

/// Smoothing window (ticks) that averages at least ~50 completions,
/// between 10 and 200 ticks.
fn smoothing_ticks(ticks: &[TickPoint]) -> usize {
    if ticks.len() < 2 {
        return 1;
    }
    let dt = (ticks[ticks.len() - 1].t_s - ticks[0].t_s) / (ticks.len() - 1) as f64;
    let mean_iops = ticks.iter().map(|t| t.iops).sum::<f64>() / ticks.len() as f64;
    let per_tick = (mean_iops * dt).max(1e-9);
    ((50.0 / per_tick).ceil() as usize).clamp(10, 200)
}

/// The figure of one scenario: limit, IOPS and P99 over time, one line per
/// controller; the best fixed depth per segment dashed; steps as vertical
/// lines.
pub fn figure(r: &ScenarioReport) -> Figure {
    let mut limit = Panel {
        y_label: "in-flight limit".into(),
        ..Panel::default()
    };
    let w = r
        .runs
        .iter()
        .map(|(_, run)| smoothing_ticks(&run.ticks))
        .max()
        .unwrap_or(10);
    let dt_ms = r
        .runs
        .first()
        .and_then(|(_, run)| run.ticks.first().map(|t| t.t_s * 1e3))
        .unwrap_or(10.0);
    let mut iops = Panel {
        y_label: format!("kIOPS ({:.0} ms avg)", w as f64 * dt_ms),
        ..Panel::default()
    };
    let mut p99 = Panel {
        y_label: "P99 (µs, log)".into(),
        log_y: true,
        ..Panel::default()
    };
    for (m, run) in &r.runs {
        let label = m.controller.clone();
        limit.series.push(Series {
            label: label.clone(),
            points: run
                .ticks
                .iter()
                .map(|t| (t.t_s, f64::from(t.limit)))
                .collect(),
            dashed: false,
        });
        let pts: Vec<(f64, f64)> = run.ticks.iter().map(|t| (t.t_s, t.iops / 1e3)).collect();
        iops.series.push(Series {
            label: label.clone(),
            points: smooth(&pts, w),
            dashed: false,
        });
        p99.series.push(Series {
            label,
            points: run
                .ticks
                .iter()
                .filter(|t| t.p99_plot_us > 0.0)
                .map(|t| (t.t_s, t.p99_plot_us))
                .collect(),
            dashed: false,
        });
    }
    // Best fixed depth (and its throughput) per segment, as step lines.
    let mut best_depth = Vec::new();
    let mut best_iops = Vec::new();
    for (seg, b) in r.segments.iter().zip(&r.best) {
        if let Some(b) = b {
            let d = f64::from(b.depth);
            best_depth.push((seg.start_s, d));
            best_depth.push((seg.end_s, d));
            best_iops.push((seg.start_s, b.max_iops / 1e3));
            best_iops.push((seg.end_s, b.max_iops / 1e3));
        }
    }
    if !best_depth.is_empty() {
        limit.series.push(Series {
            label: "best fixed depth".into(),
            points: best_depth,
            dashed: true,
        });
        iops.series.push(Series {
            label: "best fixed".into(),
            points: best_iops,
            dashed: true,
        });
    }
    let ceiling_us = r.scenario.ceiling().as_secs_f64() * 1e6;
    let max_p99 = r
        .runs
        .iter()
        .flat_map(|(_, run)| run.ticks.iter().map(|t| t.p99_us))
        .fold(0.0, f64::max);
    if max_p99 > ceiling_us * 0.5 {
        p99.hlines.push((ceiling_us, "P99 ceiling".into()));
    }
    let mut steps = r.scenario.steps.clone();
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Figure {
        title: format!("{}: {}", r.scenario.name, r.scenario.about),
        x_label: "time (s)".into(),
        panels: vec![limit, iops, p99],
        vlines: steps
            .iter()
            .map(|s| (s.at_s, format!("{:?}", s.change)))
            .collect(),
    }
}

/// Write `NAME.png` and `NAME.svg` for every scenario into `dir`. Returns
/// the PNG paths and whether text could be drawn.
pub fn write_plots(
    reports: &[ScenarioReport],
    dir: &Path,
) -> Result<(Vec<PathBuf>, bool), SimError> {
    let mut paths = Vec::new();
    let mut text = true;
    for r in reports {
        let png = dir.join(format!("{}.png", r.scenario.name));
        let svg = dir.join(format!("{}.svg", r.scenario.name));
        let o = plot::render(&figure(r), &png, &svg, (1200, 1000))?;
        text &= o.text;
        paths.push(png);
    }
    Ok((paths, text))
}

/// Write `NAME.csv` for every scenario into `dir`: one row per controller
/// and tick (`controller,t_s,limit,batch,iops,p50_us,p99_us,in_flight_avg,
/// in_flight_peak,backlog,stalled_ms,phase,reason`; the controller's reason only on
/// the ticks where it changed), for plotting and reading elsewhere.
pub fn write_series(reports: &[ScenarioReport], dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    let mut paths = Vec::new();
    for r in reports {
        let mut out = String::from(
            "controller,t_s,limit,batch,iops,p50_us,p99_us,in_flight_avg,in_flight_peak,backlog,stalled_ms,phase,reason\n",
        );
        for (_, run) in &r.runs {
            let label = run.controller.replace([',', '"', '\n'], " ");
            for t in &run.ticks {
                let _ = writeln!(
                    out,
                    "{label},{:.3},{},{},{:.0},{:.1},{:.1},{:.2},{},{},{:.3},{},\"{}\"",
                    t.t_s,
                    t.limit,
                    t.batch,
                    t.iops,
                    t.p50_us,
                    t.p99_us,
                    t.in_flight_avg,
                    t.in_flight_peak,
                    t.backlog,
                    t.stalled_ms,
                    t.phase.replace([',', '\n'], " "),
                    t.reason.replace(['"', '\n'], "'")
                );
            }
        }
        let path = dir.join(format!("{}.csv", r.scenario.name));
        std::fs::write(&path, out).map_err(|e| SimError::Io {
            path: path.clone(),
            err: e,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_trailing_mean() {
        let p = vec![(0.0, 0.0), (1.0, 2.0), (2.0, 4.0), (3.0, 6.0)];
        let s = smooth(&p, 2);
        assert_eq!(s, vec![(0.0, 0.0), (1.0, 1.0), (2.0, 3.0), (3.0, 5.0)]);
        assert_eq!(smooth(&p, 0), p);
    }
}
