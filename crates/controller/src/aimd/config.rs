//! [`AimdConfig`]: every constant of [`super::Aimd`], with its defaults.

use super::trial::TrialRules;
use serde::{Deserialize, Serialize};

/// Every constant of [`super::Aimd`]. `Default` gives the documented
/// defaults; missing fields in serialized form take their defaults too.
/// `docs/controllers.md` explains each rule and where its value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AimdConfig {
    /// Tick period the engine should use (ms). The controller itself only
    /// uses the intervals inside the samples.
    pub tick_ms: u64,
    /// BASELINE: judged windows at the initial limit before probing (10 × 10 ms).
    pub baseline_ticks: u32,
    /// A window is judged only once it holds at least this many completions;
    /// fewer and the next tick is accumulated into it (low-IOPS devices).
    pub min_window_completions: u64,
    /// …and at least this many ticks.
    pub min_window_ticks: u32,
    /// A probing step is at least this many ops (small limits still move).
    pub additive_increase: u32,
    /// The first probe's first trial compares the start limit with the
    /// start limit times this. The start limit is a guess; a wide first
    /// step decides in a few pairs (the trial's noise is divided by the
    /// logarithm of the step) and spares the climb from a low guess the
    /// trials a ×2 ladder would take, each at half its time at the lower
    /// level. A device whose knee is below the start limit sees the higher
    /// level only in this trial's legs, and probing then goes down from the
    /// start limit as before.
    pub first_climb_factor: f64,
    /// PROBING climbs by this factor per won trial (from the initial limit,
    /// after a backoff, and after a re-probe found more throughput).
    pub climb_factor: f64,
    /// …and by this factor after a trial won with an elasticity of 0.25 or
    /// less (geometric in between up to 0.5). A smaller step overshoots a
    /// flattening knee less, but a trial over a smaller span resolves a
    /// smaller throughput difference, so it decides less reliably.
    pub flat_climb_factor: f64,
    /// PROBING steps down by this factor per trial while the lower limit
    /// gives as much throughput and no lower level is known to lose.
    pub descend_factor: f64,
    /// PROBING ends once the bracket around the knee (a level that paid
    /// against a lower one, and that lower one) is this narrow.
    pub bracket_ratio: f64,
    /// A higher limit is worth it while throughput's elasticity
    /// (Δln throughput / Δln limit) between the two limits is above this.
    /// On a device whose throughput goes as `d / (d + K)` that is the share
    /// of the best throughput left on the table: 0.05 = within 5 %.
    pub gain_epsilon: f64,
    /// A trial leg (one level of the A B B A … alternation) spans at least
    /// this many ticks…
    pub trial_leg_ticks: u32,
    /// …and holds at least this many completions.
    pub trial_leg_completions: u64,
    /// Pairs of legs a trial needs before any verdict.
    pub trial_min_pairs: u32,
    /// After this many pairs the mean elasticity decides.
    pub trial_max_pairs: u32,
    /// An earlier verdict needs the mean this many standard errors away
    /// from `gain_epsilon`.
    pub trial_z: f64,
    /// BACKOFF: multiply the limit by this on a latency violation.
    pub backoff_factor: f64,
    /// Latency violation: P99 above this many times the baseline P99, scaled
    /// by the limit over the baseline's limit (Little's law: past the knee
    /// latency grows with depth; 10× more than that is congestion)…
    pub latency_guard_mult: f64,
    /// …or above this ceiling (µs). Settable at run time.
    pub p99_ceiling_us: u64,
    /// After a latency backoff no probe goes above the new limit (descend
    /// trials may go below it) for this long (ms) after the last violation;
    /// then the cap expires and re-probes may find the pre-violation level
    /// again.
    pub cap_ms: u64,
    /// SETTLING: hold time after a change (ms).
    pub settle_ms: u64,
    /// STEADY → CONVERGED after this long without a material change (ms).
    pub converge_ms: u64,
    /// The app is not using the limit when the window's peak in-flight is
    /// below `limit × this` and nothing waited in the backlog: no growth then.
    pub app_limited_fraction: f64,
    /// STEADY/CONVERGED: a material throughput fall (fraction of the
    /// reference) that sends the controller back to probing.
    pub change_throughput: f64,
    /// STEADY/CONVERGED: a throughput rise (fraction of the reference) that
    /// sends the controller back to probing (the device or a neighbour
    /// freed capacity). Both thresholds are raised automatically when the
    /// windows hold too few completions for them to be above the noise.
    pub change_rise: f64,
    /// STEADY/CONVERGED: a material rise of the body's latency (the guard
    /// window's P90 > reference × (1 + this)). The tail is the latency
    /// guard's; `change_p99` is accepted as the old name.
    #[serde(alias = "change_p99")]
    pub change_latency: f64,
    /// Windows a material change must persist for (also the number of windows
    /// that make the reference).
    pub change_windows: u32,
    /// EWMA weight of a new window in STEADY/CONVERGED.
    pub smoothing: f64,
    /// Inner loop: aim at this many SQEs per `io_uring_enter`.
    pub target_sqes_per_enter: u32,
    /// Inner loop: the batch threshold stays ≤ `limit × this` (≥ 1).
    pub max_batch_fraction: f64,
    /// Latency guard: the P99 is judged over the last this-many non-empty
    /// ticks since the last backoff (extended back until they hold
    /// `min_window_completions`), so one short device stall in a tick does
    /// not look like congestion while a sustained rise shows at once.
    pub guard_ticks: u32,
    /// STEADY/CONVERGED: re-probe after this long without a change (ms;
    /// 0 = never; at least twice as long as the last probe took): a
    /// trial up by `reprobe_step`, and if that buys nothing descend trials
    /// (`descend_factor`, then bisecting) as after any climb. A re-probe that moves nothing
    /// returns to the phase it left.
    pub reprobe_ms: u64,
    /// A re-probe's first trial compares the limit with `limit × (1 + this)`.
    pub reprobe_step: f64,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            tick_ms: 10,
            baseline_ticks: 10,
            min_window_completions: 20,
            min_window_ticks: 1,
            additive_increase: 1,
            first_climb_factor: 4.0,
            climb_factor: 2.0,
            flat_climb_factor: std::f64::consts::SQRT_2,
            descend_factor: 0.8,
            bracket_ratio: 1.25,
            gain_epsilon: 0.05,
            trial_leg_ticks: 2,
            trial_leg_completions: 50,
            trial_min_pairs: 3,
            trial_max_pairs: 20,
            trial_z: 1.5,
            backoff_factor: 0.8,
            latency_guard_mult: 10.0,
            p99_ceiling_us: 10_000,
            cap_ms: 2_000,
            settle_ms: 100,
            converge_ms: 5_000,
            app_limited_fraction: 0.75,
            change_throughput: 0.25,
            change_rise: 0.15,
            change_latency: 1.0,
            change_windows: 3,
            smoothing: 0.3,
            target_sqes_per_enter: 8,
            max_batch_fraction: 0.25,
            guard_ticks: 10,
            reprobe_ms: 2_000,
            reprobe_step: 0.25,
        }
    }
}

