//! The latency guard: its window (the histograms of the last few non-empty
//! ticks since the last backoff) and its rule on every non-empty tick
//! (cut the limit, hold it under a cap, or pass).

use super::{Aimd, AimdPhase};
use crate::histogram::{percentile_of, HistogramSnapshot, NUM_BUCKETS};
use crate::sample::Sample;
use std::collections::VecDeque;
use std::time::Duration;

/// Most ticks the latency guard's window may span (when ticks are sparse).
pub(crate) const MAX_GUARD_TICKS: usize = 256;

/// The latency guard's window: the histograms of the last `keep` non-empty
/// ticks, extended back until they hold `min` completions (at most
/// [`MAX_GUARD_TICKS`]). Cleared by every backoff (and when the caller
/// lowers the limits).
#[derive(Clone, Debug, Default)]
pub(crate) struct Guard {
    /// Set by a backoff: judge again only once the window
    /// holds `guard_ticks` ticks at the new limit (one cut per window of
    /// evidence, so a device stall does not cut the limit tick after tick).
    pub after_cut: bool,
    /// The window's ticks, oldest first.
    pub ticks: VecDeque<GuardTick>,
    /// Running bucket sums of `ticks` (empty or `NUM_BUCKETS` long).
    counts: Vec<u64>,
    completions: u64,
}

/// One tick in the guard's window.
#[derive(Clone, Debug)]
pub(crate) struct GuardTick {
    hist: HistogramSnapshot,
    /// The device's stalled time the ring measured in it (see
    /// `crate::StallDetector`; zero: none).
    stalled: Duration,
}

impl Guard {
    /// Adds a tick's latencies and its measured stalled time.
    pub fn push(&mut self, h: &HistogramSnapshot, stalled: Duration, keep: usize, min: u64) {
        if h.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; NUM_BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(h.counts()) {
            *a += *b;
        }
        self.ticks.push_back(GuardTick {
            hist: h.clone(),
            stalled,
        });
        self.completions += h.count();
        while self.ticks.len() > keep.max(1) {
            let front = self.ticks.front().map_or(0, |f| f.hist.count());
            if self.completions - front < min && self.ticks.len() <= MAX_GUARD_TICKS {
                break;
            }
            if let Some(f) = self.ticks.pop_front() {
                for (a, b) in self.counts.iter_mut().zip(f.hist.counts()) {
                    *a -= *b;
                }
                self.completions -= f.hist.count();
            }
        }
    }

    /// The P99 of every tick in the window (the same value as merging them).
    pub fn p99(&self, min: u64) -> Option<u64> {
        self.percentile(min, 0.99)
    }

    pub fn percentile(&self, min: u64, q: f64) -> Option<u64> {
        if self.completions < min.max(1) {
            return None;
        }
        // The window holds completions, so it holds ticks.
        let (lo, hi) = self.ticks.iter().fold((u64::MAX, 0), |(lo, hi), t| {
            (lo.min(t.hist.min_ns()), hi.max(t.hist.max_ns()))
        });
        Some(percentile_of(&self.counts, self.completions, lo, hi, q))
    }

    /// Did the device stall inside the window? The ring measured a stall
    /// in one of its ticks (a gap between completions several times the
    /// usual), or a tick collapsed (see [`Guard::has_collapsed_tick`]).
    pub fn has_stall(&self) -> bool {
        self.ticks.iter().any(|t| !t.stalled.is_zero()) || self.has_collapsed_tick()
    }

    /// The longest stalled time the ring measured in one tick of the
    /// window (zero: none). A stall is one gap between completions, counted
    /// in the tick where it ends, so one tick holds all of it.
    pub fn longest_stall(&self) -> Duration {
        self.ticks
            .iter()
            .map(|t| t.stalled)
            .max()
            .unwrap_or_default()
    }

    /// Did some tick complete less than a third of the window's median
    /// tick? A stall long against a tick holds every op in flight, so
    /// completions collapse for a tick or two and then arrive late all at
    /// once; queueing keeps them flowing. (A stall of a few ms in a 10 ms
    /// tick does not collapse it: the ring's gap measurement sees those.)
    pub fn has_collapsed_tick(&self) -> bool {
        if self.ticks.len() < 3 {
            return false;
        }
        let mut counts: Vec<u64> = self.ticks.iter().map(|t| t.hist.count()).collect();
        counts.sort_unstable();
        counts[0] * 3 < counts[counts.len() / 2]
    }

    pub fn clear(&mut self) {
        self.ticks.clear();
        self.counts.clear();
        self.completions = 0;
    }
}

/// A further cut needs the guard P99 below this share of the P99 that
/// caused the last one (a ×0.8 cut of depth-driven latency lowers it ~20 %).
pub(crate) const CUT_RESPONSE: f64 = 0.9;

/// A guard window that holds a device stall (see `Guard::has_stall`) and
/// whose P99 is more than this many times its P50 is the stall's tail, not
/// queueing at this ring's depth: queueing delays the whole distribution,
/// so its P99/P50 stays small (this machine's virtio disk: 4-5.5 at depth
/// 64-128 under fio; 10-19 in the windows of its stalls). Cutting the limit
/// cannot shorten such a tail; the guard holds the limit (no climbing
/// above it for `cap_ms`) instead. See [`is_stall_tail`] for the other
/// way a window's tail is recognised as a stall's.
pub(crate) const TAIL_RATIO: f64 = 8.0;

