//! Histogram tests: the bucket layout, snapshot percentiles, merge and serde,
//! and the recorder against a plain snapshot.

use super::buckets::LINEAR;
use super::*;

#[test]
fn layout_is_contiguous_and_monotone() {
    let mut prev_hi = None;
    for idx in 0..NUM_BUCKETS {
        let (lo, hi) = bucket_range(idx);
        assert!(lo <= hi);
        if let Some(p) = prev_hi {
            assert_eq!(lo, p + 1, "gap before bucket {idx}");
        }
        prev_hi = Some(hi);
        assert_eq!(bucket_index(lo), idx);
        assert_eq!(bucket_index(hi), idx);
        if lo >= LINEAR {
            // width / low <= 1/32
            assert!((hi - lo + 1) * 32 <= lo, "bucket {idx} too wide");
        }
    }
    // covers 1 µs .. >= 10 s with its own buckets
    assert!(bucket_range(NUM_BUCKETS - 1).1 >= 10_000_000_000);
    assert_eq!(bucket_index(u64::MAX), NUM_BUCKETS - 1);
    assert_eq!(NUM_BUCKETS, 1024);
}

#[test]
fn empty_snapshot_is_zero() {
    let h = HistogramSnapshot::default();
    assert!(h.is_empty());
    assert_eq!(h.p50_ns(), 0);
    assert_eq!(h.p99_ns(), 0);
    assert_eq!(h.min_ns(), 0);
    assert_eq!(h.max_ns(), 0);
    assert_eq!(h.mean_ns(), 0.0);
}

#[test]
fn percentiles_of_known_values() {
    let mut h = HistogramSnapshot::new();
    for v in 1..=100u64 {
        h.record(v * 1000);
    }
    assert_eq!(h.count(), 100);
    assert_eq!(h.min_ns(), 1000);
    assert_eq!(h.max_ns(), 100_000);
    assert_eq!(h.mean_ns(), 50_500.0);
    let p50 = h.p50_ns() as f64;
    assert!((p50 - 50_000.0).abs() <= 50_000.0 * 0.016, "{p50}");
    let p99 = h.p99_ns() as f64;
    assert!((p99 - 99_000.0).abs() <= 99_000.0 * 0.016, "{p99}");
    assert_eq!(h.percentile_ns(0.0), 1000);
    assert_eq!(h.percentile_ns(1.0), 100_000);
    assert!(h.p90_ns() <= h.p99_ns() && h.p99_ns() <= h.p999_ns());
}

#[test]
fn merge_equals_recording_both() {
    let mut a = HistogramSnapshot::new();
    let mut b = HistogramSnapshot::new();
    let mut both = HistogramSnapshot::new();
    for v in [5u64, 70, 900, 12_345, 9_999_999] {
        a.record(v);
        both.record(v);
    }
    for v in [1u64, 64_000, 3_000_000_000] {
        b.record(v);
        both.record(v);
    }
    a.merge(&b);
    assert_eq!(a, both);
    let mut e = HistogramSnapshot::new();
    e.merge(&HistogramSnapshot::new());
    assert_eq!(e, HistogramSnapshot::new());
}

#[test]
fn serde_round_trip_is_sparse() {
    let mut h = HistogramSnapshot::new();
    for v in [100u64, 100, 250_000, 7] {
        h.record(v);
    }
    let s = serde_json::to_string(&h).unwrap();
    assert!(s.len() < 200, "{s}");
    let back: HistogramSnapshot = serde_json::from_str(&s).unwrap();
    assert_eq!(back, h);
    let e: HistogramSnapshot =
        serde_json::from_str(&serde_json::to_string(&HistogramSnapshot::new()).unwrap()).unwrap();
    assert_eq!(e, HistogramSnapshot::new());
}

#[test]
fn serde_rejects_inconsistent_snapshots() {
    let bad = [
        r#"{"count":2,"sum":0,"min":1,"max":1,"buckets":[[1,1]]}"#,
        r#"{"count":1,"sum":0,"min":1,"max":1,"buckets":[[99999,1]]}"#,
        r#"{"count":1,"sum":0,"min":9,"max":1,"buckets":[[1,1]]}"#,
    ];
    for b in bad {
        assert!(serde_json::from_str::<HistogramSnapshot>(b).is_err(), "{b}");
    }
}

#[test]
fn recorder_swap_drains_and_flips() {
    let h = LatencyHistogram::new();
    for v in [1_000u64, 2_000, 3_000] {
        h.record(v);
    }
    let s1 = h.swap();
    assert_eq!(s1.count(), 3);
    assert_eq!(s1.sum_ns(), 6_000);
    assert_eq!(s1.min_ns(), 1_000);
    assert_eq!(s1.max_ns(), 3_000);
    h.record(50);
    let s2 = h.swap();
    assert_eq!(s2.count(), 1);
    assert_eq!(s2.min_ns(), 50);
    let s3 = h.swap();
    assert!(s3.is_empty());
    assert_eq!(s3, HistogramSnapshot::new());
}

#[test]
fn recorder_matches_plain_snapshot() {
    let h = LatencyHistogram::new();
    let mut p = HistogramSnapshot::new();
    let mut x = 12345u64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = x % 50_000_000;
        h.record(v);
        p.record(v);
    }
    assert_eq!(h.swap(), p);
}

#[test]
fn record_n_equals_n_records() {
    let h = LatencyHistogram::new();
    let mut p = HistogramSnapshot::new();
    for (v, n) in [
        (1_500u64, 32u64),
        (7, 1),
        (2_000_000, 8),
        (90_000, 0),
        (300, 5),
    ] {
        h.record_n(v, n);
        for _ in 0..n {
            p.record(v);
        }
    }
    let s = h.swap();
    assert_eq!(s, p);
    assert_eq!(s.count(), 32 + 1 + 8 + 5);
    assert_eq!(s.min_ns(), 7);
    assert_eq!(s.max_ns(), 2_000_000);
    // n == 0 alone leaves it empty.
    h.record_n(42, 0);
    assert!(h.drain_all().is_empty());
}

#[test]
fn concurrent_records_all_counted() {
    let h = std::sync::Arc::new(LatencyHistogram::new());
    let mut total = HistogramSnapshot::new();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    h.record(1 + (i * (t + 1)) % 1_000_000);
                }
            })
        })
        .collect();
    for _ in 0..50 {
        total.merge(&h.swap());
    }
    for t in threads {
        t.join().unwrap();
    }
    total.merge(&h.drain_all());
    assert_eq!(total.count(), 80_000);
}
