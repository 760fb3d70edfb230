//! Unit tests (non-loom builds).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn small_cfg() -> PoolConfig {
    PoolConfig {
        high_water: 4,
        batch: 2,
        shards: Some(2),
        ..PoolConfig::default()
    }
}

/// Checks the exact accounting identities of a quiescent pool and returns
/// the stats.
fn check_consistent(pool: &BufferPool, live: &[(usize, usize)]) -> PoolStats {
    let s = pool.stats();
    assert_eq!(
        s.allocations,
        s.cache_hits + s.shard_hits + s.system_allocations,
        "{s:#?}"
    );
    assert_eq!(s.allocations - s.frees, live.len() as u64, "{s:#?}");
    for (c, row) in s.classes.iter().enumerate() {
        let want_in_use = live.iter().filter(|&&(class, _)| class == c).count() as u64;
        assert_eq!(row.in_use, want_in_use, "class {c}: {row:?}");
        assert_eq!(
            row.system_allocations - row.system_frees,
            row.in_use + row.cached_in_threads + row.cached_in_shards,
            "class {c}: {row:?}"
        );
        assert_eq!(
            row.allocations,
            row.cache_hits + row.shard_hits + row.system_allocations
        );
        // High-water marks: every cache and every shard keeps <= hw.
        assert!(
            row.cached_in_threads <= s.thread_caches * row.high_water,
            "{row:?}"
        );
        assert!(row.cached_in_shards <= s.shards * row.high_water, "{row:?}");
    }
    let in_use_bytes: u64 = live.iter().map(|&(c, _)| class_size(c) as u64).sum();
    assert_eq!(s.bytes_in_use, in_use_bytes);
    assert_eq!(
        s.bytes_held,
        s.bytes_held_in_threads + s.bytes_held_in_shards
    );
    s
}

#[test]
fn alloc_basic() {
    let pool = BufferPool::with_defaults();
    let mut b = pool.alloc(100).expect("alloc");
    assert_eq!(b.len(), 100);
    assert!(!b.is_empty());
    assert_eq!(b.capacity(), 4096);
    assert_eq!(b.alignment(), 4096);
    assert!(b.is_pooled());
    assert_eq!(b.as_ptr() as usize % 4096, 0);
    b.fill(7);
    assert!(b.iter().all(|&x| x == 7));
    assert_eq!(b.bytes_init(), 100);
    assert_eq!(b.bytes_total(), 100);
    assert_eq!(b.stable_ptr(), b.as_ptr());
    assert_eq!(b.stable_mut_ptr() as *const u8, b.as_ptr());
    let s = pool.stats();
    assert_eq!(s.allocations, 1);
    assert_eq!(s.system_allocations, 1);
    assert_eq!(s.bytes_in_use, 4096);
}

#[test]
fn fresh_memory_is_zeroed_and_alloc_zeroed_clears_recycled() {
    let pool = BufferPool::with_defaults();
    let mut b = pool.alloc(8192).expect("alloc");
    assert!(b.iter().all(|&x| x == 0), "fresh blocks are zeroed");
    b.fill(0xAB);
    let p = b.as_ptr();
    drop(b);
    let z = pool.alloc_zeroed(8000).expect("alloc");
    assert_eq!(z.as_ptr(), p, "recycled from the thread cache");
    assert!(z.iter().all(|&x| x == 0));
}

#[test]
fn capacities_follow_size_classes() {
    let pool = BufferPool::with_defaults();
    for (len, cap) in [
        (1, 4096),
        (4096, 4096),
        (4097, 8192),
        (65536, 65536),
        (65537, 131072),
        (1 << 20, 1 << 20),
        (3 << 20, 4 << 20),
    ] {
        let b = pool.alloc(len).expect("alloc");
        assert_eq!((b.len(), b.capacity()), (len, cap));
        assert_eq!(b.as_ptr() as usize % 4096, 0);
    }
}

