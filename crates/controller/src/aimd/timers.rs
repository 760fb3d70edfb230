//! Phase timers: settling, convergence, the cap's expiry and the
//! periodic re-probe.

use super::{Aimd, AimdPhase};
use crate::sample::Sample;
use std::time::Duration;

impl Aimd {
    /// Phase timers (any tick, empty or not: they never change the limit).
    pub(super) fn advance_time(&mut self, interval: Duration) {
        self.phase_elapsed += interval;
        if self.phase == AimdPhase::Probing {
            self.probe_elapsed += interval;
        }
        if let Some((c, left)) = self.cap {
            // The cap's clock runs once probing has settled below it.
            if !matches!(self.phase, AimdPhase::Backoff) {
                self.cap = left.checked_sub(interval).map(|l| (c, l));
            }
        }
        match self.phase {
            AimdPhase::Settling
                if self.phase_elapsed >= Duration::from_millis(self.cfg.settle_ms) =>
            {
                let next = self.after_settle;
                match next {
                    AimdPhase::Probing => {
                        let why = format!("settled at {}", self.limit);
                        self.probe_again(why);
                    }
                    AimdPhase::Baseline => {
                        self.enter(next, format!("settled; warming up again at {}", self.limit));
                        self.baseline_windows = 0;
                        self.baseline_acc = Sample::default();
                    }
                    _ => {
                        // Keep what settling measured as the steady reference.
                        self.enter_keeping_watch(next, format!("settled at {}", self.limit));
                        self.windows_in_phase = self.cfg.change_windows;
                    }
                }
                return;
            }
            AimdPhase::Steady
                if self.phase_elapsed >= Duration::from_millis(self.cfg.converge_ms) =>
            {
                self.enter_keeping_watch(
                    AimdPhase::Converged,
                    format!("stable at {} for {} ms", self.limit, self.cfg.converge_ms),
                );
            }
            _ => {}
        }
        if matches!(self.phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed += interval;
            if self.cfg.reprobe_ms > 0 && self.hold_elapsed >= self.reprobe_every {
                let origin = self.origin_here(false);
                let why = format!(
                    "periodic re-probe from {} at {} after {} ms",
                    self.phase.as_str(),
                    self.limit,
                    self.reprobe_every.as_millis()
                );
                // Kept for the return to the origin's phase.
                let m = self.watch_memo();
                self.start_probe(
                    self.cfg.reprobe_step + 1.0,
                    Some(origin),
                    false,
                    why.clone(),
                );
                self.restore_watch(m);
                if self.phase == AimdPhase::Probing {
                    self.reason = format!("{why}: {}", self.reason);
                }
            }
        }
    }
}