/// A real-valued field and its open range.
type Range = (
    &'static str,
    fn(&AimdConfig) -> f64,
    fn(&mut AimdConfig) -> &mut f64,
    f64,
    f64,
);

/// Every real-valued field with the open interval it must lie in.
const RANGES: &[Range] = &[
    (
        "first_climb_factor",
        |c| c.first_climb_factor,
        |c| &mut c.first_climb_factor,
        1.0,
        100.0,
    ),
    (
        "climb_factor",
        |c| c.climb_factor,
        |c| &mut c.climb_factor,
        1.0,
        100.0,
    ),
    (
        "flat_climb_factor",
        |c| c.flat_climb_factor,
        |c| &mut c.flat_climb_factor,
        1.0,
        100.0,
    ),
    (
        "descend_factor",
        |c| c.descend_factor,
        |c| &mut c.descend_factor,
        0.0,
        1.0,
    ),
    (
        "bracket_ratio",
        |c| c.bracket_ratio,
        |c| &mut c.bracket_ratio,
        1.0,
        100.0,
    ),
    (
        "gain_epsilon",
        |c| c.gain_epsilon,
        |c| &mut c.gain_epsilon,
        0.0,
        1.0,
    ),
    ("trial_z", |c| c.trial_z, |c| &mut c.trial_z, 0.0, 100.0),
    (
        "backoff_factor",
        |c| c.backoff_factor,
        |c| &mut c.backoff_factor,
        0.0,
        1.0,
    ),
    (
        "latency_guard_mult",
        |c| c.latency_guard_mult,
        |c| &mut c.latency_guard_mult,
        1.0,
        f64::MAX,
    ),
    (
        "app_limited_fraction",
        |c| c.app_limited_fraction,
        |c| &mut c.app_limited_fraction,
        0.0,
        1.0 + 1e-9,
    ),
    (
        "change_throughput",
        |c| c.change_throughput,
        |c| &mut c.change_throughput,
        0.0,
        1.0,
    ),
    (
        "change_rise",
        |c| c.change_rise,
        |c| &mut c.change_rise,
        0.0,
        f64::MAX,
    ),
    (
        "change_latency",
        |c| c.change_latency,
        |c| &mut c.change_latency,
        0.0,
        f64::MAX,
    ),
    (
        "smoothing",
        |c| c.smoothing,
        |c| &mut c.smoothing,
        0.0,
        1.0 + 1e-9,
    ),
    (
        "max_batch_fraction",
        |c| c.max_batch_fraction,
        |c| &mut c.max_batch_fraction,
        0.0,
        1.0 + 1e-9,
    ),
    (
        "reprobe_step",
        |c| c.reprobe_step,
        |c| &mut c.reprobe_step,
        0.0,
        100.0,
    ),
];

