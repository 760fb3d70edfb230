//! The result of one run: fio-style text summary and JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::RwMode;
use crate::converge::Settled;

/// Latency distribution of a run (nanoseconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Number of latencies the percentiles rest on.
    pub samples: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// One ring's line in the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RingLine {
    /// Ring index.
    pub ring: u32,
    /// Completions on this ring during the run.
    pub ops: u64,
    /// IOPS over the run.
    pub iops: f64,
    /// In-flight limit at the end.
    pub limit: u32,
    /// Batch threshold at the end.
    pub batch: u32,
    /// Controller phase at the end.
    pub phase: String,
    /// P99 of the last tick, ns.
    pub p99_ns: u64,
    /// Highest in-flight count seen.
    pub in_flight_peak: u32,
    /// SQEs per `io_uring_enter`.
    pub sqes_per_enter: f64,
    /// Failed completions.
    pub errors: u64,
}

/// One point of the run's timeline (from the trace's ticks or the live stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Time since the start of the run.
    #[serde(rename = "t_ms", serialize_with = "ser_ms")]
    pub t: Duration,
    /// Completions per second over the point's interval (all rings).
    pub iops: f64,
    /// In-flight limit (sum over rings).
    pub limit: u32,
    /// P99 latency over the interval, ns (0 when no completion).
    pub p99_ns: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// Everything measured in one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// Controller spec (`aimd`, `fixed:64`, ...).
    pub controller: String,
    /// I/O pattern.
    pub rw: Option<RwMode>,
    /// Block size.
    pub bs: u64,
    /// O_DIRECT or not.
    pub direct: bool,
    /// Submitting threads.
    pub threads: u32,
    /// Rings in the engine.
    pub rings: u32,
    /// Test file.
    pub file: Option<PathBuf>,
    /// Measured wall time of the I/O phase.
    pub elapsed: Duration,
    /// Successful and failed completions.
    pub ops: u64,
    /// Bytes transferred.
    pub bytes: u64,
    /// Failed completions.
    pub errors: u64,
    /// Completion latency inside the engine (submit to the kernel → CQE), like fio's clat.
    pub latency: LatencyStats,
    /// Latency seen by the application (call → callback, backlog wait included).
    pub app_latency: Option<LatencyStats>,
    /// Sum of the rings' final in-flight limits.
    pub final_limit: u32,
    /// Final batch threshold (of ring 0).
    pub final_batch: u32,
    /// Time-averaged ops in flight (sum over rings), from the trace: what
    /// the limit actually kept busy, comparable with fio's iodepth.
    pub in_flight_mean: Option<f64>,
    /// Share of the run the device stood still with ops in flight (gaps
    /// between completions several times the usual), from the trace.
    pub stalled_share: Option<f64>,
    /// Time to converge (see [`crate::converge`]).
    pub converge: Option<Duration>,
    /// When the controllers first settled (a holding phase on every ring;
    /// see [`crate::converge::Settled`]).
    pub settled: Option<Settled>,
    /// Per-ring lines.
    pub ring_lines: Vec<RingLine>,
    /// Limit/IOPS/P99 over time.
    pub timeline: Vec<TimelinePoint>,
    /// The in-flight limit (sum over rings) at every controller tick: what
    /// the time to converge is computed on, and the plot's limit line.
    pub limit_series: Vec<(Duration, f64)>,
}

/// The `--json` document.
#[derive(Clone, Debug, Serialize)]
pub struct JsonSummary {
    /// Completions per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes: f64,
    /// Completions.
    pub ops: u64,
    /// Failed completions.
    pub errors: u64,
    /// Measured runtime, ms.
    pub runtime_ms: u64,
    /// Completion latency (submit → CQE), ns.
    pub lat_ns: LatencyStats,
    /// Application latency (call → callback), ns.
    pub app_lat_ns: Option<LatencyStats>,
    /// Final in-flight limit (sum over rings).
    pub final_in_flight_limit: u32,
    /// Final batch threshold.
    pub final_batch: u32,
    /// Time-averaged ops in flight (sum over rings; null without a trace).
    pub in_flight_mean: Option<f64>,
    /// Share of the run the device stood still with ops in flight (null
    /// without a trace).
    pub stalled_share: Option<f64>,
    /// Time to converge, ms (null when unknown).
    pub converge_ms: Option<u64>,
    /// When the controllers first settled, ms (null: never, or unknown)…
    pub settled_ms: Option<u64>,
    /// …and the in-flight limit (sum over rings) then.
    pub settled_limit: Option<u32>,
    /// Controller spec.
    pub controller: String,
    /// I/O pattern.
    pub rw: Option<RwMode>,
    /// Block size.
    pub bs: u64,
    /// O_DIRECT.
    pub direct: bool,
    /// Submitting threads.
    pub threads: u32,
    /// Rings.
    pub rings: Vec<RingLine>,
    /// Timeline.
    pub timeline: Vec<TimelinePoint>,
}

