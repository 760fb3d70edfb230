//! The inner loop: the batch threshold, nudged toward the target
//! SQEs per `io_uring_enter`.

use super::Aimd;
use crate::sample::Sample;

impl Aimd {
    pub(super) fn max_batch(&self) -> u32 {
        ((self.limit as f64 * self.cfg.max_batch_fraction) as u32).max(1)
    }

    /// Inner loop: nudge the batch threshold toward the target SQEs/enter.
    pub(super) fn tune_batch(&mut self, w: &Sample) {
        let max = self.max_batch();
        if w.enter_calls > 0 {
            let spe = w.sqes_per_enter();
            let target = self.cfg.target_sqes_per_enter.max(1) as f64;
            if spe < target * 0.75 && !self.app_limited(w) {
                self.batch = self.batch.saturating_add(1);
            } else if spe > target * 1.25 {
                self.batch = self.batch.saturating_sub(1);
            }
        }
        self.batch = self.batch.clamp(1, max);
    }
}
