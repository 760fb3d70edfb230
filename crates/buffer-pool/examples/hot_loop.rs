//! Tight alloc+free loop, for `perf stat -e task-clock` (CPU time per op,
//! which a loaded machine distorts less than wall-clock benchmarks).
//!
//! `hot_loop [size] [pool|std]` — default `4096 pool`.
use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let std_alloc = args.next().is_some_and(|s| s == "std");
    let n: u64 = 10_000_000;
    let pool = auraio_buffer_pool::BufferPool::with_defaults();
    let layout = Layout::from_size_align(size.max(1), 4096).expect("layout");
    let t = std::time::Instant::now();
    for _ in 0..n {
        if std_alloc {
            // SAFETY: non-zero size; freed with the same layout.
            unsafe {
                let p = alloc(layout);
                assert!(!p.is_null());
                p.write_volatile(1);
                dealloc(black_box(p), layout);
            }
        } else {
            let mut b = pool.alloc(black_box(size)).expect("alloc");
            b[0] = 1;
            drop(black_box(b));
        }
    }
    let what = if std_alloc { "std::alloc" } else { "pool" };
    println!(
        "{what} {size} B: {:.2} ns/op wall",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
