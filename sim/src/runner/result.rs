//! The runner's output: one [`TickPoint`] per tick, the evaluation windows'
//! [`WindowStats`], and the totals of a [`RunResult`].

use auraio_controller::HistogramSnapshot;
use serde::Serialize;

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

/// Completions a plotted P99 rests on at least (see [`TickPoint::p99_plot_us`]).
pub const PLOT_MIN_COMPLETIONS: u64 = 100;
