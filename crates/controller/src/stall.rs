//! [`StallDetector`]: how long the device stood still in an interval, from
//! the gaps between completions its ring measured.
//!
//! Some devices pause now and then whatever the load: this machine's virtio
//! disk stops completing for 2-6 ms about a dozen times a second (≈5 % of
//! the time), and every op in flight waits. A 20 ms trial leg that holds
//! such a pause loses up to a third of its throughput, so the pauses made
//! much of a trial's noise (over five replayed trial schedules the spread
//! of a pair's ln(x_hi/x_lo) fell from ±0.098 to ±0.073 with the pauses'
//! time left out: variance −45 %). Their time is the same share at any depth here
//! (5.4 / 4.7 / 5.5 / 5.7 / 6.3 % at limits 32 / 48 / 64 / 96 / 128), so a
//! comparison of two limits may leave it out.
//!
//! A gap (see `auraio_ring::CompletionGaps`) is *long* when it exceeds
//! [`STALL_GAP_FACTOR`] times the slowly averaged normal gap, and
//! [`STALL_LATENCY_FACTOR`] times the slowly averaged median op latency
//! (and never less than [`MIN_STALL_GAP_NS`]). The threshold moves slowly, so both limits
//! of a trial, whose legs alternate every few ticks, are judged by the same
//! one. A long gap's stalled time is its length beyond the interval's
//! normal gap: the time the device would have needed anyway.

use std::time::Duration;

/// A gap longer than this many times the averaged normal gap is a stall…
pub const STALL_GAP_FACTOR: f64 = 3.0;
/// …and never one shorter than this (ns): a thread descheduled for a
/// moment is not a device stall.
pub const MIN_STALL_GAP_NS: u64 = 250_000;
/// …nor one shorter than this many times the slowly averaged median op
/// latency: a device with irregular completions (a few ops in flight, each
/// taking a lognormal time) leaves gaps of several times their mean while
/// it works, 13-20 % of the time over 3× (simulated, no stall at all); no
/// op completing for twice the typical op's whole latency is the device's
/// doing. This machine's disk completes in waves (gaps ≈ 0.7 ms at depth
/// 64-96, latency ≈ 0.8 ms), and its gap threshold stays the larger.
pub const STALL_LATENCY_FACTOR: f64 = 2.0;
/// Weight of an interval's mean normal gap (and median latency) in the
/// average (a time constant of ≈20 intervals: many trial legs at both
/// limits).
const MEAN_GAP_WEIGHT: f64 = 0.05;

/// One interval's gap counts (differences of two ring snapshots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntervalGaps {
    /// Gaps that ended in the interval.
    pub gaps: u64,
    /// Their total length (ns).
    pub gap_ns: u64,
    /// Those longer than the threshold in force…
    pub long_gaps: u64,
    /// …and their total length (ns).
    pub long_gap_ns: u64,
}

/// What [`StallDetector::interval`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallInterval {
    /// The device's stalled time in the interval.
    pub stalled: Duration,
    /// Gaps longer than this (ns) are stalls in the next interval
    /// (`u64::MAX`: none yet).
    pub next_long_gap_ns: u64,
}

/// Turns gap counts into stalled time, and sets the threshold for the next
/// interval. Pure: no clock.
#[derive(Clone, Debug, Default)]
pub struct StallDetector {
    /// Slow average of the intervals' mean normal gap (ns).
    mean_gap_ns: Option<f64>,
    /// Slow average of the intervals' median op latency (ns).
    latency_ns: Option<f64>,
}

impl StallDetector {
    /// A detector with no threshold yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One interval, as a ring's tick sees it: the stalled time of its
    /// gaps `g`, after which the detector learns the interval's normal
    /// gaps and its median op latency (`p50_ns`; 0 = no completions), and
    /// the gap threshold for the next interval (to give the ring).
    ///
    /// The same as [`observe`](Self::observe), then
    /// [`observe_latency`](Self::observe_latency), then
    /// [`long_gap_ns`](Self::long_gap_ns): the engine's tick and the
    /// simulator's both call this.
    pub fn interval(&mut self, g: IntervalGaps, p50_ns: u64) -> StallInterval {
        let stalled = self.observe(g);
        self.observe_latency(p50_ns);
        StallInterval {
            stalled,
            next_long_gap_ns: self.long_gap_ns(),
        }
    }

    /// The stalled time of an interval with gaps `g`, and learns its
    /// normal gaps.
    pub fn observe(&mut self, g: IntervalGaps) -> Duration {
        let normal = g.gaps.saturating_sub(g.long_gaps);
        let normal_ns = g.gap_ns.saturating_sub(g.long_gap_ns);
        let typical = if normal > 0 {
            let m = normal_ns as f64 / normal as f64;
            self.mean_gap_ns = Some(match self.mean_gap_ns {
                Some(old) => MEAN_GAP_WEIGHT * m + (1.0 - MEAN_GAP_WEIGHT) * old,
                None => m,
            });
            m
        } else {
            self.mean_gap_ns.unwrap_or(0.0)
        };
        let expected = (g.long_gaps as f64 * typical) as u64;
        Duration::from_nanos(g.long_gap_ns.saturating_sub(expected))
    }

