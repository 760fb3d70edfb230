use super::{HistogramSnapshot, LatencyHistogram};
use loom::sync::Arc;
use loom::thread;

/// A batch record and a single record race a swapping tick: every
/// snapshot plus what is left adds up to exactly the records made.
#[test]
fn loom_histogram_record_n_vs_swap() {
    loom::model(|| {
        let h = Arc::new(LatencyHistogram::new());
        let h2 = h.clone();
        let recorder = thread::spawn(move || {
            h2.record_n(5_000, 16);
            h2.record(9);
        });
        let mut seen = HistogramSnapshot::new();
        seen.merge(&h.swap());
        recorder.join().unwrap();
        seen.merge(&h.drain_all());
        assert_eq!(seen.count(), 17, "records lost or double counted");
        assert_eq!(seen.sum_ns(), 5_000 * 16 + 9, "sum lost or doubled");
    });
}