#[test]
fn large_requests_bypass_the_classes() {
    let pool = BufferPool::with_defaults();
    let len = MAX_CLASS_SIZE + 1;
    let mut b = pool.alloc(len).expect("alloc");
    assert!(!b.is_pooled());
    assert_eq!(b.len(), len);
    assert_eq!(b.capacity(), MAX_CLASS_SIZE + 4096);
    assert_eq!(b.as_ptr() as usize % 4096, 0);
    b[len - 1] = 9;
    let s = pool.stats();
    assert_eq!(s.large_allocations, 1);
    assert_eq!(s.large.in_use, 1);
    assert_eq!(s.bytes_in_use, (MAX_CLASS_SIZE + 4096) as u64);
    drop(b);
    let s = pool.stats();
    assert_eq!(s.large.system_frees, 1);
    assert_eq!(s.bytes_in_use, 0);
    assert_eq!(s.bytes_held, 0, "large buffers are never kept");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let pool = BufferPool::new(PoolConfig {
        max_size: 1 << 20,
        ..PoolConfig::default()
    })
    .expect("pool");
    assert_eq!(pool.alloc(0).unwrap_err(), PoolError::ZeroSize);
    assert_eq!(
        pool.alloc((1 << 20) + 1).unwrap_err(),
        PoolError::TooLarge {
            requested: (1 << 20) + 1,
            max: 1 << 20
        }
    );
    assert!(matches!(
        BufferPool::with_defaults().alloc(usize::MAX),
        Err(PoolError::TooLarge { .. })
    ));
    for alignment in [0, 100, 256, 4095, 6144] {
        let err = BufferPool::new(PoolConfig {
            alignment,
            ..PoolConfig::default()
        })
        .unwrap_err();
        assert_eq!(err, PoolError::BadAlignment { alignment });
    }
    let io: std::io::Error = PoolError::ZeroSize.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    let mut b = pool.alloc(10).expect("alloc");
    assert!(b.set_len(4097).is_err());
    assert_eq!(b.len(), 10);
}

#[test]
fn set_len_and_truncate_stay_within_capacity() {
    let pool = BufferPool::with_defaults();
    let mut b = pool.alloc(10).expect("alloc");
    b.set_len(4096).expect("within capacity");
    assert_eq!(b.len(), 4096);
    b.truncate(5);
    assert_eq!(b.len(), 5);
    b.truncate(100);
    assert_eq!(b.len(), 5);
    b.set_len(0).expect("zero");
    assert!(b.is_empty());
    assert_eq!(b.spare_capacity().len(), 4096);
}

#[test]
fn configurable_alignment_is_honoured() {
    for alignment in [512, 4096, 65536, 2 << 20] {
        let pool = BufferPool::new(PoolConfig {
            alignment,
            ..PoolConfig::default()
        })
        .expect("pool");
        let bufs: Vec<Buffer> = (0..8)
            .map(|i| pool.alloc(1 + i * 5000).expect("alloc"))
            .collect();
        for b in &bufs {
            assert_eq!(b.as_ptr() as usize % alignment, 0, "alignment {alignment}");
            assert_eq!(b.alignment(), alignment);
        }
    }
}

#[test]
fn freed_buffers_are_reused_from_the_thread_cache() {
    let pool = BufferPool::with_defaults();
    let p = pool.alloc(4096).expect("alloc").as_ptr();
    for _ in 0..10 {
        let b = pool.alloc(4000).expect("alloc");
        assert_eq!(b.as_ptr(), p);
    }
    let s = pool.stats();
    assert_eq!(s.system_allocations, 1);
    assert_eq!(s.cache_hits, 10);
    assert_eq!(s.thread_caches, 1);
    assert_eq!(s.bytes_held_in_threads, 4096);
    pool.trim_thread_cache();
    let s = pool.stats();
    assert_eq!(s.bytes_held_in_threads, 0);
    assert_eq!(s.bytes_held_in_shards, 4096);
    let b = pool.alloc(1).expect("alloc");
    assert_eq!(b.as_ptr(), p, "refilled from the shard");
    assert_eq!(pool.stats().shard_hits, 1);
}

#[test]
fn caches_flush_to_shards_and_shards_to_the_system() {
    let pool = BufferPool::new(small_cfg()).expect("pool"); // hw 4, batch 2, 2 shards
    let bufs: Vec<Buffer> = (0..20).map(|_| pool.alloc(4096).expect("alloc")).collect();
    assert_eq!(pool.stats().system_allocations, 20);
    drop(bufs);
    let s = check_consistent(&pool, &[]);
    // The cache keeps <= 4, the home shard <= 4, the rest went to the system.
    assert!(s.classes[0].cached_in_threads <= 4);
    assert!(s.classes[0].cached_in_shards <= 4);
    assert!(s.system_frees >= 12, "{s:#?}");
}

#[test]
fn high_water_zero_keeps_nothing() {
    let pool = BufferPool::new(PoolConfig {
        high_water: 0,
        ..PoolConfig::default()
    })
    .expect("pool");
    for _ in 0..5 {
        drop(pool.alloc(4096).expect("alloc"));
    }
    let s = check_consistent(&pool, &[]);
    assert_eq!(s.system_allocations, 5);
    assert_eq!(s.system_frees, 5);
    assert_eq!(s.bytes_held, 0);
}