    /// Learns an interval's median op latency (`p50_ns`; 0 = the interval
    /// had no completions, ignored).
    pub fn observe_latency(&mut self, p50_ns: u64) {
        if p50_ns == 0 {
            return;
        }
        let v = p50_ns as f64;
        self.latency_ns = Some(match self.latency_ns {
            Some(old) => MEAN_GAP_WEIGHT * v + (1.0 - MEAN_GAP_WEIGHT) * old,
            None => v,
        });
    }

    /// Gaps longer than this (ns) are stalls (`u64::MAX` before any gap
    /// was seen: nothing is).
    pub fn long_gap_ns(&self) -> u64 {
        let Some(m) = self.mean_gap_ns else {
            return u64::MAX;
        };
        let by_latency = self.latency_ns.unwrap_or(0.0) * STALL_LATENCY_FACTOR;
        ((m * STALL_GAP_FACTOR).max(by_latency) as u64).max(MIN_STALL_GAP_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_gaps_count_beyond_the_normal_gap_and_the_threshold_follows_slowly() {
        let mut d = StallDetector::new();
        assert_eq!(d.long_gap_ns(), u64::MAX, "no threshold before any gap");
        // 15 normal gaps of 0.6 ms, and one of 5 ms.
        let g = IntervalGaps {
            gaps: 16,
            gap_ns: 15 * 600_000 + 5_000_000,
            long_gaps: 1,
            long_gap_ns: 5_000_000,
        };
        let stalled = d.observe(g);
        assert_eq!(stalled, Duration::from_nanos(4_400_000));
        assert_eq!(d.long_gap_ns(), 1_800_000);
        // Normal gaps twice as long move the threshold by a twentieth.
        let g2 = IntervalGaps {
            gaps: 8,
            gap_ns: 8 * 1_200_000,
            ..Default::default()
        };
        assert_eq!(d.observe(g2), Duration::ZERO);
        let t = d.long_gap_ns();
        assert!((1_880_000..=1_900_000).contains(&t), "{t}");
        // Fast completions never make the threshold shorter than the floor.
        let mut f = StallDetector::new();
        f.observe(IntervalGaps {
            gaps: 1000,
            gap_ns: 1000 * 5_000,
            ..Default::default()
        });
        assert_eq!(f.long_gap_ns(), MIN_STALL_GAP_NS);
    }

    #[test]
    fn the_threshold_is_at_least_twice_the_averaged_median_latency() {
        let mut d = StallDetector::new();
        d.observe(IntervalGaps {
            gaps: 100,
            gap_ns: 100 * 200_000,
            ..Default::default()
        });
        assert_eq!(d.long_gap_ns(), 600_000, "3x the gap before any latency");
        // Ops take 1 ms: a gap of 0.6-2 ms is a device at work.
        d.observe_latency(1_000_000);
        assert_eq!(d.long_gap_ns(), 2_000_000);
        // The latency is averaged slowly; intervals without completions
        // (p50 0) teach nothing.
        d.observe_latency(0);
        assert_eq!(d.long_gap_ns(), 2_000_000);
        d.observe_latency(3_000_000);
        assert_eq!(d.long_gap_ns(), 2_200_000);
        // Where the gaps are the longer measure, they decide.
        let mut w = StallDetector::new();
        w.observe(IntervalGaps {
            gaps: 10,
            gap_ns: 10 * 700_000,
            ..Default::default()
        });
        w.observe_latency(800_000);
        assert_eq!(w.long_gap_ns(), 2_100_000);
    }

    #[test]
    fn interval_is_observe_then_the_latency_then_the_next_threshold() {
        let g = IntervalGaps {
            gaps: 16,
            gap_ns: 15 * 600_000 + 5_000_000,
            long_gaps: 1,
            long_gap_ns: 5_000_000,
        };
        let mut d = StallDetector::new();
        let i = d.interval(g, 1_000_000);
        // 4.4 ms stalled; the threshold is the larger of 3 x 0.6 ms (the
        // normal gap) and 2 x 1 ms (the median latency): both were learnt
        // before the threshold was read.
        assert_eq!(i.stalled, Duration::from_nanos(4_400_000));
        assert_eq!(i.next_long_gap_ns, 2_000_000);
        assert_eq!(i.next_long_gap_ns, d.long_gap_ns());
        // An interval without completions teaches no latency.
        let mut e = StallDetector::new();
        let j = e.interval(g, 0);
        assert_eq!(j.next_long_gap_ns, 1_800_000);
    }

    #[test]
    fn an_interval_of_one_long_gap_uses_the_averaged_normal_gap() {
        let mut d = StallDetector::new();
        d.observe(IntervalGaps {
            gaps: 10,
            gap_ns: 10 * 500_000,
            ..Default::default()
        });
        let stalled = d.observe(IntervalGaps {
            gaps: 1,
            gap_ns: 8_000_000,
            long_gaps: 1,
            long_gap_ns: 8_000_000,
        });
        assert_eq!(stalled, Duration::from_nanos(7_500_000));
    }
}
