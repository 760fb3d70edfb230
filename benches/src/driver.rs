//! The seam between the runner and what does the I/O.
//!
//! The runner only needs a [`Driver`]: start the workload, report live
//! counters a few times a second, stop and report the whole run. The engine
//! plugs in behind it ([`crate::engine_driver`]); tests use a fake.

use crate::summary::{LatencyStats, RingLine, TimelinePoint};

/// Cumulative counters and the controller's current state, read while running.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveStats {
    /// Completions so far (all rings, successes and errors).
    pub ops: u64,
    /// Bytes transferred so far.
    pub bytes: u64,
    /// Failed completions so far.
    pub errors: u64,
    /// Current in-flight limit (sum over rings).
    pub limit: u32,
    /// Current batch threshold.
    pub batch: u32,
    /// P99 of the most recent controller tick, ns (0 when unknown).
    pub p99_ns: u64,
}

/// What a driver reports once it stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverReport {
    /// Completions during the run.
    pub ops: u64,
    /// Bytes during the run.
    pub bytes: u64,
    /// Failed completions during the run.
    pub errors: u64,
    /// Rings used.
    pub rings: u32,
    /// Completion latency (submit → CQE) over the whole run.
    pub latency: LatencyStats,
    /// Application latency (call → callback), when measured.
    pub app_latency: Option<LatencyStats>,
    /// Final limit (sum over rings).
    pub final_limit: u32,
    /// Final batch threshold.
    pub final_batch: u32,
    /// Time-averaged ops in flight (sum over rings), when known.
    pub in_flight_mean: Option<f64>,
    /// Share of the run the device stood still with ops in flight, when
    /// known.
    pub stalled_share: Option<f64>,
    /// When the controllers first settled (from the trace; `None`: never,
    /// or no trace).
    pub settled: Option<crate::converge::Settled>,
    /// Per-ring lines.
    pub ring_lines: Vec<RingLine>,
    /// A fine-grained timeline (e.g. the trace's 10 ms ticks); empty when the
    /// driver has none and the runner's own 250 ms samples should be used.
    pub timeline: Vec<TimelinePoint>,
    /// The in-flight limit (sum over rings) after every controller tick, for
    /// the time to converge; empty: use the timeline's limits.
    pub limit_series: Vec<(std::time::Duration, f64)>,
    /// Time from `start` until the last op finished (before any
    /// post-processing); `None`: the runner measures around `stop`.
    pub elapsed: Option<std::time::Duration>,
    /// Notes to print after the summary (fallbacks, warnings).
    pub notes: Vec<String>,
}

/// Something that runs the workload.
pub trait Driver {
    /// Starts the workload; returns once I/O is flowing.
    fn start(&mut self) -> anyhow::Result<()>;
    /// Live counters (called ~4 times a second).
    fn live(&mut self) -> LiveStats;
    /// Stops the workload, waits for every op to finish and reports.
    fn stop(&mut self) -> anyhow::Result<DriverReport>;
}
