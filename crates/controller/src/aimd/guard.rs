//! The latency guard's window: the histograms of the last few non-empty
//! ticks since the last backoff.

use crate::histogram::{percentile_of, HistogramSnapshot, NUM_BUCKETS};
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