#[test]
fn without_thread_cache_the_shards_serve() {
    let pool = BufferPool::new(PoolConfig {
        thread_cache: false,
        ..small_cfg()
    })
    .expect("pool");
    let mut live = Vec::new();
    for i in 0..10 {
        live.push(pool.alloc(4096 * (1 + i % 2)).expect("alloc"));
    }
    live.truncate(3);
    for _ in 0..4 {
        live.push(pool.alloc(4096).expect("alloc"));
    }
    let s = pool.stats();
    assert_eq!(s.thread_caches, 0);
    assert_eq!(s.cache_hits, 0);
    assert_eq!(s.shard_hits, 3, "{s:#?}");
    assert_eq!(s.system_allocations, 11);
    let classes: Vec<(usize, usize)> = live
        .iter()
        .map(|b| (class_of(b.capacity()).unwrap_or(99), 0))
        .collect();
    check_consistent(&pool, &classes);
}

#[test]
fn several_pools_on_one_thread_each_get_a_cache() {
    let pools: Vec<BufferPool> = (0..5).map(|_| BufferPool::with_defaults()).collect();
    let mut ptrs: Vec<HashSet<usize>> = vec![HashSet::new(); pools.len()];
    for round in 0..50 {
        let bufs: Vec<Buffer> = pools
            .iter()
            .map(|p| p.alloc(4000 + round).expect("alloc"))
            .collect();
        for (i, b) in bufs.iter().enumerate() {
            ptrs[i].insert(b.as_ptr() as usize);
        }
    }
    for (i, p) in pools.iter().enumerate() {
        let s = p.stats();
        assert_eq!(s.thread_caches, 1, "pool {i} has a cache on this thread");
        assert_eq!(s.system_allocations, 1, "pool {i}: {s:#?}");
        assert_eq!(s.cache_hits, 49, "pool {i} served from its own cache");
        assert_eq!(ptrs[i].len(), 1);
    }
    let all: HashSet<usize> = ptrs.iter().flatten().copied().collect();
    assert_eq!(all.len(), pools.len(), "buffers go back to their own pool");
}

#[test]
fn dropped_pool_caches_are_released_on_next_use() {
    let a = BufferPool::with_defaults();
    let b = BufferPool::with_defaults();
    let held = a.alloc(4096).expect("alloc");
    drop(b.alloc(4096).expect("alloc")); // b's cache on this thread now holds one
    let b_id = b.id();
    let b2 = b.clone();
    drop(b);
    assert_eq!(
        b2.stats().bytes_held_in_threads,
        4096,
        "clone keeps the pool open"
    );
    drop(b2); // closes b: its cache on this thread is released right away
    release_dropped_pool_caches();
    assert_ne!(a.id(), b_id);
    drop(held);
    assert_eq!(a.stats().thread_caches, 1);
}

#[test]
fn pool_dropped_with_buffers_outstanding() {
    let pool = BufferPool::new(small_cfg()).expect("pool");
    let mut bufs: Vec<Buffer> = (0..10)
        .map(|i| pool.alloc(4096 << (i % 3)).expect("a"))
        .collect();
    for (i, b) in bufs.iter_mut().enumerate() {
        b.fill(i as u8);
    }
    drop(pool);
    // Still valid, readable and writable.
    for (i, b) in bufs.iter_mut().enumerate() {
        assert!(b.iter().all(|&x| x == i as u8));
        b.fill(0xEE);
    }
    // Freed on several threads, some after their thread's cache is gone.
    let half = bufs.split_off(5);
    std::thread::spawn(move || drop(half))
        .join()
        .expect("thread");
    drop(bufs);
}

#[test]
fn cross_thread_free_returns_memory_to_the_pool() {
    let pool = BufferPool::new(small_cfg()).expect("pool");
    let bufs: Vec<Buffer> = (0..8).map(|_| pool.alloc(8192).expect("alloc")).collect();
    let ptrs: HashSet<usize> = bufs.iter().map(|b| b.as_ptr() as usize).collect();
    std::thread::spawn(move || drop(bufs))
        .join()
        .expect("thread");
    let s = check_consistent(&pool, &[]);
    assert_eq!(
        s.thread_caches, 1,
        "the other thread's cache left at its exit"
    );
    assert_eq!(s.classes[1].cached_in_threads, 0);
    assert!(s.classes[1].cached_in_shards > 0);
    // This thread refills from the shard the other thread flushed into.
    let again: Vec<Buffer> = (0..4).map(|_| pool.alloc(8192).expect("alloc")).collect();
    let reused = again
        .iter()
        .filter(|b| ptrs.contains(&(b.as_ptr() as usize)))
        .count();
    assert!(reused >= 1, "{:#?}", pool.stats());
    assert!(pool.stats().shard_hits >= 1);
}

