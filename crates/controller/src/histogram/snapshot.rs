//! The plain, non-atomic [`HistogramSnapshot`] and its sparse serialized form.

use serde::{Deserialize, Serialize};

use super::buckets::{bucket_index, percentile_of, NUM_BUCKETS};

/// A plain (non-atomic) latency histogram: counts per bucket plus exact
/// count, sum, min and max. What a tick hands to the controller.
///
/// Serialized sparsely (`buckets: [[index, count], …]`) so trace lines stay short.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SnapshotRepr", into = "SnapshotRepr")]
pub struct HistogramSnapshot {
    /// Empty when `count == 0`, else exactly `NUM_BUCKETS` long.
    pub(super) counts: Vec<u64>,
    pub(super) count: u64,
    pub(super) sum: u64,
    pub(super) min: u64,
    pub(super) max: u64,
}

impl HistogramSnapshot {
    /// An empty snapshot (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency (ns). Plain recording for the simulator and tests.
    pub fn record(&mut self, latency_ns: u64) {
        self.record_n(latency_ns, 1);
    }

    /// Records `n` occurrences of the same latency (ns).
    pub fn record_n(&mut self, latency_ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; NUM_BUCKETS];
        }
        if self.count == 0 {
            self.min = latency_ns;
            self.max = latency_ns;
        } else {
            self.min = self.min.min(latency_ns);
            self.max = self.max.max(latency_ns);
        }
        self.counts[bucket_index(latency_ns)] += n;
        self.count += n;
        self.sum = self.sum.saturating_add(latency_ns.saturating_mul(n));
    }

    /// Number of recorded latencies.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of all recorded latencies (ns).
    pub fn sum_ns(&self) -> u64 {
        self.sum
    }

    /// Smallest recorded latency (ns); 0 when empty.
    pub fn min_ns(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest recorded latency (ns); 0 when empty.
    pub fn max_ns(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.max
        }
    }

    /// Mean latency (ns); 0 when empty.
    pub fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The latency (ns) at quantile `q` in `[0, 1]` (nearest rank, see
    /// [`nearest_rank`](super::nearest_rank)), within 1.6 % of the exact value; 0 when empty.
    /// `q = 0` gives the exact min and `q = 1` the exact max.
    pub fn percentile_ns(&self, q: f64) -> u64 {
        percentile_of(&self.counts, self.count, self.min, self.max, q)
    }

    /// Raw bucket counts (empty, or `NUM_BUCKETS` long).
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Median latency (ns).
    pub fn p50_ns(&self) -> u64 {
        self.percentile_ns(0.50)
    }

    /// 90th percentile latency (ns).
    pub fn p90_ns(&self) -> u64 {
        self.percentile_ns(0.90)
    }

    /// 99th percentile latency (ns).
    pub fn p99_ns(&self) -> u64 {
        self.percentile_ns(0.99)
    }

    /// 99.9th percentile latency (ns).
    pub fn p999_ns(&self) -> u64 {
        self.percentile_ns(0.999)
    }

    /// Adds every recording of `other` to `self`.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if other.counts.is_empty() {
            self.sum = self.sum.saturating_add(other.sum);
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; NUM_BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else if other.count > 0 {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// Non-empty buckets as `(index, count)`, in index order.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(|(i, c)| (i, *c))
    }
}

/// Serialized form of a snapshot: sparse buckets.
#[derive(Serialize, Deserialize)]
struct SnapshotRepr {
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
    /// `[index, count]` pairs of the non-empty buckets.
    #[serde(default)]
    buckets: Vec<[u64; 2]>,
}

impl From<HistogramSnapshot> for SnapshotRepr {
    fn from(h: HistogramSnapshot) -> Self {
        SnapshotRepr {
            count: h.count,
            sum: h.sum,
            min: h.min_ns(),
            max: h.max_ns(),
            buckets: h.buckets().map(|(i, c)| [i as u64, c]).collect(),
        }
    }
}

impl TryFrom<SnapshotRepr> for HistogramSnapshot {
    type Error = String;

    fn try_from(r: SnapshotRepr) -> Result<Self, String> {
        let mut counts = Vec::new();
        let mut total = 0u64;
        for [idx, c] in r.buckets {
            if idx >= NUM_BUCKETS as u64 {
                return Err(format!(
                    "histogram bucket index {idx} out of range (layout has {NUM_BUCKETS} buckets)"
                ));
            }
            if c == 0 {
                continue;
            }
            if counts.is_empty() {
                counts = vec![0; NUM_BUCKETS];
            }
            counts[idx as usize] += c;
            total = total
                .checked_add(c)
                .ok_or_else(|| "histogram bucket counts overflow".to_string())?;
        }
        if total != r.count {
            return Err(format!(
                "histogram count {} does not match the sum of its buckets {total}",
                r.count
            ));
        }
        if r.count > 0 && r.min > r.max {
            return Err(format!("histogram min {} > max {}", r.min, r.max));
        }
        let (min, max) = if r.count == 0 { (0, 0) } else { (r.min, r.max) };
        Ok(HistogramSnapshot {
            counts,
            count: r.count,
            sum: r.sum,
            min,
            max,
        })
    }
}
