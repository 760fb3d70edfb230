//! Histogram hot paths: atomic record, tick-time swap, percentile, merge;
//! and a full meter tick (IoMeter → Sample → AIMD decision).

use auraio_controller::{
    Aimd, AimdConfig, Controller, HistogramSnapshot, IoMeter, LatencyHistogram, Limits,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn latencies(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 20 µs .. ~2 ms, NVMe-ish
            20_000 + x % 2_000_000
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let lat = latencies(4096);

    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(lat.len() as u64));
    let h = LatencyHistogram::new();
    g.bench_function("record_atomic_x4096", |b| {
        b.iter(|| {
            for &v in &lat {
                h.record(black_box(v));
            }
        })
    });
    let mut plain = HistogramSnapshot::new();
    g.bench_function("record_plain_x4096", |b| {
        b.iter(|| {
            for &v in &lat {
                plain.record(black_box(v));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("histogram_tick");
    let h = LatencyHistogram::new();
    g.bench_function("record_64_then_swap", |b| {
        b.iter(|| {
            for &v in &lat[..64] {
                h.record(v);
            }
            black_box(h.swap())
        })
    });
    let mut snap = HistogramSnapshot::new();
    for &v in &lat {
        snap.record(v);
    }
    g.bench_function("p99", |b| b.iter(|| black_box(&snap).p99_ns()));
    g.bench_function("p50_p99_p999", |b| {
        b.iter(|| {
            let s = black_box(&snap);
            (s.p50_ns(), s.p99_ns(), s.p999_ns())
        })
    });
    let other = snap.clone();
    g.bench_function("merge", |b| {
        b.iter(|| {
            let mut m = snap.clone();
            m.merge(black_box(&other));
            m
        })
    });
    let meter = IoMeter::new();
    let mut ctrl = Aimd::new(AimdConfig::default(), Limits::default());
    let mut now = Duration::ZERO;
    g.bench_function("meter_sample_and_aimd_tick_1000_ops", |b| {
        b.iter(|| {
            for &v in &lat[..1000] {
                meter.on_complete(v, 4096, false);
            }
            now += Duration::from_millis(10);
            let s = meter.take_sample(now, 32);
            black_box(ctrl.tick(&s))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