/// A count field that must be at least 1.
type Count = (&'static str, fn(&mut AimdConfig) -> &mut u32);

const COUNTS: &[Count] = &[
    ("additive_increase", |c| &mut c.additive_increase),
    ("trial_leg_ticks", |c| &mut c.trial_leg_ticks),
    ("trial_min_pairs", |c| &mut c.trial_min_pairs),
    ("trial_max_pairs", |c| &mut c.trial_max_pairs),
    ("guard_ticks", |c| &mut c.guard_ticks),
];

impl AimdConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.tick_ms == 0 {
            return Err("aimd: tick_ms must be > 0".into());
        }
        let mut c = self.clone();
        for (name, field) in COUNTS {
            if *field(&mut c) == 0 {
                return Err(format!("aimd: {name} must be >= 1"));
            }
        }
        if self.trial_max_pairs < self.trial_min_pairs {
            return Err(format!(
                "aimd: trial_max_pairs = {} must be >= trial_min_pairs = {}",
                self.trial_max_pairs, self.trial_min_pairs
            ));
        }
        for (name, get, _, lo, hi) in RANGES {
            let v = get(self);
            if !(v.is_finite() && v > *lo && v < *hi) {
                return Err(format!("aimd: {name} = {v} must be in ({lo}, {hi})"));
            }
        }
        Ok(())
    }

    /// A copy with unusable values replaced by the defaults (so
    /// [`super::Aimd::new`] never panics on bad input; `validate` reports them).
    pub(crate) fn sanitized(&self) -> AimdConfig {
        let d = AimdConfig::default();
        let mut d_mut = d.clone();
        let mut c = self.clone();
        if c.tick_ms == 0 {
            c.tick_ms = d.tick_ms;
        }
        for (_, field) in COUNTS {
            if *field(&mut c) == 0 {
                *field(&mut c) = *field(&mut d_mut);
            }
        }
        for (_, get, set, lo, hi) in RANGES {
            let v = get(&c);
            if !(v.is_finite() && v > *lo && v < *hi) {
                *set(&mut c) = get(&d);
            }
        }
        c.trial_max_pairs = c.trial_max_pairs.max(c.trial_min_pairs);
        c
    }

    /// The paired-trial rules these settings give.
    pub(crate) fn trial_rules(&self) -> TrialRules {
        TrialRules {
            leg_ticks: self.trial_leg_ticks.max(1),
            leg_completions: self.trial_leg_completions,
            min_pairs: self.trial_min_pairs.max(1),
            max_pairs: self.trial_max_pairs.max(self.trial_min_pairs.max(1)),
            z: self.trial_z,
            epsilon: self.gain_epsilon,
            early_floor: self.gain_epsilon,
        }
    }
}
