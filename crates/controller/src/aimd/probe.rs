//! PROBING: a sequence of paired trials ([`super::trial`]) that brackets
//! the knee.
//!
//! * **Climb**: trial `(l, l × step)`; while the higher limit wins, move up
//!   and try again: with `climb_factor` while the elasticity was ≥ 0.5,
//!   with down to `√climb_factor` as it falls toward 0.25. The last level that lost against a
//!   higher one is the bracket's *bottom*.
//! * **Descend**: the current level is the bracket's *top* (nothing above
//!   it paid). With a bottom known, try the geometric middle of the
//!   bracket; without one, `top × descend_factor`. A lower level that holds
//!   the throughput becomes the top, one that loses becomes the bottom.
//!   Probing ends at the top once `top / bottom ≤ bracket_ratio` (or at the
//!   minimum). A climb that cannot go higher (the cap after a latency
//!   backoff, or `max_in_flight`) descends from where it is; so does the
//!   probe that follows a backoff.
//!
//! A periodic re-probe (from STEADY/CONVERGED), and one the watch starts on
//! a throughput rise, moves the limit only on clear evidence: a trial that
//! runs out of pairs with its mean within the noise keeps the level the
//! probe trusts (a climb's lower limit, a descent's upper one). A re-probe that moves nothing doubles the wait
//! before the next one (up to [`MAX_REPROBE_BACKOFF`] × `reprobe_ms`).
//!
//! Big steps first, because a trial's cost grows as its step shrinks: it
//! must resolve a throughput difference of `gain_epsilon × ln(hi/lo)`
//! against the device's noise.

use super::trial::{Evidence, Trial, Verdict};
use super::{Aimd, AimdPhase};
use crate::sample::Sample;
use std::time::Duration;

/// A run of periodic re-probes that find nothing stretches the wait between
/// them up to this many times `reprobe_ms` (each costs a trial's throughput
/// or latency; a material change is caught by the watch meanwhile).
pub(super) const MAX_REPROBE_BACKOFF: u32 = 4;

/// Where a re-probe that moves only on clear evidence came from (a
/// periodic one, or one started by a throughput rise): it returns there
/// when it moves nothing.
#[derive(Clone, Copy, Debug)]
pub(super) struct Origin {
    /// The phase it left (STEADY or CONVERGED).
    pub(super) phase: AimdPhase,
    /// The limit it left.
    pub(super) limit: u32,
    /// Time spent in that phase (its clock resumes on the return).
    pub(super) elapsed: Duration,
    /// Started by a throughput rise: on the return the watch takes a new
    /// reference (the old one would call the same rise material again).
    pub(super) rebase_watch: bool,
}

/// Which way a probe is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Trials `(limit, limit × step)`: is more depth worth it?
    Climb,
    /// Trials `(lower, limit)`: is less depth as good?
    Descend,
}

/// A probe in progress: the running trial and the bracket so far.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    trial: Trial,
    dir: Direction,
    /// A clear-evidence re-probe's origin: where it returns when it moves
    /// nothing.
    origin: Option<Origin>,
    /// The limit the probe started from (for the reasons).
    from: u32,
    /// Highest level known to lose throughput against a higher one.
    bottom: Option<u32>,
}

impl Probe {
    /// The running trial's higher limit.
    pub(super) fn hi(&self) -> u32 {
        self.trial.hi
    }

    /// Feeds one tick that had no completions (a stall's time still counts
    /// in the leg it fell into; it never ends a leg).
    pub(super) fn feed_empty(&mut self, secs: f64) {
        self.trial.feed(0, secs);
    }
}

impl Aimd {
    /// The current phase, limit and time in the phase, as a re-probe's
    /// [`Origin`].
    pub(super) fn origin_here(&self, rebase_watch: bool) -> Origin {
        Origin {
            phase: self.phase,
            limit: self.limit,
            elapsed: self.phase_elapsed,
            rebase_watch,
        }
    }

    /// The highest limit a probe may try now.
    fn top(&self) -> u32 {
        let cap = self.cap().unwrap_or(u32::MAX);
        cap.min(self.limits.max_in_flight)
            .max(self.limits.min_in_flight)
    }

    /// `l × f`, at least `additive_increase` more, at most [`Aimd::top`].
    fn grown(&self, l: u32, f: f64) -> u32 {
        let g = (f64::from(l) * f).ceil().min(f64::from(u32::MAX)) as u32;
        g.max(l.saturating_add(self.cfg.additive_increase))
            .min(self.top())
    }

