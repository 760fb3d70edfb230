//! State shared by every handle, thread cache and buffer of one pool:
//! the sharded free lists, the system-allocator tier and the counters.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::config::{class_size, PoolConfig, PoolError, NUM_CLASSES};
use crate::stats::{bump_shared, ClassStats, Counters, PoolStats, ThreadStats, LARGE, SLOTS};
use crate::sync::{self, lock, AtomicBool, Mutex};

/// Source of pool ids; ids are never reused, so a thread cache keyed by id can
/// never be confused with a later pool allocated at the same address.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// One raw block of class-sized, pool-aligned memory, owned by whoever holds
/// the `Block` (a free list, a cache, or a `Buffer`).
#[derive(Debug)]
pub(crate) struct Block(pub(crate) NonNull<u8>);

// SAFETY: a Block is a uniquely owned heap allocation (like a Box<[u8]>);
// moving its ownership to another thread is sound.
unsafe impl Send for Block {}

/// One shard: a locked free list per size class.
#[derive(Debug)]
pub(crate) struct Shard {
    lists: [Mutex<Vec<Block>>; NUM_CLASSES],
    /// Mirror of each list's length, written under the list's lock; read
    /// without it for statistics and to skip empty shards when stealing.
    counts: [AtomicUsize; NUM_CLASSES],
}

impl Shard {
    fn new() -> Self {
        Self {
            lists: std::array::from_fn(|_| Mutex::new(Vec::new())),
            counts: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }
}

/// The shared heart of a pool.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) cfg: PoolConfig,
    pub(crate) alignment: usize,
    pub(crate) high_water: [usize; NUM_CLASSES],
    pub(crate) batch: [usize; NUM_CLASSES],
    shards: Box<[CachePadded<Shard>]>,
    /// Set when the last `BufferPool` handle is dropped: from then on freed
    /// memory goes straight back to the system.
    closed: AtomicBool,
    /// Round-robin shard assignment for new thread caches.
    next_shard: AtomicUsize,
    /// Counters of paths that bypass thread caches, plus the folded counters
    /// of thread caches that are gone.
    pub(crate) global: Counters,
    system_allocs: [AtomicU64; SLOTS],
    system_frees: [AtomicU64; SLOTS],
    large_bytes: AtomicU64,
    /// Counters of live thread caches (std mutex: statistics only, never
    /// held across anything that could block or yield).
    registry: std::sync::Mutex<Vec<std::sync::Arc<ThreadStats>>>,
}

impl Shared {
    pub(crate) fn new(cfg: PoolConfig) -> Result<Self, PoolError> {
        cfg.validate()?;
        Ok(Self::build(cfg))
    }

