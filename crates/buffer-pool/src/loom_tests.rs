//! loom models of the pool's concurrent parts. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib -p auraio-buffer-pool -- loom`.
//!
//! Raw blocks come from `loom::alloc`, the pool state carries a
//! `loom::alloc::Track`, and thread caches live in `loom::thread_local!`, so
//! every model also fails on a leaked block, a leaked pool state or a leaked
//! cache.

use std::collections::HashSet;
use std::sync::Mutex as StdMutex;

use loom::thread;

use crate::cache::ThreadCache;
use crate::config::PoolConfig;
use crate::refcount::Counted;
use crate::shared::{Block, Shared};
use crate::sync::Arc;
use crate::{BufferPool, PoolStats};

fn tiny_cfg() -> PoolConfig {
    PoolConfig {
        high_water: 1,
        batch: 1,
        shards: Some(1),
        ..PoolConfig::default()
    }
}

/// Blocks currently handed out to "users"; inserting one twice means the
/// pool gave the same memory to two owners.
#[derive(Default)]
struct Ledger(StdMutex<HashSet<usize>>);

impl Ledger {
    fn out_ptr(&self, p: *const u8) {
        let fresh = self
            .0
            .lock()
            .map(|mut s| s.insert(p as usize))
            .unwrap_or(false);
        assert!(fresh, "memory handed out twice");
    }
    fn back_ptr(&self, p: *const u8) {
        let had = self
            .0
            .lock()
            .map(|mut s| s.remove(&(p as usize)))
            .unwrap_or(false);
        assert!(had, "memory returned that was not out");
    }
    fn out(&self, b: &Block) {
        self.out_ptr(b.0.as_ptr());
    }
    fn back(&self, b: &Block) {
        self.back_ptr(b.0.as_ptr());
    }
}

fn quiescent_identities(s: &PoolStats) {
    assert_eq!(
        s.allocations,
        s.cache_hits + s.shard_hits + s.system_allocations
    );
    for row in &s.classes {
        assert_eq!(
            row.system_allocations - row.system_frees,
            row.in_use + row.cached_in_threads + row.cached_in_shards,
            "{row:?}"
        );
    }
}

/// Thread A overflows its cache and flushes batches to the shard while
/// thread B, with an empty cache, refills from that shard (and flushes back).
/// No block may be handed out twice, none lost.
#[test]
fn loom_cache_flush_races_refill() {
    loom::model(|| {
        let shared = Counted::new(Shared::build(tiny_cfg()));
        let ledger = Arc::new(Ledger::default());

        let mut cache_a = ThreadCache::new(&shared);
        let blocks: Vec<Block> = (0..3).map(|_| cache_a.alloc(0).expect("alloc")).collect();
        for b in &blocks {
            ledger.out(b);
        }

        let b = {
            let shared = shared.clone_one();
            let ledger = ledger.clone();
            thread::spawn(move || {
                let mut cache_b = ThreadCache::new(&shared);
                let x = cache_b.alloc(0).expect("alloc");
                ledger.out(&x);
                let y = cache_b.alloc(0).expect("alloc");
                ledger.out(&y);
                for blk in [&x, &y] {
                    // SAFETY: writing and reading back our own block.
                    unsafe { blk.0.as_ptr().write(0xB) };
                    // SAFETY: as above; nobody else may own it.
                    assert_eq!(unsafe { blk.0.as_ptr().read() }, 0xB);
                }
                ledger.back(&x);
                cache_b.free(0, x);
                ledger.back(&y);
                cache_b.free(0, y); // hw = 1: flushes one to the shard
                drop(cache_b); // releases the rest to the shard
            })
        };

        // hw = 1: the second and third frees each flush one to the shard.
        for blk in blocks {
            ledger.back(&blk);
            cache_a.free(0, blk);
        }
        b.join().expect("thread b");

        drop(cache_a);
        let s = shared.stats();
        assert_eq!(s.thread_caches, 0);
        assert_eq!(s.allocations, 5);
        assert_eq!(s.frees, 5);
        quiescent_identities(&s);
        // The shard keeps at most hw = 1; the rest went back to the system.
        assert!(s.classes[0].cached_in_shards <= 1);
        drop(shared); // loom's leak checker sees every block freed
    });
}

