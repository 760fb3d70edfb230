//! Latency histogram recording: the engine's per-completion cost
//! (`LatencyHistogram::record`, one relaxed increment) and the plain
//! snapshot's `record` used by the simulator.

use auraio_controller::{HistogramSnapshot, LatencyHistogram};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// 1024 latencies spread from 1 µs to ~100 ms (log-uniform-ish), so every
/// bucket range is exercised.
fn latencies() -> Vec<u64> {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let exp = 10 + (x % 17); // 2^10 ns .. 2^26 ns
            (1u64 << exp) + (x >> 40) % (1u64 << exp)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let vals = latencies();
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(vals.len() as u64));
    let h = LatencyHistogram::new();
    g.bench_function("latency_histogram_record", |b| {
        b.iter(|| {
            for &v in &vals {
                h.record(black_box(v));
            }
        })
    });
    let mut snap = HistogramSnapshot::default();
    g.bench_function("snapshot_record", |b| {
        b.iter(|| {
            for &v in &vals {
                snap.record(black_box(v));
            }
        })
    });
    g.bench_function("swap_and_p99", |b| {
        b.iter(|| {
            for &v in &vals {
                h.record(v);
            }
            black_box(h.swap().p99_ns())
        })
    });
    g.finish();
}

/// criterion is built without its plotters backend (see the workspace
/// Cargo.toml), so no font is needed and no plots are drawn.
fn config() -> Criterion {
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
