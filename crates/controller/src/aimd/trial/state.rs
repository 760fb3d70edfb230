//! [`Trial`] itself: its state, the A B B A … order of its legs, and
//! the feeding of ticks into legs and of legs into pairs.

use super::TrialRules;

/// One leg being measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Leg {
    ticks: u32,
    completions: u64,
    secs: f64,
    /// Time the device stood still (see `crate::StallDetector`).
    stalled: f64,
}

/// A leg's rate leaves out at most this share of its time as stalled (a
/// stall that began in the leg before is not wholly this leg's).
const MAX_STALLED_SHARE: f64 = 0.5;

/// A running paired trial between two limits.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Trial {
    /// The lower limit.
    pub lo: u32,
    /// The higher limit.
    pub hi: u32,
    /// Does the trial start (leg 0) at `hi`?
    start_hi: bool,
    pub(super) rules: TrialRules,
    /// Legs finished so far.
    legs: u32,
    leg: Leg,
    /// The first leg of the pair being built: (at hi?, rate, completions).
    pub(super) half: Option<(bool, f64, u64)>,
    /// Per-pair log ratios ln(x_hi / x_lo).
    pub(super) ratios: Vec<f64>,
    /// Sum over pairs of the counting variance 1/c_hi + 1/c_lo.
    pub(super) counting_var: f64,
    /// Every finished leg: (at hi?, ln rate). Legs `2k` and `2k + 1` make
    /// pair `k`.
    pub(super) legs_ln: Vec<(bool, f64)>,
    /// The level the previous trial of the probe measured at a limit this
    /// trial shares with it: (at hi?, ln rate). See [`Trial::carry_level`].
    pub(super) carried: Option<(bool, f64)>,
}

impl Trial {
    /// A trial between `lo < hi`, starting with a leg at the current limit.
    pub fn new(lo: u32, hi: u32, start_hi: bool, rules: TrialRules) -> Self {
        Trial {
            lo,
            hi,
            start_hi,
            rules,
            legs: 0,
            leg: Leg::default(),
            half: None,
            ratios: Vec::new(),
            counting_var: 0.0,
            legs_ln: Vec::new(),
            carried: None,
        }
    }

    /// The mean log rate of the last (up to four) legs at `limit`, if this
    /// trial ran legs there.
    pub fn recent_level(&self, limit: u32) -> Option<f64> {
        let recent: Vec<f64> = self.last_legs(self.side_of(limit)?, 4).collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }

    /// The log rates of the last (up to) `n` legs at `hi` (`side`) or `lo`,
    /// newest first.
    pub(super) fn last_legs(&self, side: bool, n: usize) -> impl Iterator<Item = f64> + '_ {
        self.legs_ln
            .iter()
            .rev()
            .filter(move |(hi, _)| *hi == side)
            .take(n)
            .map(|&(_, l)| l)
    }

    /// Remembers that the probe's previous trial measured `ln_rate` at
    /// `limit` (one of this trial's two limits): once this trial's legs at
    /// `limit` sit far from it, the device changed between the trials (see
    /// [`Trial::shifted`]).
    pub fn carry_level(&mut self, limit: u32, ln_rate: f64) {
        self.carried = self.side_of(limit).map(|side| (side, ln_rate));
    }

    /// `Some(true)` for `hi`, `Some(false)` for `lo`.
    fn side_of(&self, limit: u32) -> Option<bool> {
        if limit == self.hi {
            Some(true)
        } else if limit == self.lo {
            Some(false)
        } else {
            None
        }
    }

    /// An eager trial lets `hi` win as soon as it is clearly better at all
    /// (elasticity above 0, not above `epsilon`); at `max_pairs` the mean
    /// still decides against `epsilon`.
    pub fn make_eager(&mut self) {
        self.rules.early_floor = 0.0;
    }

    /// Was [`Trial::make_eager`] called?
    pub fn is_eager(&self) -> bool {
        self.rules.early_floor < self.rules.epsilon
    }

    /// Is leg `k` at `hi`? Legs go A B B A A B B A …
    fn leg_at_hi(&self, k: u32) -> bool {
        let a = matches!(k % 4, 0 | 3);
        a == self.start_hi
    }

    /// The limit the current leg runs at.
    pub fn limit(&self) -> u32 {
        if self.leg_at_hi(self.legs) {
            self.hi
        } else {
            self.lo
        }
    }

    /// Pairs completed.
    pub fn pairs(&self) -> u32 {
        self.ratios.len() as u32
    }

    /// Feeds one tick that ran at [`Trial::limit`]: `completions` in
    /// `secs`. Returns `true` when the leg ended (the limit to apply may
    /// have changed). A tick without completions (a stall) adds its time
    /// but never ends a leg.
    pub fn feed(&mut self, completions: u64, secs: f64) -> bool {
        self.feed_stalled(completions, secs, 0.0)
    }

    /// [`Trial::feed`] for a tick in which the device stood still for
    /// `stalled` of its `secs`: a leg's rate is its completions over its
    /// time without the stalls. The stalls are the device's, the same
    /// share at either limit, and were most of the legs' noise.
    pub fn feed_stalled(&mut self, completions: u64, secs: f64, stalled: f64) -> bool {
        self.leg.ticks += 1;
        self.leg.completions += completions;
        self.leg.secs += secs.max(0.0);
        self.leg.stalled += stalled.max(0.0);
        let at_hi = self.leg_at_hi(self.legs);
        let r = &self.rules;
        let long_enough = completions > 0
            && self.leg.ticks >= r.leg_ticks.max(1)
            && (self.leg.completions >= r.leg_completions
                || self.leg.ticks >= r.leg_ticks.max(1).saturating_mul(16));
        if !long_enough {
            return false;
        }
        let leg = std::mem::take(&mut self.leg);
        let working = (leg.secs - leg.stalled).max(leg.secs * (1.0 - MAX_STALLED_SHARE));
        let rate = (leg.completions as f64 + 0.5) / working.max(1e-9);
        self.legs_ln.push((at_hi, rate.ln()));
        match self.half.take() {
            None => self.half = Some((at_hi, rate, leg.completions)),
            Some((first_hi, first_rate, first_c)) => {
                let (x_hi, x_lo) = if first_hi {
                    (first_rate, rate)
                } else {
                    (rate, first_rate)
                };
                debug_assert_ne!(first_hi, at_hi);
                self.ratios.push((x_hi / x_lo).ln());
                self.counting_var +=
                    1.0 / (first_c as f64 + 0.5) + 1.0 / (leg.completions as f64 + 0.5);
            }
        }
        self.legs += 1;
        true
    }
}
