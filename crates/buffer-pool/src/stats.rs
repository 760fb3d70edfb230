//! Pool statistics: the serde snapshot types and the counters behind them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::config::NUM_CLASSES;

/// Counter slots: one per size class plus one for large (direct) buffers.
pub(crate) const SLOTS: usize = NUM_CLASSES + 1;
/// Slot index of large buffers.
pub(crate) const LARGE: usize = NUM_CLASSES;

/// Per-class event counters.
///
/// A thread cache owns one set and is its only writer, so it bumps with a
/// relaxed load + store (no read-modify-write, no bus lock); readers on other
/// threads see a slightly stale but never torn value. Shared sets are bumped
/// with `fetch_add`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) allocations: [AtomicU64; SLOTS],
    pub(crate) frees: [AtomicU64; SLOTS],
    pub(crate) cache_hits: [AtomicU64; SLOTS],
    pub(crate) shard_hits: [AtomicU64; SLOTS],
}

/// Single-writer increment (see [`Counters`]).
#[inline]
pub(crate) fn bump_owned(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Single-writer gauge update.
#[inline]
pub(crate) fn set_owned(c: &AtomicU64, v: u64) {
    c.store(v, Relaxed);
}

/// Multi-writer increment.
#[inline]
pub(crate) fn bump_shared(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Counters {
    /// Adds every counter of `self` into `into` (multi-writer safe).
    pub(crate) fn fold_into(&self, into: &Counters) {
        for i in 0..SLOTS {
            into.allocations[i].fetch_add(self.allocations[i].load(Relaxed), Relaxed);
            into.frees[i].fetch_add(self.frees[i].load(Relaxed), Relaxed);
            into.cache_hits[i].fetch_add(self.cache_hits[i].load(Relaxed), Relaxed);
            into.shard_hits[i].fetch_add(self.shard_hits[i].load(Relaxed), Relaxed);
        }
    }

    /// Adds `self` into the per-class snapshot rows.
    pub(crate) fn add_to(&self, rows: &mut [ClassStats]) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.allocations += self.allocations[i].load(Relaxed);
            row.frees += self.frees[i].load(Relaxed);
            row.cache_hits += self.cache_hits[i].load(Relaxed);
            row.shard_hits += self.shard_hits[i].load(Relaxed);
        }
    }
}

/// Counters owned by one thread cache.
#[derive(Debug, Default)]
pub(crate) struct ThreadStats {
    pub(crate) counters: Counters,
    /// Buffers currently held by the cache, per class (a gauge).
    pub(crate) cached: [AtomicU64; NUM_CLASSES],
}

/// Statistics of one size class (or of the large, uncached requests).
///
/// In a quiescent pool (no alloc/free running concurrently with
/// [`BufferPool::stats`](crate::BufferPool::stats)) these hold exactly:
/// `allocations == cache_hits + shard_hits + system_allocations`,
/// `in_use == allocations - frees`, and
/// `system_allocations - system_frees == in_use + cached_in_threads + cached_in_shards`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Buffer size of the class in bytes (`0` for the large row).
    pub size: u64,
    /// Effective high-water mark: most buffers one cache or one shard keeps.
    pub high_water: u64,
    /// Buffers handed out.
    pub allocations: u64,
    /// Buffers given back.
    pub frees: u64,
    /// Allocations served by the calling thread's cache (no lock).
    pub cache_hits: u64,
    /// Allocations served from a shard's free list.
    pub shard_hits: u64,
    /// Allocations that went to the system allocator.
    pub system_allocations: u64,
    /// Blocks returned to the system allocator.
    pub system_frees: u64,
    /// Buffers currently held by users.
    pub in_use: u64,
    /// Free buffers held by thread caches.
    pub cached_in_threads: u64,
    /// Free buffers held by shards.
    pub cached_in_shards: u64,
}

/// A snapshot of a pool's statistics (serde).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Alignment of every buffer.
    pub alignment: u64,
    /// Number of shards.
    pub shards: u64,
    /// Live thread caches of this pool.
    pub thread_caches: u64,
    /// Buffers handed out (all classes + large).
    pub allocations: u64,
    /// Buffers given back.
    pub frees: u64,
    /// Allocations served by a thread cache.
    pub cache_hits: u64,
    /// Allocations served by a shard.
    pub shard_hits: u64,
    /// Allocations that reached the system allocator (includes large ones).
    pub system_allocations: u64,
    /// Blocks returned to the system allocator.
    pub system_frees: u64,
    /// Requests above the largest class, served directly.
    pub large_allocations: u64,
    /// Bytes (capacity) of buffers held by users.
    pub bytes_in_use: u64,
    /// Bytes of free buffers the pool holds (thread caches + shards).
    pub bytes_held: u64,
    /// Part of `bytes_held` in thread caches.
    pub bytes_held_in_threads: u64,
    /// Part of `bytes_held` in shards.
    pub bytes_held_in_shards: u64,
    /// Bytes currently obtained from the system (in use + held).
    pub bytes_from_system: u64,
    /// One row per size class (4 KiB .. 128 MiB).
    pub classes: Vec<ClassStats>,
    /// The row of large (direct) requests; `size` is 0, capacities vary.
    pub large: ClassStats,
}
