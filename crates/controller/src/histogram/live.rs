//! The hot-path recorder [`LatencyHistogram`]: two atomic halves, one
//! recording while the other is drained.

use crate::sync::{AtomicU64, AtomicUsize};
use std::sync::atomic::Ordering::Relaxed;

use super::buckets::{bucket_index, bucket_range, NUM_BUCKETS};
use super::snapshot::HistogramSnapshot;

/// One half of the double buffer.
struct Half {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Half {
    fn new() -> Self {
        Half {
            buckets: (0..NUM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    #[inline]
    fn record(&self, v: u64) {
        self.buckets[bucket_index(v)].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        // Plain loads first: after the first few records of an interval the
        // RMWs are almost never needed.
        if v < self.min.load(Relaxed) {
            self.min.fetch_min(v, Relaxed);
        }
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    /// `n` records of `v` with one update per counter.
    #[inline]
    fn record_n(&self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.buckets[bucket_index(v)].fetch_add(n, Relaxed);
        self.sum.fetch_add(v.saturating_mul(n), Relaxed);
        if v < self.min.load(Relaxed) {
            self.min.fetch_min(v, Relaxed);
        }
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    /// Takes every counter (atomic exchange, so a concurrent increment lands
    /// either in this drain or in a later one, never both or neither).
    fn drain(&self) -> HistogramSnapshot {
        let mut counts = vec![0u64; NUM_BUCKETS];
        let mut count = 0u64;
        let mut first = None;
        let mut last = 0usize;
        for (i, b) in self.buckets.iter().enumerate() {
            let c = b.swap(0, Relaxed);
            if c != 0 {
                counts[i] = c;
                count += c;
                first.get_or_insert(i);
                last = i;
            }
        }
        let sum = self.sum.swap(0, Relaxed);
        let mut min = self.min.swap(u64::MAX, Relaxed);
        let mut max = self.max.swap(0, Relaxed);
        match first {
            None => HistogramSnapshot {
                counts: Vec::new(),
                count: 0,
                sum,
                min: 0,
                max: 0,
            },
            Some(first) => {
                // A record racing with the drain may have bumped its bucket
                // here but its min/max in the other drain: keep min/max
                // consistent with the buckets.
                min = min.min(bucket_range(first).1);
                max = max.max(bucket_range(last).0);
                HistogramSnapshot {
                    counts,
                    count,
                    sum,
                    min,
                    max,
                }
            }
        }
    }
}

/// The hot-path recorder: lock-free, `Send + Sync`, double-buffered.
///
/// [`record`](Self::record) does one relaxed bucket increment plus a relaxed
/// add to the sum (min/max are a plain load and only rarely an RMW).
/// [`swap`](Self::swap) flips the active half and drains the old one; records
/// racing with a swap are never lost or counted twice — at worst one shows up
/// in the next-but-one snapshot (see the loom model in `loom_tests.rs`).
///
/// Counts and sums are exact over the sequence of snapshots. Min and max are
/// exact too, except when the extreme record races a swap: then its bucket
/// lands in one snapshot and its min/max update in the next, and the first
/// snapshot's min/max are completed from its buckets (within 1.6 %).
pub struct LatencyHistogram {
    halves: [Half; 2],
    active: AtomicUsize,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("active", &self.active.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    /// An empty recorder.
    pub fn new() -> Self {
        LatencyHistogram {
            halves: [Half::new(), Half::new()],
            active: AtomicUsize::new(0),
        }
    }

    /// Records one latency (ns). Any thread, no locks.
    #[inline]
    pub fn record(&self, latency_ns: u64) {
        let i = self.active.load(Relaxed) & 1;
        self.halves[i].record(latency_ns);
    }

    /// Records `n` occurrences of the same latency (ns) at the cost of one
    /// [`record`](Self::record): e.g. every completion reaped together, which
    /// share one latency. Same guarantees as `record` (the `n` land in one
    /// snapshot together); `n == 0` records nothing.
    #[inline]
    pub fn record_n(&self, latency_ns: u64, n: u64) {
        let i = self.active.load(Relaxed) & 1;
        self.halves[i].record_n(latency_ns, n);
    }

    /// Flips the active half and drains the old one into a snapshot.
    /// Meant for one caller at a time (the tick); concurrent swaps are still
    /// safe (nothing lost or double counted), only less tidy.
    pub fn swap(&self) -> HistogramSnapshot {
        let old = self.active.fetch_xor(1, Relaxed) & 1;
        self.halves[old].drain()
    }

    /// Drains both halves (for a final read when recording has stopped).
    pub fn drain_all(&self) -> HistogramSnapshot {
        let mut s = self.swap();
        s.merge(&self.swap());
        s
    }
}