/// The pool closes while a cache flushes into a shard: whichever wins the
/// shard lock, no block stays parked in a closed pool's shard.
#[test]
fn loom_close_races_flush() {
    loom::model(|| {
        let shared = Counted::new(Shared::build(tiny_cfg()));
        let mut cache = ThreadCache::new(&shared);
        let a = cache.alloc(0).expect("alloc");
        let b = cache.alloc(0).expect("alloc");
        let closer = {
            let shared = shared.clone_one();
            thread::spawn(move || shared.close())
        };
        cache.free(0, a);
        cache.free(0, b); // flushes one block to the shard
        closer.join().expect("closer");
        drop(cache); // releases the rest: to the system, the pool is closed
        let s = shared.stats();
        assert_eq!(s.classes[0].cached_in_shards, 0, "{s:#?}");
        assert_eq!(s.system_allocations, s.system_frees);
        drop(shared);
    });
}

/// A buffer allocated on one thread is freed on another and its memory is
/// reused (by either thread); no memory is ever owned by two buffers at once
/// and contents survive while owned.
#[test]
fn loom_buffer_freed_on_one_thread_reused_on_another() {
    loom::model(|| {
        let pool = BufferPool::new(tiny_cfg()).expect("pool");
        let owned = Arc::new(Ledger::default());
        let mut b1 = pool.alloc(100).expect("alloc");
        owned.out_ptr(b1.as_ptr());
        b1.fill(1);
        let p1 = b1.as_ptr() as usize;
        let pool_t = pool.clone();
        let owned_t = owned.clone();
        let t = thread::spawn(move || {
            assert!(b1.iter().all(|&x| x == 1));
            owned_t.back_ptr(b1.as_ptr());
            drop(b1); // into this thread's cache...
                      // ...and on to the shard. (A real thread does this at exit, before
                      // `join` returns; loom's `join` may return before a model thread's
                      // thread-locals are dropped, so the model releases explicitly.)
            pool_t.trim_thread_cache();
        });
        let mut b2 = pool.alloc(100).expect("alloc");
        owned.out_ptr(b2.as_ptr());
        b2.fill(2);
        t.join().expect("thread");
        let mut b3 = pool.alloc(100).expect("alloc");
        owned.out_ptr(b3.as_ptr());
        b3.fill(3);
        assert!(b2.iter().all(|&x| x == 2), "b2 kept its contents");
        let s = pool.stats();
        assert_eq!(s.allocations - s.frees, 2);
        // b1's block was freed on the other thread and reused here.
        assert!(
            b2.as_ptr() as usize == p1 || b3.as_ptr() as usize == p1,
            "{s:#?}"
        );
        assert_eq!(s.system_allocations, 2);
        assert_eq!(s.shard_hits, 1);
        quiescent_identities(&s);
        drop((b2, b3, pool));
    });
}

/// The pool is dropped on one thread while another still holds a buffer and
/// has a thread cache with memory in it: the buffer stays valid, and every
/// block is freed once the buffer and the cache are gone.
#[test]
fn loom_pool_drop_with_buffers_outstanding() {
    loom::model(|| {
        let pool = BufferPool::new(tiny_cfg()).expect("pool");
        let mut held = pool.alloc(10).expect("alloc");
        held.fill(7);
        let p = pool.clone();
        let t = thread::spawn(move || {
            // Leaves one block in this thread's cache...
            drop(p.alloc(10).expect("alloc"));
            drop(p);
            // ...while the main thread may already have dropped the pool.
            assert!(held.iter().all(|&x| x == 7));
            held.fill(8);
            drop(held);
        });
        drop(pool);
        t.join().expect("thread");
        // Everything (blocks, pool state, caches) must be gone: loom's leak
        // checker fails the model otherwise.
    });
}