    /// Builds from a config already known to be valid.
    pub(crate) fn build(cfg: PoolConfig) -> Self {
        let shards = (0..cfg.resolved_shards())
            .map(|_| CachePadded::new(Shard::new()))
            .collect();
        Self {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            alignment: cfg.alignment,
            high_water: std::array::from_fn(|c| cfg.class_high_water(c)),
            batch: std::array::from_fn(|c| cfg.class_batch(c)),
            cfg,
            shards,
            closed: AtomicBool::new(false),
            next_shard: AtomicUsize::new(0),
            global: Counters::default(),
            system_allocs: Default::default(),
            system_frees: Default::default(),
            large_bytes: AtomicU64::new(0),
            registry: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// A shard index for a new thread cache (round robin).
    pub(crate) fn assign_shard(&self) -> usize {
        self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    // ---- system tier -------------------------------------------------------

    fn layout(&self, size: usize) -> Result<Layout, PoolError> {
        Layout::from_size_align(size, self.alignment).map_err(|_| PoolError::OutOfMemory {
            size,
            alignment: self.alignment,
        })
    }

    /// Allocates `size` zeroed bytes from the system. `slot` is the counter
    /// slot (class or [`LARGE`]).
    pub(crate) fn system_alloc(&self, size: usize, slot: usize) -> Result<Block, PoolError> {
        let layout = self.layout(size)?;
        // SAFETY: `layout` has a non-zero size (every class is >= 4 KiB and
        // large requests are > 128 MiB).
        let ptr = unsafe { sync::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or(PoolError::OutOfMemory {
            size,
            alignment: self.alignment,
        })?;
        // Zero once, at birth: every byte of a block is initialized from here
        // on, which is what makes `Deref<Target = [u8]>` on a recycled buffer
        // sound. (Recycled buffers keep their previous contents.)
        // SAFETY: `ptr` is valid for writes of `size` bytes (just allocated).
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, size) };
        bump_shared(&self.system_allocs[slot]);
        Ok(Block(ptr))
    }

    /// Returns a block of `size` bytes to the system.
    pub(crate) fn system_free(&self, block: Block, size: usize, slot: usize) {
        // The same layout was valid at allocation, so this cannot fail; if
        // it ever did, leaking the block would be the only safe answer.
        if let Ok(layout) = self.layout(size) {
            // SAFETY: the block was allocated by `system_alloc` of this pool
            // with the same size and alignment, and ownership of it is given
            // up here.
            unsafe { sync::dealloc(block.0.as_ptr(), layout) };
            bump_shared(&self.system_frees[slot]);
        }
    }

    /// Allocates a request above the largest class directly: `cap` bytes
    /// (the request rounded up to the alignment).
    pub(crate) fn alloc_large(&self, cap: usize) -> Result<Block, PoolError> {
        let b = self.system_alloc(cap, LARGE)?;
        bump_shared(&self.global.allocations[LARGE]);
        self.large_bytes.fetch_add(cap as u64, Ordering::Relaxed);
        Ok(b)
    }

    /// Frees a large block directly.
    pub(crate) fn free_large(&self, block: Block, cap: usize) {
        bump_shared(&self.global.frees[LARGE]);
        self.large_bytes.fetch_sub(cap as u64, Ordering::Relaxed);
        self.system_free(block, cap, LARGE);
    }

    // ---- shard tier --------------------------------------------------------

    /// Moves up to `n` blocks of `class` from shard `home` into `out`; when
    /// `home` is empty, tries the other shards (skipping ones that look empty).
    /// Returns how many were moved.
    pub(crate) fn shard_take(
        &self,
        home: usize,
        class: usize,
        n: usize,
        out: &mut Vec<Block>,
    ) -> usize {
        let count = self.shards.len();
        for i in 0..count {
            let shard = &self.shards[(home + i) % count];
            if i > 0 && shard.counts[class].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut list = lock(&shard.lists[class]);
            let take = n.min(list.len());
            if take > 0 {
                let from = list.len() - take;
                out.extend(list.drain(from..));
                shard.counts[class].store(list.len(), Ordering::Relaxed);
                return take;
            }
        }
        0
    }

    /// Gives `blocks` of `class` to shard `home`. What exceeds the shard's
    /// high-water mark, or everything once the pool is closed, goes back to
    /// the system (outside the lock).
    pub(crate) fn shard_put(&self, home: usize, class: usize, blocks: &mut Vec<Block>) {
        let shard = &self.shards[home % self.shards.len()];
        {
            let mut list = lock(&shard.lists[class]);
            // Checked under the lock: `close` sets the flag and then drains
            // every list under its lock, so either the drain sees these
            // blocks or this sees the flag.
            if !self.is_closed() {
                let room = self.high_water[class].saturating_sub(list.len());
                let keep = room.min(blocks.len());
                list.extend(blocks.drain(..keep));
                shard.counts[class].store(list.len(), Ordering::Relaxed);
            }
        }
        for b in blocks.drain(..) {
            self.system_free(b, class_size(class), class);
        }
    }

    /// Allocation that bypasses thread caches (cache disabled, or the thread
    /// is shutting down): shard, then system.
    pub(crate) fn alloc_uncached(&self, class: usize) -> Result<Block, PoolError> {
        bump_shared(&self.global.allocations[class]);
        let mut one = Vec::with_capacity(1);
        if self.shard_take(self.assign_shard(), class, 1, &mut one) == 1 {
            if let Some(b) = one.pop() {
                bump_shared(&self.global.shard_hits[class]);
                return Ok(b);
            }
        }
        match self.system_alloc(class_size(class), class) {
            Ok(b) => Ok(b),
            Err(e) => {
                // Undo: the allocation did not happen.
                self.global.allocations[class].fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Free that bypasses thread caches.
    pub(crate) fn free_uncached(&self, class: usize, block: Block) {
        bump_shared(&self.global.frees[class]);
        if self.is_closed() {
            self.system_free(block, class_size(class), class);
        } else {
            let mut v = vec![block];
            self.shard_put(self.assign_shard(), class, &mut v);
        }
    }

    /// Marks the pool closed and returns every shard's blocks to the system.
    /// Buffers still out and blocks in thread caches are released when they
    /// come back (buffers) or when their thread next touches a pool or exits
    /// (caches); whatever is left is freed when the last reference drops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drain_shards();
    }

    fn drain_shards(&self) {
        for shard in self.shards.iter() {
            for class in 0..NUM_CLASSES {
                let blocks: Vec<Block> = {
                    let mut list = lock(&shard.lists[class]);
                    shard.counts[class].store(0, Ordering::Relaxed);
                    std::mem::take(&mut *list)
                };
                for b in blocks {
                    self.system_free(b, class_size(class), class);
                }
            }
        }
    }

    // ---- statistics --------------------------------------------------------

    pub(crate) fn register(&self, stats: std::sync::Arc<ThreadStats>) {
        let mut reg = match self.registry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        reg.push(stats);
    }

    /// Folds a departing cache's counters into the global ones and forgets it,
    /// atomically with respect to [`Shared::stats`].
    pub(crate) fn unregister(&self, stats: &std::sync::Arc<ThreadStats>) {
        let mut reg = match self.registry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(i) = reg.iter().position(|s| std::sync::Arc::ptr_eq(s, stats)) {
            reg.swap_remove(i);
            stats.counters.fold_into(&self.global);
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut rows: Vec<ClassStats> = (0..SLOTS)
            .map(|i| ClassStats {
                size: if i < NUM_CLASSES {
                    class_size(i) as u64
                } else {
                    0
                },
                high_water: if i < NUM_CLASSES {
                    self.high_water[i] as u64
                } else {
                    0
                },
                ..ClassStats::default()
            })
            .collect();
        let caches;
        {
            let reg = match self.registry.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            caches = reg.len() as u64;
            self.global.add_to(&mut rows);
            for t in reg.iter() {
                t.counters.add_to(&mut rows);
                for (c, row) in rows.iter_mut().take(NUM_CLASSES).enumerate() {
                    row.cached_in_threads += load(&t.cached[c]);
                }
            }
        }
        for shard in self.shards.iter() {
            for (c, row) in rows.iter_mut().take(NUM_CLASSES).enumerate() {
                row.cached_in_shards += shard.counts[c].load(Ordering::Relaxed) as u64;
            }
        }
        for (i, row) in rows.iter_mut().enumerate() {
            row.system_allocations = load(&self.system_allocs[i]);
            row.system_frees = load(&self.system_frees[i]);
            row.in_use = row.allocations.saturating_sub(row.frees);
        }
        let large = rows.pop().unwrap_or_default();
        let mut s = PoolStats {
            alignment: self.alignment as u64,
            shards: self.shards.len() as u64,
            thread_caches: caches,
            large_allocations: large.allocations,
            ..PoolStats::default()
        };
        for (c, row) in rows.iter().enumerate() {
            let size = class_size(c) as u64;
            s.bytes_in_use += row.in_use * size;
            s.bytes_held_in_threads += row.cached_in_threads * size;
            s.bytes_held_in_shards += row.cached_in_shards * size;
        }
        for row in rows.iter().chain(std::iter::once(&large)) {
            s.allocations += row.allocations;
            s.frees += row.frees;
            s.cache_hits += row.cache_hits;
            s.shard_hits += row.shard_hits;
            s.system_allocations += row.system_allocations;
            s.system_frees += row.system_frees;
        }
        s.bytes_in_use += load(&self.large_bytes);
        s.bytes_held = s.bytes_held_in_threads + s.bytes_held_in_shards;
        s.bytes_from_system = s.bytes_in_use + s.bytes_held;
        s.classes = rows;
        s.large = large;
        s
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Last reference: nothing can be in flight any more. Free whatever a
        // late flush left in the shards.
        self.drain_shards();
    }
}
