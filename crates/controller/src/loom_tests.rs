//! loom models of the histogram's double buffer: records racing with swaps
//! are never lost and never counted twice.

use crate::histogram::{bucket_index, bucket_range, HistogramSnapshot, LatencyHistogram};
use loom::sync::Arc;
use loom::thread;

/// Two recorders race a swapping tick; afterwards, every snapshot taken plus
/// whatever is left in both halves adds up to exactly the records made.
#[test]
fn loom_histogram_record_vs_swap() {
    loom::model(|| {
        let h = Arc::new(LatencyHistogram::new());
        let recorders: Vec<_> = [(1u64, 2u64), (3, 1_000_000)]
            .into_iter()
            .map(|(a, b)| {
                let h = h.clone();
                thread::spawn(move || {
                    h.record(a);
                    h.record(b);
                })
            })
            .collect();
        let mut seen = HistogramSnapshot::new();
        seen.merge(&h.swap());
        for r in recorders {
            r.join().unwrap();
        }
        seen.merge(&h.drain_all());
        assert_eq!(seen.count(), 4, "records lost or double counted");
        assert_eq!(seen.sum_ns(), 1 + 2 + 3 + 1_000_000, "sum lost or doubled");
        // min/max are exact unless the extreme record raced a swap; then
        // they are within that record's bucket.
        assert!(seen.min_ns() <= bucket_range(bucket_index(1)).1);
        assert!(seen.max_ns() >= bucket_range(bucket_index(1_000_000)).0);
        assert!(seen.min_ns() >= 1 && seen.max_ns() <= 1_000_000);
    });
}

/// Two threads swap concurrently (the tick and a stats reader) while one
/// records: still exactly once.
#[test]
fn loom_histogram_concurrent_swaps() {
    loom::model(|| {
        let h = Arc::new(LatencyHistogram::new());
        let h2 = h.clone();
        let swapper = thread::spawn(move || h2.swap().count());
        let h3 = h.clone();
        let recorder = thread::spawn(move || {
            h3.record(7);
            h3.record(8);
        });
        let mine = h.swap().count();
        recorder.join().unwrap();
        let theirs = swapper.join().unwrap();
        let rest = h.drain_all().count();
        assert_eq!(mine + theirs + rest, 2);
    });
}
