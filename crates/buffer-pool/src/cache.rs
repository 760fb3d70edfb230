//! The per-thread cache tier.
//!
//! A [`ThreadCache`] is a plain struct owned by exactly one thread: its free
//! lists are touched without any lock. The thread-local registry in
//! [`crate::tls`] keeps one per (thread, pool); loom models create them
//! explicitly, one per model thread.

/// Pool-state counts a cache acquires at once (see [`crate::refcount`]).
const CREDIT_BATCH: usize = 64;

use crate::config::{class_size, PoolError, NUM_CLASSES};
use crate::refcount::Counted;
use crate::shared::{Block, Shared};
use crate::stats::{bump_owned, set_owned, ThreadStats};

/// One thread's cache of free blocks for one pool.
#[derive(Debug)]
pub(crate) struct ThreadCache {
    /// The cache's own count on the pool state.
    shared: Counted<Shared>,
    /// Further counts held on behalf of buffers this cache will hand out
    /// (see [`crate::refcount`]).
    credit: usize,
    /// The shard this cache refills from and flushes to first.
    shard: usize,
    lists: [Vec<Block>; NUM_CLASSES],
    stats: std::sync::Arc<ThreadStats>,
}

impl ThreadCache {
    pub(crate) fn new(shared: &Counted<Shared>) -> Self {
        let stats = std::sync::Arc::new(ThreadStats::default());
        shared.register(stats.clone());
        Self {
            shard: shared.assign_shard(),
            shared: shared.clone_one(),
            credit: 0,
            lists: std::array::from_fn(|_| Vec::new()),
            stats,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// One count on the pool state for a buffer being handed out.
    #[inline(always)]
    pub(crate) fn take_ref(&mut self) -> Counted<Shared> {
        if self.credit == 0 {
            self.shared.acquire(CREDIT_BATCH);
            self.credit = CREDIT_BATCH;
        }
        self.credit -= 1;
        // SAFETY: one unit of credit, acquired above or earlier, is spent.
        unsafe { self.shared.spend_credit() }
    }

    /// Takes back a returning buffer's count as credit.
    #[inline]
    pub(crate) fn give_ref(&mut self, r: Counted<Shared>) {
        match r.into_credit(&self.shared) {
            Ok(()) => {
                self.credit += 1;
                if self.credit > 2 * CREDIT_BATCH {
                    // SAFETY: we own `credit` units and give back fewer;
                    // `self.shared` is a further count.
                    unsafe { self.shared.release(CREDIT_BATCH) };
                    self.credit -= CREDIT_BATCH;
                }
            }
            Err(other) => drop(other),
        }
    }

    /// Hands out a block of `class` if this cache holds one (no lock).
    #[inline(always)]
    pub(crate) fn alloc_cached(&mut self, class: usize) -> Option<Block> {
        let list = &mut self.lists[class];
        let b = list.pop()?;
        let c = &self.stats.counters;
        bump_owned(&c.allocations[class]);
        bump_owned(&c.cache_hits[class]);
        set_owned(&self.stats.cached[class], list.len() as u64);
        Some(b)
    }

    /// Hands out a block of `class`: from this cache (no lock), else a batch
    /// from the shards, else one fresh block from the system.
    #[inline]
    pub(crate) fn alloc(&mut self, class: usize) -> Result<Block, PoolError> {
        match self.alloc_cached(class) {
            Some(b) => Ok(b),
            None => self.refill(class),
        }
    }

    #[cold]
    fn refill(&mut self, class: usize) -> Result<Block, PoolError> {
        let batch = self.shared.batch[class];
        let list = &mut self.lists[class];
        let got = self.shared.shard_take(self.shard, class, batch, list);
        if got > 0 {
            if let Some(b) = list.pop() {
                let c = &self.stats.counters;
                bump_owned(&c.allocations[class]);
                bump_owned(&c.shard_hits[class]);
                set_owned(&self.stats.cached[class], list.len() as u64);
                return Ok(b);
            }
        }
        let b = self.shared.system_alloc(class_size(class), class)?;
        bump_owned(&self.stats.counters.allocations[class]);
        Ok(b)
    }

    /// Takes back a block of `class`. When the cache is at its high-water
    /// mark a batch moves to the shard first (which passes its own excess on
    /// to the system).
    #[inline]
    pub(crate) fn free(&mut self, class: usize, block: Block) {
        bump_owned(&self.stats.counters.frees[class]);
        let hw = self.shared.high_water[class];
        let list = &mut self.lists[class];
        if list.len() >= hw {
            self.flush(class, block);
            return;
        }
        list.push(block);
        set_owned(&self.stats.cached[class], list.len() as u64);
    }

    #[cold]
    fn flush(&mut self, class: usize, block: Block) {
        let hw = self.shared.high_water[class];
        let list = &mut self.lists[class];
        if hw == 0 {
            let mut one = vec![block];
            self.shared.shard_put(self.shard, class, &mut one);
            return;
        }
        // Move the oldest (coldest) `batch` blocks; keep the hot top.
        let n = self.shared.batch[class].min(list.len());
        let mut out: Vec<Block> = list.drain(..n).collect();
        list.push(block);
        set_owned(&self.stats.cached[class], list.len() as u64);
        self.shared.shard_put(self.shard, class, &mut out);
    }

    /// Returns every cached block to the shards (or the system once the pool
    /// is closed).
    pub(crate) fn release_all(&mut self) {
        for class in 0..NUM_CLASSES {
            let mut blocks = std::mem::take(&mut self.lists[class]);
            set_owned(&self.stats.cached[class], 0);
            if !blocks.is_empty() {
                self.shared.shard_put(self.shard, class, &mut blocks);
            }
        }
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.release_all();
        self.shared.unregister(&self.stats);
        if self.credit > 0 {
            // SAFETY: we own `credit` units; `self.shared` (dropped right
            // after this) is a further count.
            unsafe { self.shared.release(self.credit) };
            self.credit = 0;
        }
    }
}

/// Fallback used when no thread cache is reachable (TLS being torn down or
/// already borrowed): free straight to a shard.
pub(crate) fn free_without_cache(shared: &Shared, class: usize, block: Block) {
    shared.free_uncached(class, block);
}

/// Fallback allocation without a thread cache.
pub(crate) fn alloc_without_cache(shared: &Shared, class: usize) -> Result<Block, PoolError> {
    shared.alloc_uncached(class)
}