/// Is a guard window's violating P99 the tail of a device stall rather than
/// queueing at this ring's depth? The window must hold a stall
/// (`has_stall`), and then either
/// - its P99 is over [`TAIL_RATIO`] × its P50 (queueing never spreads the
///   distribution that far), or
/// - the longest stall the ring measured in it (`stall_ns`) accounts for
///   the tail: an op the stall held completes at most its normal latency
///   (taken as 2 × P50) plus the stall, so `P99 ≤ 2·P50 + stall`; and the
///   stall is at least half of the tail's excess over the median, so a
///   short stall does not excuse a window whose body has risen with the
///   depth.
///
/// The second test covers deep limits on a slow body, where the ratio
/// misses: on this machine's disk at limit 129 (P50 ≈ 1.3 ms) an 8.6 ms
/// stall made a 10.1 ms P99, a ratio of 7.8, and the guard cut the limit
/// for a tail no depth could shorten.
pub(super) fn is_stall_tail(p99: u64, p50: u64, stall_ns: u64, has_stall: bool) -> bool {
    if !has_stall {
        return false;
    }
    if p99 as f64 > TAIL_RATIO * p50 as f64 {
        return true;
    }
    stall_ns > 0
        && p99 <= p50.saturating_mul(2).saturating_add(stall_ns)
        && stall_ns.saturating_mul(2) >= p99.saturating_sub(p50)
}

impl Aimd {
    /// The latency guard on a non-empty tick: `true` when it backed off.
    pub(super) fn guard_tick(&mut self, sample: &Sample) -> bool {
        let threshold = self.latency_threshold_ns();
        let min = self.cfg.min_window_completions.max(1);
        self.guard.push(
            &sample.latency,
            sample.stalled,
            self.cfg.guard_ticks as usize,
            min,
        );
        if self.guard.ticks.len() >= self.cfg.guard_ticks as usize {
            self.guard.after_cut = false;
        }
        self.guard_p99 = self.guard.p99(min);
        // Queueing (our depth) slows the body of the distribution too; a
        // device stall that holds every op in flight for a while only makes
        // a tail, and cutting the limit cannot shorten it (the stalled
        // share of ops is the same at any depth).
        let body = (threshold as f64 / self.cfg.latency_guard_mult) as u64;
        let queueing = self
            .guard
            .percentile(min, 0.95)
            .is_some_and(|p95| p95 > body);
        let judging = !self.guard.after_cut;
        let Some(p99) = self
            .guard_p99
            .filter(|&p| p > threshold && queueing && judging)
        else {
            if judging && self.guard_p99.is_some() {
                self.last_cut_p99 = None;
            }
            return false;
        };
        let p50 = self.guard.percentile(min, 0.5).unwrap_or(p99);
        let stall = self.guard.longest_stall();
        if is_stall_tail(p99, p50, stall.as_nanos() as u64, self.guard.has_stall()) {
            // A stall's tail, not queueing.
            self.hold_capped(format!(
                "P99 {} µs > {} µs, but the P50 is {} µs and completions stalled (longest \
                 {} µs): the device's tail, not this ring's queueing; holding at {}",
                p99 / 1000,
                threshold / 1000,
                p50 / 1000,
                stall.as_micros(),
                self.limit
            ));
            return false;
        }
        if let Some(prev) = self
            .last_cut_p99
            .filter(|&prev| p99 as f64 >= prev as f64 * CUT_RESPONSE)
        {
            // The last cut did not bring the latency down: it is not
            // queueing at this ring's depth (a slow device, a starved
            // CPU). Cutting again would only lose throughput.
            self.hold_capped(format!(
                "P99 {} µs > {} µs, but it did not fall after the last cut ({} µs): not \
                 this ring's queueing; holding at {}",
                p99 / 1000,
                threshold / 1000,
                prev / 1000,
                self.limit
            ));
            return false;
        }
        let why = if p99 > self.ceiling_ns {
            "P99 above the ceiling"
        } else {
            "P99 above the baseline guard"
        };
        if self.limit > self.limits.min_in_flight {
            self.last_cut_p99 = Some(p99);
            self.backoff(p99, threshold, why);
        } else {
            self.reason = format!(
                "{why} ({} µs > {} µs) but already at the minimum limit {}",
                p99 / 1000,
                threshold / 1000,
                self.limit
            );
            self.pending = None;
            self.pending_ticks = 0;
        }
        true
    }

    /// A violation that cutting the limit would not cure: hold the limit,
    /// and let no probe climb above it for `cap_ms`.
    fn hold_capped(&mut self, reason: String) {
        self.cap = Some((self.limit, Duration::from_millis(self.cfg.cap_ms)));
        self.reason = reason;
    }

    /// Multiplicative decrease on a latency violation (always strictly
    /// lower unless at the minimum), then hold: no probe may go above the
    /// new limit until the cap expires (`cap_ms` after the last cut), so a
    /// binding ceiling costs one cut per re-probe, not a burst of them.
    fn backoff(&mut self, p99: u64, threshold: u64, why: &str) {
        let old = self.limit;
        let cut = ((old as f64) * self.cfg.backoff_factor).floor() as u32;
        self.set_limit(cut.min(old.saturating_sub(1)));
        self.guard.clear();
        self.guard.after_cut = true;
        let cap = self.limit;
        self.cap = Some((cap, Duration::from_millis(self.cfg.cap_ms)));
        // After the cut: find where throughput stops growing below the
        // cap (descend trials; none above the cap until it expires).
        self.after_settle = if self.baseline_p99.is_none() {
            AimdPhase::Baseline
        } else {
            AimdPhase::Probing
        };
        self.enter(
            AimdPhase::Backoff,
            format!(
                "{why}: P99 {} µs > {} µs; limit {old} -> {} (cap {cap})",
                p99 / 1000,
                threshold / 1000,
                self.limit
            ),
        );
    }
}
