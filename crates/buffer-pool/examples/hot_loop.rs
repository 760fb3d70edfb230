//! Tight alloc+free loop for `perf stat` (instructions per op).
use std::hint::black_box;
fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let n: u64 = 10_000_000;
    let pool = auraio_buffer_pool::BufferPool::with_defaults();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut b = pool.alloc(black_box(size)).expect("alloc");
        b[0] = 1;
        black_box(b.as_ptr());
        drop(b);
    }
    println!("{:.2} ns/op", t.elapsed().as_nanos() as f64 / n as f64);
}
