//! The per-thread cache tier.
//!
//! A [`ThreadCache`] is a plain struct owned by exactly one thread: its free
//! lists are touched without any lock. The thread-local registry in
//! [`crate::tls`] keeps one per (thread, pool); loom models create them
//! explicitly, one per model thread.

use crate::config::{class_size, PoolError, NUM_CLASSES};
use crate::shared::{Block, Shared};
use crate::stats::{bump_owned, set_owned, ThreadStats};
use crate::sync::Arc;

/// One thread's cache of free blocks for one pool.
#[derive(Debug)]
pub(crate) struct ThreadCache {
    shared: Arc<Shared>,
    /// The shard this cache refills from and flushes to first.
    shard: usize,
    lists: [Vec<Block>; NUM_CLASSES],
    stats: std::sync::Arc<ThreadStats>,
}

impl ThreadCache {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let stats = std::sync::Arc::new(ThreadStats::default());
        shared.register(stats.clone());
        Self {
            shard: shared.assign_shard(),
            shared: Arc::clone(shared),
            lists: std::array::from_fn(|_| Vec::new()),
            stats,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Hands out a block of `class`: from this cache (no lock), else a batch
    /// from the shards, else one fresh block from the system.
    #[inline]
    pub(crate) fn alloc(&mut self, class: usize) -> Result<Block, PoolError> {
        let list = &mut self.lists[class];
        if let Some(b) = list.pop() {
            let c = &self.stats.counters;
            bump_owned(&c.allocations[class]);
            bump_owned(&c.cache_hits[class]);
            set_owned(&self.stats.cached[class], list.len() as u64);
            return Ok(b);
        }
        self.refill(class)
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