impl RunResult {
    /// Completions per second over the run.
    pub fn iops(&self) -> f64 {
        per_sec(self.ops, self.elapsed)
    }

    /// Bytes per second over the run.
    pub fn bw_bytes(&self) -> f64 {
        per_sec(self.bytes, self.elapsed)
    }

    /// The `--json` document.
    pub fn json_summary(&self) -> JsonSummary {
        JsonSummary {
            iops: self.iops(),
            bw_bytes: self.bw_bytes(),
            ops: self.ops,
            errors: self.errors,
            runtime_ms: self.elapsed.as_millis() as u64,
            lat_ns: self.latency.clone(),
            app_lat_ns: self.app_latency.clone(),
            final_in_flight_limit: self.final_limit,
            final_batch: self.final_batch,
            in_flight_mean: self.in_flight_mean,
            stalled_share: self.stalled_share,
            converge_ms: self.converge.map(|d| d.as_millis() as u64),
            settled_ms: self.settled.map(|s| s.at.as_millis() as u64),
            settled_limit: self.settled.map(|s| s.limit),
            controller: self.controller.clone(),
            rw: self.rw,
            bs: self.bs,
            direct: self.direct,
            threads: self.threads,
            rings: self.ring_lines.clone(),
            timeline: self.timeline.clone(),
        }
    }

    /// Pretty JSON text of [`Self::json_summary`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.json_summary())
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The fio-style text summary.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let rw = self.rw.map_or("?", RwMode::as_str);
        let _ = writeln!(
            o,
            "auraio: rw={rw}, bs={}, direct={}, threads={}, rings={}, controller={}",
            crate::cli::fmt_bytes(self.bs),
            u8::from(self.direct),
            self.threads,
            self.rings,
            self.controller
        );
        let dir = match self.rw {
            Some(RwMode::RandWrite | RwMode::Write) => "write",
            Some(RwMode::RandRw) => "rw",
            Some(RwMode::Nop) => "nop",
            _ => "read",
        };
        let _ = writeln!(
            o,
            "  {dir}: IOPS={}, BW={:.1}MiB/s ({:.1}MB/s)({}/{:.1}s)",
            fmt_count(self.iops()),
            self.bw_bytes() / (1 << 20) as f64,
            self.bw_bytes() / 1e6,
            crate::cli::fmt_bytes(self.bytes),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "    clat: {}  (submit -> completion, {} samples)",
            fmt_lat_line(&self.latency),
            self.latency.samples
        );
        if let Some(app) = &self.app_latency {
            let _ = writeln!(
                o,
                "     lat: {}  (call -> callback, backlog wait included, {} samples)",
                fmt_lat_line(app),
                app.samples
            );
        }
        let _ = writeln!(o, "    ops={}, errors={}", self.ops, self.errors);
        let conv = match self.converge {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => "n/a".into(),
        };
        let mean = match self.in_flight_mean {
            Some(m) => format!(", mean in flight={m:.1}"),
            None => String::new(),
        };
        let stalled = match self.stalled_share {
            Some(s) if s > 0.0 => format!(", device stalled {:.1} % of the time", s * 100.0),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  controller: final in-flight limit={}, batch={}{mean}{stalled}, time to converge={} (held limit within ±10% of its final value from then on; trial legs < 100 ms not counted)",
            self.final_limit, self.final_batch, conv
        );
        if let Some(s) = self.settled {
            let _ = writeln!(
                o,
                "    first settled at {:.2} s, at limit {} (a later re-probe may move the final limit and with it the time to converge)",
                s.at.as_secs_f64(),
                s.limit
            );
        }
        for r in &self.ring_lines {
            let _ = writeln!(
                o,
                "    ring {}: ops={}, IOPS={}, limit={}, batch={}, phase={}, p99={}, peak in flight={}, sqes/enter={:.1}, errors={}",
                r.ring,
                r.ops,
                fmt_count(r.iops),
                r.limit,
                r.batch,
                if r.phase.is_empty() { "-" } else { &r.phase },
                fmt_ns(r.p99_ns),
                r.in_flight_peak,
                r.sqes_per_enter,
                r.errors
            );
        }
        o
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

fn fmt_lat_line(l: &LatencyStats) -> String {
    format!(
        "min={}, avg={}, p50={}, p99={}, p99.9={}, max={}",
        fmt_ns(l.min),
        fmt_ns(l.mean.round() as u64),
        fmt_ns(l.p50),
        fmt_ns(l.p99),
        fmt_ns(l.p999),
        fmt_ns(l.max)
    )
}

/// `812ns`, `45.2µs`, `1.02ms`, `1.50s`.
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

/// `950`, `12.3k`, `1.25M`.
pub fn fmt_count(v: f64) -> String {
    if v < 1e3 {
        format!("{v:.0}")
    } else if v < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{:.2}M", v / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunResult {
        RunResult {
            controller: "aimd".into(),
            rw: Some(RwMode::RandRead),
            bs: 4096,
            direct: true,
            threads: 1,
            rings: 2,
            file: None,
            elapsed: Duration::from_secs(2),
            ops: 200_000,
            bytes: 200_000 * 4096,
            errors: 3,
            latency: LatencyStats {
                samples: 200_000,
                min: 40_000,
                mean: 480_000.0,
                p50: 410_000,
                p99: 1_020_000,
                p999: 2_100_000,
                max: 8_000_000,
            },
            app_latency: None,
            final_limit: 64,
            final_batch: 8,
            in_flight_mean: Some(52.4),
            stalled_share: Some(0.056),
            converge: Some(Duration::from_millis(1234)),
            settled: Some(Settled {
                at: Duration::from_millis(870),
                limit: 60,
            }),
            ring_lines: vec![RingLine {
                ring: 0,
                ops: 200_000,
                iops: 100_000.0,
                limit: 64,
                batch: 8,
                phase: "converged".into(),
                p99_ns: 1_000_000,
                in_flight_peak: 64,
                sqes_per_enter: 7.5,
                errors: 3,
            }],
            timeline: vec![TimelinePoint {
                t: Duration::from_millis(250),
                iops: 99_000.0,
                limit: 60,
                p99_ns: 900_000,
            }],
            limit_series: vec![(Duration::from_millis(10), 60.0)],
        }
    }

