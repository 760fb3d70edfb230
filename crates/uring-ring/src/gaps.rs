//! [`CompletionGaps`]: how long a ring went without a completion while ops
//! were in flight.
//!
//! A *gap* runs from one moment of progress to the next reap: from the
//! previous reap (if ops were still in flight after it) or from the hand-off
//! that gave an idle ring work. Gaps longer than a threshold the caller sets
//! are counted apart: on a device that pauses now and then (this machine's
//! virtio disk stops completing for 2-6 ms about a dozen times a second),
//! they are the pauses, and a controller comparing two limits can leave
//! their time out (see `auraio_controller::StallDetector`). The counter
//! needs no clock of its own: the ring passes the times it already reads
//! (one per reap batch, one per hand-off).

/// Cumulative gap counts (see the module docs); subtract two snapshots for
/// an interval's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GapStats {
    /// Gaps ended by a reap.
    pub gaps: u64,
    /// Their total length (ns).
    pub gap_ns: u64,
    /// Gaps longer than the threshold in force when they ended…
    pub long_gaps: u64,
    /// …and their total length (ns).
    pub long_gap_ns: u64,
}

impl GapStats {
    /// The counts since the `earlier` snapshot.
    pub fn since(&self, earlier: &GapStats) -> GapStats {
        GapStats {
            gaps: self.gaps.saturating_sub(earlier.gaps),
            gap_ns: self.gap_ns.saturating_sub(earlier.gap_ns),
            long_gaps: self.long_gaps.saturating_sub(earlier.long_gaps),
            long_gap_ns: self.long_gap_ns.saturating_sub(earlier.long_gap_ns),
        }
    }
}

/// Measures gaps between completions while a ring is busy.
#[derive(Clone, Copy, Debug)]
pub struct CompletionGaps {
    /// Start of the running gap; `None` while nothing is in flight.
    since: Option<u64>,
    /// Gaps longer than this (ns) count as long.
    long_ns: u64,
    stats: GapStats,
}

impl Default for CompletionGaps {
    fn default() -> Self {
        CompletionGaps {
            since: None,
            long_ns: u64::MAX,
            stats: GapStats::default(),
        }
    }
}

impl CompletionGaps {
    /// A counter with no threshold yet (no gap counts as long).
    pub fn new() -> Self {
        Self::default()
    }

    /// Gaps longer than `ns` count as long from now on (`u64::MAX`: none).
    pub fn set_long_ns(&mut self, ns: u64) {
        self.long_ns = ns;
    }

    /// Ops were handed to the device at `now_ns`: an idle ring starts a gap.
    #[inline]
    pub fn on_handoff(&mut self, now_ns: u64) {
        if self.since.is_none() {
            self.since = Some(now_ns);
        }
    }

    /// Completions were reaped at `now_ns`: ends the running gap, and starts
    /// the next one when ops are still in flight (`busy_after`).
    #[inline]
    pub fn on_reap(&mut self, now_ns: u64, busy_after: bool) {
        if let Some(since) = self.since {
            let gap = now_ns.saturating_sub(since);
            let s = &mut self.stats;
            s.gaps += 1;
            s.gap_ns = s.gap_ns.saturating_add(gap);
            if gap > self.long_ns {
                s.long_gaps += 1;
                s.long_gap_ns = s.long_gap_ns.saturating_add(gap);
            }
        }
        self.since = busy_after.then_some(now_ns);
    }

    /// The counts so far.
    pub fn stats(&self) -> GapStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_busy_time_makes_gaps_and_long_ones_are_counted_apart() {
        let mut g = CompletionGaps::new();
        // Idle: a reap without a gap running counts nothing.
        g.on_reap(5, false);
        assert_eq!(g.stats(), GapStats::default());
        g.set_long_ns(1_000);
        g.on_handoff(100);
        g.on_handoff(150); // already busy: the gap still starts at 100
        g.on_reap(400, true); // 300
        g.on_reap(2_400, true); // 2000: long
        g.on_reap(2_500, false); // 100, then idle
        g.on_reap(9_000, false); // idle time is no gap
        g.on_handoff(10_000);
        g.on_reap(10_900, true); // 900: not long
        assert_eq!(
            g.stats(),
            GapStats {
                gaps: 4,
                gap_ns: 300 + 2_000 + 100 + 900,
                long_gaps: 1,
                long_gap_ns: 2_000,
            }
        );
        // The default threshold counts nothing as long.
        let mut d = CompletionGaps::new();
        d.on_handoff(0);
        d.on_reap(u64::MAX / 2, false);
        assert_eq!(d.stats().long_gaps, 0);
        assert_eq!(d.stats().gaps, 1);
        // Differences of two snapshots.
        let later = g.stats();
        let earlier = GapStats {
            gaps: 1,
            gap_ns: 300,
            ..GapStats::default()
        };
        assert_eq!(later.since(&earlier).gaps, 3);
        assert_eq!(later.since(&earlier).gap_ns, 3_000);
        assert_eq!(later.since(&earlier).long_gap_ns, 2_000);
    }
}