#[test]
fn many_threads_alloc_and_free_concurrently() {
    let pool = BufferPool::new(small_cfg()).expect("pool");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut held: Vec<Buffer> = Vec::new();
                for i in 0..2000usize {
                    if i % 3 == 2 {
                        if let Some(b) = held.pop() {
                            assert!(b.iter().all(|&x| x == (t * 31 + b.len()) as u8));
                        }
                    } else {
                        let mut b = pool.alloc(1 + (i * 7919) % 70000).expect("alloc");
                        let v = (t * 31 + b.len()) as u8;
                        b.fill(v);
                        held.push(b);
                    }
                    if held.len() > 40 {
                        held.clear();
                    }
                }
                held // handed back to the main thread, freed there
            })
        })
        .collect();
    let mut rest = Vec::new();
    for t in threads {
        rest.extend(t.join().expect("thread"));
    }
    let live: Vec<(usize, usize)> = rest
        .iter()
        .map(|b| (class_of(b.capacity()).unwrap_or(99), 0))
        .collect();
    check_consistent(&pool, &live);
    drop(rest);
    check_consistent(&pool, &[]);
}

#[test]
fn fixed_buffers_map_index_and_offset() {
    let pool = BufferPool::with_defaults();
    let set = FixedBuffers::with_slots_per_region(&pool, 10, 5000, 4).expect("set");
    assert_eq!(set.count(), 10);
    assert_eq!(set.slot_size(), 8192);
    assert_eq!(set.iovecs().len(), 3);
    for iov in set.iovecs() {
        assert_eq!(iov.iov_len, 4 * 8192);
        assert_eq!(iov.iov_base as usize % 4096, 0);
    }
    let mut taken = Vec::new();
    while let Some(mut fb) = set.take() {
        let idx = fb.buf_index() as usize;
        let iov = set.iovecs()[idx];
        let base = iov.iov_base as usize;
        let p = fb.stable_mut_ptr() as usize;
        assert_eq!(p, base + fb.offset());
        assert!(fb.offset() + fb.capacity() <= iov.iov_len);
        assert_eq!(fb.slot() / 4, idx);
        assert_eq!(p % 4096, 0);
        let v = fb.slot() as u8;
        fb.fill(v);
        taken.push(fb);
    }
    assert_eq!(taken.len(), 10);
    assert_eq!(set.available(), 0);
    for fb in &taken {
        assert!(
            fb.iter().all(|&x| x == fb.slot() as u8),
            "slots do not overlap"
        );
        assert_eq!(fb.bytes_total(), 8192);
    }
    let mut one = taken.pop().expect("one");
    assert!(one.set_len(100).is_ok());
    assert_eq!(one.bytes_init(), 100);
    assert!(one.set_len(8193).is_err());
    drop(one);
    assert_eq!(set.available(), 1);
    drop(set); // slots keep the memory alive
    assert!(taken[0].iter().all(|&x| x == taken[0].slot() as u8));
}

#[test]
fn fixed_buffers_reject_bad_requests() {
    let pool = BufferPool::with_defaults();
    for (count, size, per) in [
        (0, 4096, 1),
        (4, 0, 1),
        (4, 4096, 0),
        (MAX_REGIONS + 1, 4096, 1),
    ] {
        assert!(matches!(
            FixedBuffers::with_slots_per_region(&pool, count, size, per),
            Err(PoolError::InvalidRegistration { .. })
        ));
    }
    assert!(FixedBuffers::new(&pool, 2, usize::MAX).is_err());
    let set = FixedBuffers::new(&pool, 2, 4096).expect("set");
    assert_eq!(set.iovecs().len(), 2);
    assert_eq!(
        set.take().map(|b| (b.buf_index(), b.offset())),
        Some((0, 0))
    );
}

