//! Level-shift detection: did the device itself change during the trial,
//! or since the probe's previous trial?

use super::Trial;

/// A pair's level (the mean log rate of its two legs) this far (ln 1.5)
/// from the median level of the pairs before it is a level shift: the
/// device itself changed during the trial. The pairs' ratios are then a
/// comparison across two devices; the trial is void. (Ten times the
/// spread of a pair's level on this machine's noisy virtio disk.)
const LEVEL_SHIFT_LN: f64 = 0.405;

/// Consecutive shifted pairs, on the same side, that void a trial (one
/// pair hit by a device stall is not a new device).
const LEVEL_SHIFT_PAIRS: usize = 2;

/// Do all of `levels` sit more than [`LEVEL_SHIFT_LN`] from `reference`,
/// on the same side?
fn all_far_on_one_side(levels: &[f64], reference: f64) -> bool {
    levels.iter().all(|l| l - reference > LEVEL_SHIFT_LN)
        || levels.iter().all(|l| reference - l > LEVEL_SHIFT_LN)
}

impl Trial {
    /// Did the device's level shift during the trial, or since the
    /// probe's previous trial? Either the last [`LEVEL_SHIFT_PAIRS`] pairs
    /// all sit more than [`LEVEL_SHIFT_LN`] from the median level of the
    /// (at least two) pairs before them, on the same side; or the last
    /// [`LEVEL_SHIFT_PAIRS`] legs at the limit shared with the previous
    /// trial sit that far from what that trial measured there. The trial
    /// (and the probe's bracket) is then void: it compares a different
    /// device than the one before (a capacity change or a neighbour
    /// arriving made one limit look better than it is).
    pub fn shifted(&self) -> bool {
        self.shifted_within() || self.shifted_since_carried()
    }

    fn shifted_since_carried(&self) -> bool {
        let Some((side, carried)) = self.carried else {
            return false;
        };
        let recent: Vec<f64> = self.last_legs(side, LEVEL_SHIFT_PAIRS).collect();
        recent.len() == LEVEL_SHIFT_PAIRS && all_far_on_one_side(&recent, carried)
    }

    fn shifted_within(&self) -> bool {
        // A pair's level: the mean log rate of its two legs.
        let levels: Vec<f64> = self
            .legs_ln
            .chunks_exact(2)
            .map(|p| (p[0].1 + p[1].1) / 2.0)
            .collect();
        let n = levels.len();
        if n < LEVEL_SHIFT_PAIRS + 2 {
            return false;
        }
        let (before, recent) = levels.split_at(n - LEVEL_SHIFT_PAIRS);
        let mut sorted = before.to_vec();
        sorted.sort_by(f64::total_cmp);
        let m = sorted.len();
        let median = if m % 2 == 1 {
            sorted[m / 2]
        } else {
            (sorted[m / 2 - 1] + sorted[m / 2]) / 2.0
        };
        all_far_on_one_side(recent, median)
    }
}