    #[test]
    fn json_has_the_promised_shape() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "iops",
            "bw_bytes",
            "ops",
            "errors",
            "runtime_ms",
            "lat_ns",
            "final_in_flight_limit",
            "converge_ms",
            "controller",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        for key in ["p50", "p99", "p999", "max", "mean"] {
            assert!(v["lat_ns"].get(key).is_some(), "missing lat_ns.{key}");
        }
        assert_eq!(v["iops"].as_f64(), Some(100_000.0));
        assert_eq!(v["bw_bytes"].as_f64(), Some(100_000.0 * 4096.0));
        assert_eq!(v["ops"], 200_000);
        assert_eq!(v["errors"], 3);
        assert_eq!(v["runtime_ms"], 2000);
        assert_eq!(v["lat_ns"]["p99"], 1_020_000);
        assert_eq!(v["final_in_flight_limit"], 64);
        assert_eq!(v["converge_ms"], 1234);
        assert_eq!(v["settled_ms"], 870);
        assert_eq!(v["settled_limit"], 60);
        assert_eq!(v["in_flight_mean"].as_f64(), Some(52.4));
        assert_eq!(v["stalled_share"].as_f64(), Some(0.056));
        assert_eq!(v["controller"], "aimd");
        assert_eq!(v["rw"], "randread");
        assert_eq!(v["timeline"][0]["t_ms"].as_f64(), Some(250.0));
        let mut none = r.clone();
        none.converge = None;
        let v: serde_json::Value = serde_json::from_str(&none.to_json()).unwrap();
        assert!(v["converge_ms"].is_null());
    }

    #[test]
    fn text_summary_reads_like_fio() {
        let t = sample().render();
        assert!(t.contains("read: IOPS=100.0k"), "{t}");
        assert!(t.contains("BW=390.6MiB/s"), "{t}");
        assert!(t.contains("p99=1.02ms"), "{t}");
        assert!(
            t.contains("batch=8, mean in flight=52.4, device stalled 5.6 % of the time,"),
            "{t}"
        );
        assert!(t.contains("p99.9=2.10ms"), "{t}");
        assert!(t.contains("min=40.0µs"), "{t}");
        assert!(t.contains("errors=3"), "{t}");
        assert!(t.contains("final in-flight limit=64, batch=8"), "{t}");
        assert!(t.contains("time to converge=1.23 s"), "{t}");
        assert!(t.contains("ring 0: ops=200000"), "{t}");
        assert!(t.contains("phase=converged"), "{t}");
    }

    #[test]
    fn zero_runtime_does_not_divide_by_zero() {
        let r = RunResult::default();
        assert_eq!(r.iops(), 0.0);
        assert_eq!(r.bw_bytes(), 0.0);
        assert!(r.render().contains("IOPS=0"));
    }

    #[test]
    fn unit_formatting() {
        assert_eq!(fmt_ns(812), "812ns");
        assert_eq!(fmt_ns(45_200), "45.2µs");
        assert_eq!(fmt_ns(1_020_000), "1.02ms");
        assert_eq!(fmt_ns(1_500_000_000), "1.50s");
        assert_eq!(fmt_count(950.0), "950");
        assert_eq!(fmt_count(12_345.0), "12.3k");
        assert_eq!(fmt_count(1_250_000.0), "1.25M");
    }
}
