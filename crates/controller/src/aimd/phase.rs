//! Phase transitions: entering a phase, settling before the next one,
//! and entering one without losing the steady watch's measurements.

use super::{Aimd, AimdPhase};
use std::time::Duration;

impl Aimd {
    pub(super) fn enter(&mut self, phase: AimdPhase, reason: String) {
        if phase != AimdPhase::Probing {
            self.probe = None;
        }
        if !matches!(phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed = Duration::ZERO;
        }
        self.phase = phase;
        self.reason = reason;
        self.phase_elapsed = Duration::ZERO;
        self.windows_in_phase = 0;
        self.pending = None;
        self.pending_ticks = 0;
        if matches!(phase, AimdPhase::Settling) {
            self.reference = None;
            self.down_count = 0;
            self.up_count = 0;
            self.ewma_x = 0.0;
            self.ewma_lat = 0.0;
        }
    }

    pub(super) fn settle(&mut self, next: AimdPhase, reason: String) {
        self.after_settle = next;
        self.enter(AimdPhase::Settling, reason);
    }

    /// [`Aimd::enter`] that keeps the steady watch's measurements.
    pub(super) fn enter_keeping_watch(&mut self, phase: AimdPhase, reason: String) {
        let m = self.watch_memo();
        self.enter(phase, reason);
        self.restore_watch(m);
    }
}
