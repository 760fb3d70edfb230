//! Random alloc/free churn: memory held by the pool (obtained from the
//! system but not in use) never exceeds what the high-water marks allow, and
//! the pool's `bytes_from_system` is the allocator's truth.
//!
//! 200k operations by default; `AURAIO_SOAK=1` runs 10 million.

mod common;

use auraio_buffer_pool::{class_size, Buffer, BufferPool, PoolConfig, NUM_CLASSES};
use common::{live_bytes, Counting};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[global_allocator]
static GLOBAL: Counting = Counting;

const MAX_HELD: usize = 300;

fn total_ops() -> u64 {
    if std::env::var("AURAIO_SOAK").is_ok_and(|v| v == "1") {
        10_000_000
    } else {
        200_000
    }
}

/// Bytes the pool may keep beyond what is in use: every cache and every
/// shard holds at most the class's high-water mark (classes never used hold
/// nothing).
fn held_bound(pool: &BufferPool, caches: u64) -> u64 {
    let s = pool.stats();
    s.classes
        .iter()
        .filter(|row| row.allocations > 0)
        .map(|row| (caches + s.shards) * row.high_water * row.size)
        .sum()
}

fn pick_len(rng: &mut SmallRng) -> usize {
    // Mostly small classes, some up to 1 MiB.
    let class = if rng.gen_bool(0.9) {
        rng.gen_range(0..=4)
    } else {
        rng.gen_range(5..=8)
    };
    let hi = class_size(class);
    let lo = if class == 0 {
        1
    } else {
        class_size(class - 1) + 1
    };
    rng.gen_range(lo..=hi)
}

fn tag_of(b: &Buffer, seed: u64) -> u8 {
    (b.len() as u64 ^ seed) as u8
}

/// One thread's churn: bursts of allocation and of freeing, so the held set
/// swings between 0 and MAX_HELD and the caches overflow their marks.
/// `check` runs every 1024 ops with the current in-use bytes.
fn churn(pool: &BufferPool, ops: u64, seed: u64, mut check: impl FnMut(u64)) -> Vec<Buffer> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut held: Vec<Buffer> = Vec::new();
    let mut in_use: u64 = 0;
    let mut growing = true;
    for i in 0..ops {
        if rng.gen_ratio(1, 500) {
            growing = !growing;
        }
        let p_alloc = if growing { 0.8 } else { 0.2 };
        if held.len() < MAX_HELD && (held.is_empty() || rng.gen_bool(p_alloc)) {
            let mut b = pool.alloc(pick_len(&mut rng)).expect("alloc");
            let t = tag_of(&b, seed);
            let n = b.len();
            b[0] = t;
            b[n - 1] = t;
            in_use += b.capacity() as u64;
            held.push(b);
        } else {
            let b = held.swap_remove(rng.gen_range(0..held.len()));
            let t = tag_of(&b, seed);
            assert!(b[0] == t && b[b.len() - 1] == t, "contents preserved");
            in_use -= b.capacity() as u64;
        }
        if i % 1024 == 0 {
            check(in_use);
        }
    }
    held
}

#[test]
fn churn_never_holds_more_than_the_high_water_marks() {
    let ops = total_ops();
    // Marks small enough that bursts of up to MAX_HELD buffers overflow
    // them in every tier.
    let pool = BufferPool::new(PoolConfig {
        shards: Some(2),
        high_water: 16,
        batch: 4,
        ..PoolConfig::default()
    })
    .expect("pool");

    // Phase 1: one thread, exact checks against the allocator.
    let mut max_held = 0i64;
    let held = churn(&pool, ops / 2, 1, |in_use| {
        let live = live_bytes();
        let s = pool.stats();
        assert_eq!(
            live as u64, s.bytes_from_system,
            "stats match the allocator"
        );
        assert_eq!(s.bytes_in_use, in_use);
        let held = live - in_use as i64;
        assert!(held >= 0);
        let bound1 = held_bound(&pool, 1);
        assert!(held as u64 <= bound1, "held {held} > bound {bound1}");
        for row in &s.classes {
            assert!(row.cached_in_threads <= row.high_water, "{row:?}");
            assert!(row.cached_in_shards <= s.shards * row.high_water, "{row:?}");
        }
        max_held = max_held.max(held);
    });
    drop(held);
    let s = pool.stats();
    assert!(
        s.system_frees > 0,
        "memory went back to the system under churn"
    );
    println!(
        "phase 1: {} ops, max held {} KiB (bound {} KiB), system allocs {} frees {}",
        ops / 2,
        max_held >> 10,
        held_bound(&pool, 1) >> 10,
        s.system_allocations,
        s.system_frees
    );

    // Phase 2: four threads churning at once, buffers crossing threads.
    let threads = 4u64;
    let bound2 = held_bound(&pool, threads + 1);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || churn(&pool, ops / 2 / threads, 100 + t, |_| {}))
        })
        .collect();
    let mut leftovers = Vec::new();
    for w in workers {
        leftovers.push(w.join().expect("worker"));
    }
    // Freed on this thread, not on the ones that allocated them.
    let in_use: u64 = leftovers
        .iter()
        .flatten()
        .map(|b| b.capacity() as u64)
        .sum();
    let live = live_bytes();
    assert!((live as u64) <= in_use + bound2);
    drop(leftovers);
    let s = pool.stats();
    assert_eq!(s.allocations, s.frees);
    assert_eq!(s.thread_caches, 1, "worker caches were released at exit");
    assert_eq!(live_bytes() as u64, s.bytes_from_system);
    assert!(s.bytes_held <= held_bound(&pool, 1), "{s:#?}");
    for (c, row) in s.classes.iter().enumerate().take(NUM_CLASSES) {
        assert!(
            row.cached_in_shards <= s.shards * row.high_water,
            "class {c}"
        );
        assert_eq!(
            row.system_allocations - row.system_frees,
            row.cached_in_threads + row.cached_in_shards
        );
    }
    drop(pool);
    assert_eq!(live_bytes(), 0, "everything returned when the pool is gone");
}
