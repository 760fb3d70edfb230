//! Buffer pool micro-benchmarks: alloc+free on the thread-cache path, under
//! two-thread contention, and `std::alloc` at the same alignment.
//!
//! `cargo bench -p auraio-buffer-pool --bench pool -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auraio_buffer_pool::{BufferPool, PoolConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SIZES: [(usize, &str); 3] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
const ALIGN: usize = 4096;

fn std_alloc_free(size: usize) {
    let layout = Layout::from_size_align(size, ALIGN).expect("layout");
    // SAFETY: non-zero size; the block is freed with the same layout.
    unsafe {
        let p = alloc(layout);
        assert!(!p.is_null());
        // Touch one byte so the allocation cannot be elided.
        p.write_volatile(1);
        dealloc(black_box(p), layout);
    }
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free");
    let pool = BufferPool::with_defaults();
    for (size, name) in SIZES {
        g.bench_with_input(BenchmarkId::new("pool", name), &size, |b, &size| {
            b.iter(|| {
                let mut buf = pool.alloc(black_box(size)).expect("alloc");
                buf[0] = 1;
                drop(black_box(buf));
            })
        });
        g.bench_with_input(BenchmarkId::new("std_alloc", name), &size, |b, &size| {
            b.iter(|| std_alloc_free(black_box(size)))
        });
    }
    g.finish();
}

/// This thread's CPU time. On a shared, loaded machine wall-clock numbers
/// include time spent descheduled; CPU time does not.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The single-thread cases again, timed in thread CPU time.
fn single_thread_cpu_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free_cputime");
    let pool = BufferPool::with_defaults();
    for (size, name) in SIZES {
        g.bench_with_input(BenchmarkId::new("pool", name), &size, |b, &size| {
            b.iter_custom(|iters| {
                let start = thread_cpu_time();
                for _ in 0..iters {
                    let mut buf = pool.alloc(black_box(size)).expect("alloc");
                    buf[0] = 1;
                    drop(black_box(buf));
                }
                thread_cpu_time() - start
            })
        });
        g.bench_with_input(BenchmarkId::new("std_alloc", name), &size, |b, &size| {
            b.iter_custom(|iters| {
                let start = thread_cpu_time();
                for _ in 0..iters {
                    std_alloc_free(black_box(size));
                }
                thread_cpu_time() - start
            })
        });
    }
    g.finish();
}

/// Runs `op` `iters` times on each of two threads at once; returns the wall
/// time divided so that the figure is time per op per thread.
fn two_threads(iters: u64, op: impl Fn() + Send + Sync + Clone + 'static) -> Duration {
    let barrier = Arc::new(Barrier::new(2));
    let other = {
        let barrier = barrier.clone();
        let op = op.clone();
        std::thread::spawn(move || {
            barrier.wait();
            for _ in 0..iters {
                op();
            }
        })
    };
    barrier.wait();
    let start = Instant::now();
    for _ in 0..iters {
        op();
    }
    let _ = other.join();
    start.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free_2threads");
    let pool = BufferPool::with_defaults();
    for (size, name) in SIZES {
        let p = pool.clone();
        g.bench_function(BenchmarkId::new("pool", name), move |b| {
            let p = p.clone();
            b.iter_custom(move |iters| {
                let p = p.clone();
                two_threads(iters, move || {
                    let mut buf = p.alloc(black_box(size)).expect("alloc");
                    buf[0] = 1;
                    drop(black_box(buf));
                })
            })
        });
        g.bench_function(BenchmarkId::new("std_alloc", name), move |b| {
            b.iter_custom(move |iters| two_threads(iters, move || std_alloc_free(black_box(size))))
        });
    }
    g.finish();
}

/// Producer/consumer: buffers allocated on one thread and freed on another
/// (the cross-thread path through the shards).
fn cross_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread_free");
    let pool = BufferPool::new(PoolConfig::default()).expect("pool");
    let size = 4 << 10;
    g.bench_function("pool/4KiB", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1024);
            let stop = Arc::new(AtomicBool::new(false));
            let consumer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while let Ok(buf) = rx.recv() {
                        drop(black_box(buf));
                    }
                    stop.store(true, Ordering::Relaxed);
                })
            };
            let start = Instant::now();
            for _ in 0..iters {
                let buf = pool.alloc(size).expect("alloc");
                if tx.send(buf).is_err() {
                    break;
                }
            }
            drop(tx);
            let _ = consumer.join();
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    single_thread,
    single_thread_cpu_time,
    contended,
    cross_thread
);
criterion_main!(benches);
