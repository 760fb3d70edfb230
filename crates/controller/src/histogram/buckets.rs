//! The log-linear bucket layout (`bucket_index`, `bucket_range`,
//! `NUM_BUCKETS`) and the nearest-rank percentile over bucket counts.

/// log2 of the number of sub-buckets per power of two.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have a bucket of their own.
pub(super) const LINEAR: u64 = 2 * SUB;
/// The most significant bit of the largest value with its own bucket
/// (unused under loom, whose layout is tiny).
#[cfg_attr(loom, allow(dead_code))]
const MAX_MSB: u32 = 35;

/// Number of buckets of the layout (the same for snapshot and recorder).
#[cfg(not(loom))]
pub const NUM_BUCKETS: usize = LINEAR as usize + ((MAX_MSB - SUB_BITS) as usize) * SUB as usize;
/// Number of buckets of the layout: tiny under loom to keep models small
/// (values clamp into the last bucket; counts are unaffected).
#[cfg(loom)]
pub const NUM_BUCKETS: usize = 4;

/// The bucket index a latency (ns) is counted in.
#[inline]
pub fn bucket_index(v: u64) -> usize {
    let idx = if v < LINEAR {
        v as usize
    } else {
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        let sub = ((v >> shift) - SUB) as usize;
        LINEAR as usize + ((msb - SUB_BITS - 1) as usize) * SUB as usize + sub
    };
    idx.min(NUM_BUCKETS - 1)
}

/// The inclusive value range `(low, high)` of bucket `idx` (ns). The last
/// bucket's range is reported as its nominal width; larger values are also
/// counted there.
pub fn bucket_range(idx: usize) -> (u64, u64) {
    let idx = idx as u64;
    if idx < LINEAR {
        return (idx, idx);
    }
    let rel = idx - LINEAR;
    let octave = rel / SUB; // 0 => msb = SUB_BITS + 1
    let sub = rel % SUB;
    let msb = octave as u32 + SUB_BITS + 1;
    let shift = msb - SUB_BITS;
    let low = (1u64 << msb) + (sub << shift);
    (low, low + (1u64 << shift) - 1)
}

/// Nearest-rank index (1-based) of quantile `q` among `n` values:
/// `⌈q·n⌉`, at least 1. `q` is clamped to `[0, 1]`; NaN counts as 0.
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let r = (q * n as f64 - 1e-9).ceil();
    (r.max(1.0) as u64).min(n)
}

/// The percentile of bucket `counts` holding `count` values between `min`
/// and `max` (see
/// [`HistogramSnapshot::percentile_ns`](super::HistogramSnapshot::percentile_ns)).
pub(crate) fn percentile_of(counts: &[u64], count: u64, min: u64, max: u64, q: f64) -> u64 {
    if count == 0 {
        return 0;
    }
    let rank = nearest_rank(q, count);
    if rank <= 1 {
        return min;
    }
    if rank >= count {
        return max;
    }
    let mut seen = 0u64;
    for (idx, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            let (lo, hi) = bucket_range(idx);
            let mid = lo + (hi - lo) / 2;
            return mid.clamp(min, max.max(min));
        }
    }
    max
}
