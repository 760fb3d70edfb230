//! BASELINE: warm-up windows at the initial limit that measure the
//! baseline P99, then the first climb (or a hold when app-limited).

use super::{Aimd, AimdPhase};
use crate::sample::Sample;

impl Aimd {
    /// BASELINE on a judged window.
    pub(super) fn baseline(&mut self, w: &Sample) {
        self.baseline_acc.accumulate(w);
        self.baseline_windows += 1;
        if self.baseline_windows < self.cfg.baseline_ticks {
            self.reason = format!(
                "warming up at {} ({}/{} windows)",
                self.limit, self.baseline_windows, self.cfg.baseline_ticks
            );
            return;
        }
        let acc = std::mem::take(&mut self.baseline_acc);
        let p99 = acc.latency.p99_ns();
        self.baseline_p99 = Some(self.baseline_p99.map_or(p99, |b| b.min(p99)));
        self.baseline_limit = self.limit;
        if self.app_limited(&acc) {
            self.settle(
                AimdPhase::Steady,
                format!(
                    "baseline P99 {} µs at {}; app-limited (peak in-flight {}, no backlog): holding",
                    p99 / 1000,
                    self.limit,
                    acc.in_flight_peak
                ),
            );
            return;
        }
        self.start_probe(
            self.cfg.first_climb_factor,
            None,
            true,
            format!("baseline P99 {} µs at {}", p99 / 1000, self.limit),
        );
        self.reason = format!(
            "baseline P99 {} µs at {}; {}",
            p99 / 1000,
            self.baseline_limit,
            self.reason
        );
    }
}
