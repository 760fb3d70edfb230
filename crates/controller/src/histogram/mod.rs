//! Log-linear latency histograms: a plain [`HistogramSnapshot`] and the
//! lock-free, double-buffered [`LatencyHistogram`] recorder of the hot path.
//!
//! # Bucket layout
//! Values are nanoseconds. Values below 64 ns have one bucket each (exact).
//! Above, every power of two `[2^k, 2^(k+1))` is split into 32 equal
//! sub-buckets, so a bucket is at most 1/32 of its lower bound wide. A
//! percentile is reported as the middle of the bucket holding the value of
//! that rank (clamped to the exact recorded min and max), which is within
//! 1/64 ≈ 1.6 % of the exact value — the issue asks for ≤ 3 %. The top octave
//! ends at 2^36 ns ≈ 68.7 s; larger values land in the last bucket (their
//! exact value still counts toward `max` and `sum`). 1024 buckets in all.

mod buckets;
mod live;
/// loom model of [`LatencyHistogram::record_n`] racing a swap (the other
/// models are in `loom_tests.rs`).
#[cfg(all(test, loom))]
mod loom_record_n;
mod snapshot;
#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use self::buckets::percentile_of;
pub use self::buckets::{bucket_index, bucket_range, nearest_rank, NUM_BUCKETS};
pub use self::live::LatencyHistogram;
pub use self::snapshot::HistogramSnapshot;