    fn prefix(&self) -> &'static str {
        match self.probe.as_ref().and_then(|p| p.origin) {
            Some(_) => "re-probe: ",
            None => "",
        }
    }

    /// Starts probing from the current limit with a climb trial of `step`.
    /// `eager` (the first probe, from the start limit): while its climbs
    /// keep winning, a higher limit wins as soon as it clearly beats the
    /// lower one at all rather than by `gain_epsilon`. A start limit far
    /// below the knee costs throughput for every trial spent resolving a
    /// gain that is plainly there; the first climb that cannot show a gain
    /// ends the eagerness, and the careful trials bracket the knee.
    pub(super) fn start_probe(
        &mut self,
        step: f64,
        origin: Option<Origin>,
        eager: bool,
        why: String,
    ) {
        self.enter(AimdPhase::Probing, why);
        self.probe_elapsed = Duration::ZERO;
        let from = self.limit;
        self.climb(from, step, origin, from, None, eager);
    }

    /// A fresh, non-eager probe from the current limit, first step
    /// `1 + reprobe_step`, its reason prefixed by `why`.
    pub(super) fn probe_again(&mut self, why: String) {
        self.start_probe(self.cfg.reprobe_step + 1.0, None, false, why.clone());
        self.reason = format!("{why}; {}", self.reason);
    }

    /// A climb trial `(from, from × step)`, or the end of probing when
    /// `from` is already at the top.
    fn climb(
        &mut self,
        from: u32,
        step: f64,
        origin: Option<Origin>,
        start: u32,
        bottom: Option<u32>,
        eager: bool,
    ) {
        let hi = self.grown(from, step);
        if hi <= from {
            let what = if self.cap().is_some_and(|c| c < self.limits.max_in_flight) {
                "the cap set by the last latency backoff"
            } else {
                "the maximum in-flight limit"
            };
            // Nothing above to try: see whether less holds the throughput
            // (after a latency backoff the cap is where latency broke, not
            // where throughput stopped growing).
            let why = format!("probing reached {what} ({from})");
            self.descend(from, origin, start, bottom, why);
            return;
        }
        self.begin_trial(Direction::Climb, from, hi, origin, start, bottom);
        if let Some(p) = self.probe.as_mut().filter(|_| eager) {
            p.trial.make_eager();
        }
        self.reason = format!("{}climb trial {from} vs {hi}", self.prefix());
    }

    /// Starts a trial between `lo` and `hi` at the limit in force (a climb
    /// is at `lo`, a descent at `hi`), so its first leg needs no change.
    fn begin_trial(
        &mut self,
        dir: Direction,
        lo: u32,
        hi: u32,
        origin: Option<Origin>,
        start: u32,
        bottom: Option<u32>,
    ) {
        let start_hi = dir == Direction::Descend;
        let mut trial = Trial::new(lo, hi, start_hi, self.cfg.trial_rules());
        // A limit the previous trial of this probe also ran: what it
        // measured there shows whether the device changed in between.
        if let Some(prev) = self.probe.as_ref().map(|p| &p.trial) {
            for shared in [lo, hi] {
                if let Some(level) = prev.recent_level(shared) {
                    trial.carry_level(shared, level);
                    break;
                }
            }
        }
        self.probe = Some(Probe {
            trial,
            dir,
            origin,
            from: start,
            bottom,
        });
        self.set_limit(if start_hi { hi } else { lo });
    }

    /// The next descend trial below `top` (nothing above `top` paid), or
    /// the end of probing at `top`.
    fn descend(
        &mut self,
        top: u32,
        origin: Option<Origin>,
        start: u32,
        bottom: Option<u32>,
        why: String,
    ) {
        let min = self.limits.min_in_flight;
        let lo = match bottom {
            Some(b) if f64::from(top) <= f64::from(b.max(1)) * self.cfg.bracket_ratio => {
                self.conclude(
                    top,
                    origin,
                    format!("{why}; settled at {top} (bracket {b}..{top}, from {start})"),
                );
                return;
            }
            Some(b) => (f64::from(b.max(1)) * f64::from(top)).sqrt().round() as u32,
            None => (f64::from(top) * self.cfg.descend_factor).floor() as u32,
        };
        let lo = lo
            .min(top.saturating_sub(self.cfg.additive_increase))
            .max(bottom.map_or(min, |b| b.saturating_add(1)))
            .max(min);
        if lo >= top {
            self.conclude(
                top,
                origin,
                format!("{why}; settled at {top} (from {start})"),
            );
            return;
        }
        self.begin_trial(Direction::Descend, lo, top, origin, start, bottom);
        self.reason = format!("{why}; descend trial {lo} vs {top}");
    }

    /// Probing is over at `limit`: back to the origin's phase when a
    /// re-probe moved nothing (and wait twice as long for the next one),
    /// otherwise settle into STEADY.
    fn conclude(&mut self, limit: u32, origin: Option<Origin>, why: String) {
        self.probe = None;
        let base = Duration::from_millis(self.cfg.reprobe_ms).max(self.probe_elapsed * 2);
        let last_wait = std::mem::replace(&mut self.reprobe_every, base);
        self.set_limit(limit);
        if let Some(Origin {
            phase: ph,
            limit: l0,
            elapsed: el,
            rebase_watch,
        }) = origin
        {
            if self.limit == l0 {
                let most = Duration::from_millis(self.cfg.reprobe_ms) * MAX_REPROBE_BACKOFF;
                self.reprobe_every = (last_wait * 2).min(most).max(base);
                let why = format!(
                    "{why}; re-probe found no better limit, {} at {l0}",
                    ph.as_str()
                );
                self.enter_keeping_watch(ph, why);
                self.phase_elapsed = el;
                self.windows_in_phase = self.windows_in_phase.max(self.cfg.change_windows);
                if rebase_watch {
                    // The device is faster at the same limit: that is the
                    // new normal the watch compares with (taken from the
                    // next window).
                    self.reference = None;
                    self.up_count = 0;
                    self.down_count = 0;
                }
                return;
            }
        }
        self.settle(AimdPhase::Steady, why);
    }

    /// One non-empty tick of a running probe (it ran at the trial's
    /// current limit).
    pub(super) fn probe_tick(&mut self, sample: &Sample) {
        let app_limited = self.app_limited(sample);
        let Some(p) = self.probe.as_mut() else {
            return;
        };
        let (dir, origin, start, bottom) = (p.dir, p.origin, p.from, p.bottom);
        // The first probe's climbs stay eager while they win.
        let eager = p.trial.is_eager();
        let (lo, hi) = (p.trial.lo, p.trial.hi);
        if app_limited {
            // The app does not use the limit: no point growing (or going
            // back up); see whether it needs even the lower one.
            let why = format!(
                "app-limited: peak in-flight {} of limit {}, no backlog",
                sample.in_flight_peak, self.limit
            );
            self.descend(lo, origin, start, None, why);
            return;
        }
        if !p.trial.feed_stalled(
            sample.completions,
            sample.interval.as_secs_f64(),
            sample.stalled.as_secs_f64(),
        ) {
            return;
        }
        if p.trial.shifted() {
            // The device changed under the trial: its pairs compare two
            // devices. Start over from the lower level with a fresh probe
            // (climb a little, then descend as far as it holds).
            let why = format!(
                "throughput shifted during trial {lo} vs {hi} (the device changed); probing again from {lo}"
            );
            self.set_limit(lo);
            // Nothing of the void trial is carried into the next one.
            self.probe = None;
            self.probe_again(why);
            return;
        }
        let how = p.trial.describe();
        let e = p.trial.elasticity().map_or(1.0, |(e, _)| e);
        let Some((verdict, evidence)) = p.trial.outcome() else {
            let next = p.trial.limit();
            self.set_limit(next);
            self.reason = format!("{}trial {lo} vs {hi}: {how}", self.prefix());
            return;
        };
        if origin.is_some() && evidence == Evidence::OnAverage {
            // A periodic re-probe asks whether the device changed (one after
            // a rise, whether the change calls for another limit); a trial
            // that cannot tell its two limits apart says it did not. Moving
            // on the mean's guess would only walk the limit along a plateau
            // (up a climb's step, or down a descent's), paying latency or
            // throughput for nothing.
            let keep = match dir {
                Direction::Climb => lo,
                Direction::Descend => hi,
            };
            let why = format!("re-probe: trial {lo} vs {hi} could not tell them apart ({how})");
            self.conclude(keep, origin, format!("{why}; keeping {keep}"));
            return;
        }
        match (dir, verdict) {
            (Direction::Climb, Verdict::HiWins) => {
                let why = format!("{hi} beat {lo} ({how})");
                if hi >= self.top() {
                    self.conclude(hi, origin, format!("{why}; at the top {hi}"));
                } else {
                    // `climb_factor` while throughput still scales well
                    // (elasticity >= 0.5), `flat_climb_factor` once the
                    // gain flattens (<= 0.25), geometric in between.
                    let t = (4.0 * e - 1.0).clamp(0.0, 1.0);
                    let f =
                        self.cfg.flat_climb_factor.powf(1.0 - t) * self.cfg.climb_factor.powf(t);
                    self.climb(hi, f, origin, start, Some(lo), eager);
                    self.reason = format!("{why}; {}", self.reason);
                }
            }
            (Direction::Climb, Verdict::LoHolds) => {
                let why = format!("{hi} bought nothing over {lo} ({how})");
                self.descend(lo, origin, start, bottom, why);
            }
            (Direction::Descend, Verdict::HiWins) => {
                let why = format!("{lo} lost throughput against {hi} ({how})");
                self.descend(hi, origin, start, Some(lo), why);
            }
            (Direction::Descend, Verdict::LoHolds) => {
                let why = format!("{lo} held the throughput of {hi} ({how})");
                self.descend(lo, origin, start, bottom, why);
            }
        }
    }
}
