//! What a run keeps of each tick: the [`TickPoint`] series, the evaluation
//! windows' totals and the plotted P99 (over at least
//! [`PLOT_MIN_COMPLETIONS`] completions).

use auraio_controller::{ControllerState, HistogramSnapshot, Sample};

use super::result::{TickPoint, WindowStats, PLOT_MIN_COMPLETIONS};

/// Collects the run's output tick by tick.
pub(super) struct TickRecorder {
    pub(super) ticks: Vec<TickPoint>,
    pub(super) windows: Vec<WindowStats>,
    /// Completions not yet in a plotted P99…
    plot_acc: HistogramSnapshot,
    /// …and the last plotted P99 (µs).
    plot_p99: f64,
    /// The controller's last reason, so each is recorded once.
    last_reason: String,
}

impl TickRecorder {
    /// A recorder for `expected_ticks` ticks and the `(from_s, to_s)`
    /// evaluation windows.
    pub(super) fn new(expected_ticks: usize, windows: &[(f64, f64)]) -> Self {
        TickRecorder {
            ticks: Vec::with_capacity(expected_ticks.min(1 << 20)),
            windows: windows
                .iter()
                .map(|&(a, b)| WindowStats {
                    from_s: a,
                    to_s: b,
                    ..WindowStats::default()
                })
                .collect(),
            plot_acc: HistogramSnapshot::default(),
            plot_p99: 0.0,
            last_reason: String::new(),
        }
    }

    /// Records one tick: its sample, the decision now in force (`limit`,
    /// `batch`) and the controller's state after it.
    pub(super) fn record(
        &mut self,
        now_ns: u64,
        sample: &Sample,
        limit: u32,
        batch: u32,
        state: ControllerState,
    ) {
        let t_s = now_ns as f64 * 1e-9;
        let interval = sample.interval.as_secs_f64();
        let iops = if interval > 0.0 {
            sample.completions as f64 / interval
        } else {
            0.0
        };
        for w in self.windows.iter_mut() {
            if t_s > w.from_s + 1e-9 && t_s <= w.to_s + 1e-9 {
                w.completions += sample.completions;
                w.latency.merge(&sample.latency);
                w.ticks += 1;
                w.seconds += interval;
            }
        }
        self.plot_acc.merge(&sample.latency);
        if self.plot_acc.count() >= PLOT_MIN_COMPLETIONS {
            self.plot_p99 = self.plot_acc.p99_ns() as f64 / 1e3;
            self.plot_acc = HistogramSnapshot::default();
        }
        self.ticks.push(TickPoint {
            t_s,
            limit,
            batch,
            iops,
            p50_us: sample.latency.p50_ns() as f64 / 1e3,
            p99_us: sample.latency.p99_ns() as f64 / 1e3,
            p99_plot_us: self.plot_p99,
            in_flight_avg: sample.in_flight_avg,
            in_flight_peak: sample.in_flight_peak,
            backlog: sample.backlog,
            stalled_ms: sample.stalled.as_secs_f64() * 1e3,
            phase: state.phase,
            reason: if state.reason != self.last_reason {
                self.last_reason.clone_from(&state.reason);
                state.reason
            } else {
                String::new()
            },
        });
    }
}
