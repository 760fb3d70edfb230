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
//!
//! This file holds what a trial concludes and its rules; the trial itself
//! is in [`state`], its statistic in [`verdict`], the level-shift check in
//! [`shift`].

mod shift;
mod state;
mod verdict;

#[cfg(test)]
mod tests;

pub(crate) use state::Trial;

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