#[test]
fn slices_are_owned_windows() {
    let pool = BufferPool::with_defaults();
    let mut b = pool.alloc(100).expect("alloc");
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    let base = b.as_ptr() as usize;
    let mut s = b.slice(10..20).expect("slice");
    assert_eq!((s.start(), s.end(), s.len()), (10, 20, 10));
    assert_eq!(&s[..], &(10u8..20).collect::<Vec<u8>>()[..]);
    assert_eq!(s.stable_ptr() as usize, base + 10);
    assert_eq!(s.bytes_total(), 10);
    s.fill(0xFF);
    let b = s.into_inner();
    assert_eq!(b.len(), 100);
    assert!(b[10..20].iter().all(|&x| x == 0xFF));
    assert_eq!(b[9], 9);
    assert_eq!(b[20], 20);
    // Up to the capacity, beyond the length.
    let s = b.slice(50..).expect("slice");
    assert_eq!(s.len(), 50, "unbounded end is the length");
    let b = s.into_inner();
    let s = b.slice(4000..=4095).expect("slice");
    assert_eq!(s.len(), 96);
    assert_eq!(s.get_ref().len(), 100);
    let b = s.into_inner();
    let err = b.slice(0..4097).expect_err("beyond capacity");
    assert_eq!((err.start, err.end), (0, 4097));
    assert_eq!(err.buffer[20], 20, "the buffer comes back in the error");
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = pool.alloc(10).expect("alloc").slice(5..2);
    assert!(reversed.is_err());
}

#[test]
fn debug_output_is_short() {
    let pool = BufferPool::with_defaults();
    let bufs: Vec<Buffer> = (0..100).map(|_| pool.alloc(4096).expect("alloc")).collect();
    drop(bufs);
    let s = format!("{pool:?}");
    assert!(s.starts_with("BufferPool"), "{s}");
    assert!(s.len() < 1000, "{s}");
    let b = pool.alloc(5).expect("alloc");
    assert!(format!("{b:?}").contains("len: 5"));
}

#[test]
fn stats_are_serde() {
    fn assert_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_serde::<PoolStats>();
    assert_serde::<ClassStats>();
    assert_serde::<PoolConfig>();
    let s = BufferPool::with_defaults().stats();
    assert_eq!(s.classes.len(), NUM_CLASSES);
    assert_eq!(s.alignment, 4096);
}

#[test]
fn buffer_is_send_and_sync_pool_is_clone_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Buffer>();
    check::<BufferPool>();
    check::<FixedBuffers>();
    check::<FixedBuffer>();
    check::<BufferSlice>();
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    Free(usize),
    Trim,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop_oneof![
            1usize..=4096,
            4095usize..=4097,
            4097usize..=70_000,
            (1usize << 20) - 1..=(1 << 20) + 1,
        ]
        .prop_map(Op::Alloc),
        4 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Trim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random alloc/free sequences: alignment always honoured, contents
    /// preserved while held, buffers never handed out twice, stats exact.
    #[test]
    fn random_sequences_keep_invariants(
        ops in proptest::collection::vec(op(), 1..200),
        align_shift in 9u32..=13,
    ) {
        let alignment = 1usize << align_shift;
        let pool = BufferPool::new(PoolConfig { alignment, ..small_cfg() }).expect("pool");
        let mut live: Vec<(Buffer, u8)> = Vec::new();
        let mut tag = 0u8;
        for op in ops {
            match op {
                Op::Alloc(len) => {
                    let mut b = pool.alloc(len).expect("alloc");
                    prop_assert_eq!(b.as_ptr() as usize % alignment, 0);
                    prop_assert_eq!(b.len(), len);
                    prop_assert!(b.capacity() >= len);
                    let p = b.as_ptr() as usize;
                    for (other, _) in &live {
                        let q = other.as_ptr() as usize;
                        prop_assert!(p + b.capacity() <= q || q + other.capacity() <= p,
                            "overlapping buffers");
                    }
                    tag = tag.wrapping_add(1);
                    b.fill(tag);
                    live.push((b, tag));
                }
                Op::Free(i) if !live.is_empty() => {
                    let (b, t) = live.swap_remove(i % live.len());
                    prop_assert!(b.iter().all(|&x| x == t), "contents changed while held");
                }
                Op::Free(_) => {}
                Op::Trim => pool.trim_thread_cache(),
            }
        }
        for (b, t) in &live {
            prop_assert!(b.iter().all(|&x| x == *t));
        }
        let classes: Vec<(usize, usize)> =
            live.iter().map(|(b, _)| (class_of(b.capacity()).unwrap_or(99), 0)).collect();
        check_consistent(&pool, &classes);
        live.clear();
        check_consistent(&pool, &[]);
    }
}

#[test]
fn alloc_result_is_no_bigger_than_a_buffer() {
    // PoolError fits beside Buffer's non-null pointer, so the Result needs
    // no separate tag (this keeps the hot path's result in registers).
    assert!(std::mem::size_of::<PoolError>() <= 24);
    assert_eq!(
        std::mem::size_of::<Result<Buffer, PoolError>>(),
        std::mem::size_of::<Buffer>()
    );
}
