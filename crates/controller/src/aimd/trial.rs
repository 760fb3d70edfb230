//! A paired trial: is the limit `hi` worth more throughput than `lo`?
//!
//! A real device's throughput drifts by more than the gain of one probing
//! step (this machine's virtio disk: ±6 % over half a second, while going
//! from depth 64 to 128 gains 3 %), so windows taken one after the other at
//! different limits compare the drift, not the limits. A trial instead
//! alternates short *legs* at `lo` and `hi` in the order A B B A A B B A …
//! and compares each leg with its neighbour: a drift that is slow against
//! a leg (20 ms) cancels in every pair, and a linear drift cancels over
//! each two pairs. The pairs' own spread measures the noise, so the trial
//! runs exactly as long as the device needs: a few pairs on a clean device,
//! up to `max_pairs` on a noisy one.
//!
//! The statistic is the throughput *elasticity* between the two limits,
//! `Δln throughput / Δln limit`: 1 where throughput scales with depth, 0 on
//! a plateau. `hi` wins when the elasticity is above `epsilon`. Where a
//! device's throughput follows `x_max · d / (d + K)`, the elasticity at
//! depth `d` is exactly the share of `x_max` still missing there, so
//! `epsilon = 0.05` stops within about 5 % of the device's best throughput.

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

/// What a trial concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `hi` gives clearly (or, at the end, on average) more than `epsilon`.
    HiWins,
    /// `lo` gives as much, up to `epsilon`: the extra depth buys nothing.
    LoHolds,
}

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// The mean cleared `epsilon` by `z` standard errors: the pairs show it.
    Clear,
    /// `max_pairs` ran out with the mean within the noise of `epsilon`: the
    /// better guess, no more. On a plateau most trials end this way (this
    /// machine's disk: elasticity ±0.15 after 20 pairs, against a
    /// threshold of 0.05).
    OnAverage,
}

/// The trial's parameters (from `AimdConfig`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TrialRules {
    /// A leg ends once it spans this many ticks…
    pub leg_ticks: u32,
    /// …and holds this many completions (or spans `16 × leg_ticks` ticks).
    pub leg_completions: u64,
    /// Pairs needed before any verdict.
    pub min_pairs: u32,
    /// After this many pairs the mean decides.
    pub max_pairs: u32,
    /// A verdict before `max_pairs` needs the mean this many standard
    /// errors away from `epsilon`.
    pub z: f64,
    /// Elasticity above which `hi` is worth it.
    pub epsilon: f64,
    /// A verdict for `hi` before `max_pairs` needs the mean this many
    /// standard errors above `early_floor` (`epsilon` unless the trial is
    /// made eager: see [`Trial::make_eager`]).
    pub early_floor: f64,
}

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
    rules: TrialRules,
    /// Legs finished so far.
    legs: u32,
    leg: Leg,
    /// The first leg of the pair being built: (at hi?, rate, completions).
    half: Option<(bool, f64, u64)>,
    /// Per-pair log ratios ln(x_hi / x_lo).
    ratios: Vec<f64>,
    /// Sum over pairs of the counting variance 1/c_hi + 1/c_lo.
    counting_var: f64,
    /// Every finished leg: (at hi?, ln rate). Legs `2k` and `2k + 1` make
    /// pair `k`.
    legs_ln: Vec<(bool, f64)>,
    /// The level the previous trial of the probe measured at a limit this
    /// trial shares with it: (at hi?, ln rate). See [`Trial::carry_level`].
    carried: Option<(bool, f64)>,
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
    fn last_legs(&self, side: bool, n: usize) -> impl Iterator<Item = f64> + '_ {
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

    /// `ln(hi / lo)`: the step the elasticity is measured over.
    fn span(&self) -> f64 {
        (f64::from(self.hi) / f64::from(self.lo.max(1)))
            .ln()
            .max(1e-9)
    }

    /// Mean elasticity so far and its standard error.
    pub fn elasticity(&self) -> Option<(f64, f64)> {
        let n = self.ratios.len();
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean = self.ratios.iter().sum::<f64>() / nf;
        let spread = if n > 1 {
            self.ratios
                .iter()
                .map(|r| (r - mean) * (r - mean))
                .sum::<f64>()
                / (nf - 1.0)
        } else {
            0.0
        };
        // Never claim less noise than the counting noise of the pairs.
        let var = spread.max(self.counting_var / nf);
        let se = (var / nf).sqrt();
        Some((mean / self.span(), se / self.span()))
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

    /// The verdict, once the pairs allow one.
    #[cfg(test)]
    pub fn verdict(&self) -> Option<Verdict> {
        self.outcome().map(|(v, _)| v)
    }

    /// The verdict and how it was reached, once the pairs allow one.
    pub fn outcome(&self) -> Option<(Verdict, Evidence)> {
        let n = self.pairs();
        if n < self.rules.min_pairs.max(1) || self.half.is_some() {
            return None;
        }
        let (e, se) = self.elasticity()?;
        let eps = self.rules.epsilon;
        // Few pairs estimate their own spread poorly (Student's t has heavy
        // tails at 2-4 degrees of freedom): demand more of them.
        let z = self.rules.z * (1.0 + 2.0 / (f64::from(n) - 1.0).max(1.0));
        if e - z * se > self.rules.early_floor.min(eps) {
            Some((Verdict::HiWins, Evidence::Clear))
        } else if e + z * se < eps {
            Some((Verdict::LoHolds, Evidence::Clear))
        } else if n >= self.rules.max_pairs {
            // Out of time: the mean without the two extreme pairs decides
            // (a device stall in one leg makes one outlier pair; it must
            // not decide alone).
            let v = if self.trimmed_mean() / self.span() > eps {
                Verdict::HiWins
            } else {
                Verdict::LoHolds
            };
            Some((v, Evidence::OnAverage))
        } else {
            None
        }
    }

    /// Mean of the pairs' log ratios without the lowest and the highest
    /// (the plain mean below five pairs; 0 without pairs).
    fn trimmed_mean(&self) -> f64 {
        let mut r = self.ratios.clone();
        r.sort_by(f64::total_cmp);
        let kept = if r.len() >= 5 {
            &r[1..r.len() - 1]
        } else {
            &r[..]
        };
        if kept.is_empty() {
            0.0
        } else {
            kept.iter().sum::<f64>() / kept.len() as f64
        }
    }

    /// "elasticity 0.12 ± 0.03 over 5 pairs": for reasons.
    pub fn describe(&self) -> String {
        match self.elasticity() {
            Some((e, se)) => format!(
                "elasticity {e:.3} ± {se:.3} over {} pairs (threshold {:.3})",
                self.pairs(),
                self.rules.epsilon
            ),
            None => "no pair yet".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> TrialRules {
        TrialRules {
            leg_ticks: 2,
            leg_completions: 50,
            min_pairs: 3,
            max_pairs: 12,
            z: 1.5,
            epsilon: 0.05,
            early_floor: 0.05,
        }
    }

    /// Runs a trial against `rate(limit, tick)` (completions per 10 ms tick).
    fn run(t: &mut Trial, rate: impl Fn(u32, u32) -> u64) -> (Verdict, u32) {
        for tick in 0..10_000 {
            let l = t.limit();
            t.feed(rate(l, tick), 0.01);
            if let Some(v) = t.verdict() {
                return (v, tick + 1);
            }
        }
        panic!("no verdict: {}", t.describe());
    }

    /// Feeds `pairs` pairs at `lo_rate`/`hi_rate` completions per tick,
    /// times a ±`spread` uniform noise from `rng` per tick.
    fn feed_pairs(
        t: &mut Trial,
        pairs: u32,
        lo_rate: f64,
        hi_rate: f64,
        spread: f64,
        rng: &mut u64,
    ) {
        let target = t.pairs() + pairs;
        while t.pairs() < target {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let u = (*rng >> 11) as f64 / (1u64 << 53) as f64;
            let base = if t.limit() == t.hi { hi_rate } else { lo_rate };
            t.feed((base * (1.0 - spread + 2.0 * spread * u)) as u64, 0.01);
        }
    }

    #[test]
    fn a_device_that_halves_mid_trial_voids_it_and_noise_never_does() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut t = Trial::new(64, 80, false, rules());
        feed_pairs(&mut t, 5, 1000.0, 1010.0, 0.0, &mut rng);
        assert!(!t.shifted());
        feed_pairs(&mut t, 1, 500.0, 505.0, 0.0, &mut rng);
        assert!(!t.shifted(), "one pair is not a shift (a stall)");
        feed_pairs(&mut t, 1, 500.0, 505.0, 0.0, &mut rng);
        assert!(t.shifted(), "{}", t.describe());
        // Up as well as down.
        let mut t = Trial::new(64, 80, false, rules());
        feed_pairs(&mut t, 4, 1000.0, 1000.0, 0.0, &mut rng);
        feed_pairs(&mut t, 2, 1700.0, 1700.0, 0.0, &mut rng);
        assert!(t.shifted());
        // ±20 % per tick (more than this machine's disk) over 40 pairs, 100
        // seeds: never a shift.
        for seed in 1..=100u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut t = Trial::new(64, 128, false, rules());
            for _ in 0..40 {
                feed_pairs(&mut t, 1, 1000.0, 1040.0, 0.2, &mut rng);
                assert!(!t.shifted(), "seed {seed}: {}", t.describe());
            }
        }
    }

    #[test]
    fn a_level_carried_from_the_previous_trial_shows_a_change_between_trials() {
        let mut rng = 7u64;
        let mut before = Trial::new(60, 76, true, rules());
        feed_pairs(&mut before, 3, 1000.0, 1000.0, 0.0, &mut rng);
        let level = before.recent_level(76).expect("legs ran at 76");
        // Two ticks of 1000 completions per leg: (2000 + 0.5) / 0.02 s.
        assert!((level - (2000.5f64 / 0.02).ln()).abs() < 1e-6, "{level}");
        assert_eq!(before.recent_level(50), None);
        // The next trial shares 76; the device is now half as fast.
        let mut t = Trial::new(68, 76, true, rules());
        t.carry_level(76, level);
        feed_pairs(&mut t, 1, 500.0, 500.0, 0.0, &mut rng);
        assert!(!t.shifted(), "one leg at 76 so far");
        feed_pairs(&mut t, 1, 500.0, 500.0, 0.0, &mut rng);
        assert!(t.shifted(), "{}", t.describe());
        // The same device: no shift, however long the trial runs.
        let mut t = Trial::new(68, 76, true, rules());
        t.carry_level(76, level);
        for _ in 0..20 {
            feed_pairs(&mut t, 1, 990.0, 1000.0, 0.2, &mut rng);
            assert!(!t.shifted(), "{}", t.describe());
        }
        // A limit the trial does not run carries nothing.
        let mut t = Trial::new(68, 85, true, rules());
        t.carry_level(76, level);
        feed_pairs(&mut t, 3, 100.0, 100.0, 0.0, &mut rng);
        assert!(!t.shifted());
    }

    #[test]
    fn legs_alternate_abba_from_the_current_limit() {
        let mut t = Trial::new(10, 20, false, rules());
        let mut seen = Vec::new();
        for _ in 0..16 {
            seen.push(t.limit());
            t.feed(100, 0.01);
        }
        assert_eq!(
            seen,
            [10, 10, 20, 20, 20, 20, 10, 10, 10, 10, 20, 20, 20, 20, 10, 10]
        );
        let mut t = Trial::new(10, 20, true, rules());
        assert_eq!(t.limit(), 20);
        t.feed(100, 0.01);
        t.feed(100, 0.01);
        assert_eq!(t.limit(), 10);
    }

    #[test]
    fn a_scaling_device_makes_hi_win_quickly_and_a_flat_one_makes_lo_hold() {
        let mut t = Trial::new(16, 32, false, rules());
        let (v, ticks) = run(&mut t, |l, _| u64::from(l) * 10);
        assert_eq!(v, Verdict::HiWins);
        assert!(ticks <= 12, "3 pairs of 2-tick legs: {ticks}");
        let (e, _) = t.elasticity().unwrap();
        assert!((e - 1.0).abs() < 0.01, "{e}");
        let mut t = Trial::new(64, 128, false, rules());
        assert_eq!(run(&mut t, |_, _| 1000).0, Verdict::LoHolds);
    }

    #[test]
    fn a_strong_drift_does_not_fool_the_pairs() {
        // Throughput doubles over the trial whatever the limit: sequential
        // windows would read a big gain; the pairs read (almost) none.
        let mut t = Trial::new(64, 128, false, rules());
        let (v, _) = run(&mut t, |_, tick| 1000 + 20 * u64::from(tick));
        assert_eq!(v, Verdict::LoHolds, "{}", t.describe());
        let (e, _) = t.elasticity().unwrap();
        assert!(e.abs() < 0.05, "{e}");
    }

    /// Feeds `t` ticks of 1000 completions at `lo` and `1000 × gain` at
    /// `hi`, each times a uniform ±20 % noise drawn from `seed`, until it
    /// has a verdict (at most 1000 ticks).
    fn run_noisy(t: &mut Trial, gain: f64, seed: u64) {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for _ in 0..1000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let u = (rng >> 11) as f64 / (1u64 << 53) as f64;
            let base = if t.limit() == t.hi {
                1000.0 * gain
            } else {
                1000.0
            };
            t.feed((base * (0.8 + 0.4 * u)) as u64, 0.01);
            if t.outcome().is_some() {
                return;
            }
        }
    }

    #[test]
    fn noise_makes_the_trial_longer_and_the_mean_decides_at_the_end() {
        // A gain of 4 % per doubling (elasticity 0.057, just above the
        // threshold) under ±20 % tick noise: over many seeds the trials
        // run longer than the minimum and mostly decide for hi.
        let (mut long, mut hi_wins) = (0, 0);
        for seed in 1..=40u64 {
            let mut t = Trial::new(64, 128, false, rules());
            run_noisy(&mut t, 1.04, seed);
            let v = t.verdict().expect("max_pairs forces a verdict");
            long += u32::from(t.pairs() > 3);
            hi_wins += u32::from(v == Verdict::HiWins);
        }
        assert!(
            long >= 30,
            "only {long}/40 trials went past the minimum pairs"
        );
        assert!(hi_wins >= 20, "hi won only {hi_wins}/40");
    }

    #[test]
    fn a_verdict_says_whether_the_pairs_showed_it_or_the_mean_guessed_it() {
        // 64 -> 128 under ±20 % tick noise: a 40 % gain is clear within
        // a few pairs; a 4 % gain (elasticity 0.057, just above epsilon)
        // cannot be told from the threshold, and the mean decides at
        // max_pairs, saying so.
        let outcome = |gain: f64, seed: u64| {
            let mut t = Trial::new(64, 128, false, rules());
            run_noisy(&mut t, gain, seed);
            let o = t.outcome().expect("max_pairs forces a verdict");
            (o, t.pairs())
        };
        for seed in 1..=10 {
            let ((v, how), pairs) = outcome(1.4, seed);
            assert_eq!((v, how), (Verdict::HiWins, Evidence::Clear), "seed {seed}");
            assert!(pairs < rules().max_pairs, "seed {seed}: {pairs} pairs");
        }
        let guessed = (1..=10)
            .filter(|&seed| {
                let ((_, how), pairs) = outcome(1.04, seed);
                how == Evidence::OnAverage && pairs == rules().max_pairs
            })
            .count();
        assert!(guessed >= 7, "only {guessed}/10 ran out of pairs");
    }

    #[test]
    fn an_eager_trial_takes_a_plain_gain_without_resolving_it_against_epsilon() {
        // 64 -> 128 gains 9 % (elasticity 0.12: above epsilon 0.05, but
        // by less than ±10 % leg noise resolves in a few pairs). Over 40
        // seeds an eager trial decides for hi in far fewer pairs; a flat
        // device rarely gives an eager trial an early win for hi (the test
        // against 0 is as strict as the careful one against epsilon).
        let noise = |seed: u64| {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                0.9 + 0.2 * ((rng >> 11) as f64 / (1u64 << 53) as f64)
            }
        };
        let pairs_to_verdict = |eager: bool, gain: f64, seed: u64| {
            let mut t = Trial::new(64, 128, false, rules());
            if eager {
                t.make_eager();
                assert!(t.is_eager());
            }
            let mut u = noise(seed);
            for _ in 0..1000 {
                let base = if t.limit() == 128 {
                    1000.0 * gain
                } else {
                    1000.0
                };
                t.feed((base * u()) as u64, 0.01);
                if let Some(v) = t.verdict() {
                    return (v, t.pairs());
                }
            }
            panic!("no verdict");
        };
        let (mut eager_pairs, mut careful_pairs, mut eager_wins) = (0, 0, 0);
        let mut flat_early = 0;
        for seed in 1..=40 {
            let (v, n) = pairs_to_verdict(true, 1.09, seed);
            eager_pairs += n;
            eager_wins += u32::from(v == Verdict::HiWins);
            careful_pairs += pairs_to_verdict(false, 1.09, seed).1;
            let (v, n) = pairs_to_verdict(true, 1.0, seed);
            flat_early += u32::from(v == Verdict::HiWins && n < rules().max_pairs);
        }
        assert!(
            flat_early <= 3,
            "{flat_early}/40 early wins on a flat device"
        );
        assert!(eager_wins >= 36, "hi won only {eager_wins}/40");
        assert!(
            eager_pairs * 3 < careful_pairs * 2,
            "eager {eager_pairs} vs careful {careful_pairs} pairs"
        );
    }

    /// Runs one trial 64 vs 128 on a device whose throughput at 128 is
    /// `gain` times that at 64, and that stops for 3-6 ms at random (12 times
    /// a second, whatever the limit; every op waits). With `report` the
    /// ticks carry their stalled time. Returns the verdict, the pairs it
    /// took and the mean elasticity.
    fn stalling_trial(gain: f64, report: bool, seed: u64) -> (Verdict, u32, f64) {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut u = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut t = Trial::new(64, 128, false, rules());
        for _ in 0..10_000 {
            let rate = if t.limit() == 128 {
                100.0 * gain
            } else {
                100.0
            };
            // A stall starts in this 10 ms tick with probability 0.12.
            let stalled = if u() < 0.12 { 0.003 + 0.003 * u() } else { 0.0 };
            let c = (rate * (10.0 - stalled * 1e3) * (0.97 + 0.06 * u())) as u64;
            let s = if report { stalled } else { 0.0 };
            t.feed_stalled(c, 0.01, s);
            if let Some(v) = t.verdict() {
                let e = t.elasticity().map_or(0.0, |(e, _)| e);
                return (v, t.pairs(), e);
            }
        }
        panic!("no verdict: {}", t.describe());
    }

    #[test]
    fn legs_without_the_device_stalls_decide_sooner_and_no_less_rightly() {
        // A flat device (lo holds) and one gaining 10 % per doubling
        // (elasticity 0.14: hi wins), 40 seeds each, with and without the
        // stalled time reported.
        let mut pairs = [0u32; 2];
        let mut right = [0u32; 2];
        let mut flat_e = [0.0f64; 2];
        for (i, report) in [false, true].into_iter().enumerate() {
            for seed in 1..=40 {
                let (v, n, e) = stalling_trial(1.0, report, seed);
                pairs[i] += n;
                right[i] += u32::from(v == Verdict::LoHolds);
                flat_e[i] += e / 40.0;
                let (v, n, _) = stalling_trial(1.1, report, seed);
                pairs[i] += n;
                right[i] += u32::from(v == Verdict::HiWins);
            }
        }
        assert!(
            pairs[1] * 4 < pairs[0] * 3,
            "pairs without stalls reported {} vs reported {}",
            pairs[0],
            pairs[1]
        );
        assert!(right[1] >= right[0], "right verdicts {right:?}");
        assert!(right[1] >= 76, "right verdicts {right:?} of 80");
        // Leaving the stalls out does not bias a flat device's elasticity.
        assert!(flat_e[1].abs() < 0.03, "mean elasticity {flat_e:?}");
    }

    #[test]
    fn a_leg_never_counts_more_than_half_its_time_as_stalled() {
        let mut t = Trial::new(10, 20, false, rules());
        // Leg at 10: 2 ticks of 100 completions, "stalled" for 3x the time.
        t.feed_stalled(100, 0.01, 0.03);
        t.feed_stalled(100, 0.01, 0.03);
        // Leg at 20: the same completions, no stall.
        t.feed_stalled(100, 0.01, 0.0);
        t.feed_stalled(100, 0.01, 0.0);
        let (e, _) = t.elasticity().expect("one pair");
        // lo's rate is at most doubled: ln(1/2) / ln 2 = -1.
        assert!((e + 1.0).abs() < 0.01, "{e}");
    }

    #[test]
    fn low_rate_legs_wait_for_completions() {
        let mut t = Trial::new(1, 2, false, rules());
        // 5 completions per tick: a leg needs 10 ticks for 50.
        for i in 0..9 {
            assert!(!t.feed(5, 0.01), "tick {i}");
        }
        assert!(t.feed(5, 0.01));
        // A nearly empty device still ends a leg after 16 x leg_ticks
        // ticks, but only on a tick with a completion.
        let mut t = Trial::new(1, 2, false, rules());
        for _ in 0..40 {
            assert!(!t.feed(0, 0.01));
        }
        assert!(t.feed(1, 0.01));
    }
}
