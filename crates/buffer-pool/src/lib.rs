//! Aligned, size-classed, thread-cached buffers for O_DIRECT I/O.
//!
//! [`BufferPool::alloc`] hands out [`Buffer`]s whose start is aligned to the
//! pool's alignment (default 4096, any power of two from 512) and whose
//! capacity is one of 16 power-of-two size classes, 4 KiB to 128 MiB.
//! Requests above 128 MiB (up to [`PoolConfig::max_size`]) are allocated and
//! freed directly. A `Buffer` derefs to `[u8]`, is `Send`, implements
//! [`IoBuf`]/[`IoBufMut`] so it can be moved into an I/O operation, and goes
//! back to the pool when dropped, on whatever thread that happens.
//! [`Buffer::slice`] turns a buffer into an owned window ([`BufferSlice`])
//! for I/O on part of it; `into_inner` gives the whole buffer back.
//!
//! ```
//! use auraio_buffer_pool::{BufferPool, IoBuf, PoolConfig};
//!
//! let pool = BufferPool::new(PoolConfig { alignment: 512, ..PoolConfig::default() })?;
//! let mut buf = pool.alloc(10_000)?; // capacity 16 KiB, 512-aligned
//! assert_eq!(buf.len(), 10_000);
//! assert_eq!(buf.capacity(), 16 << 10);
//! assert_eq!(buf.as_ptr() as usize % 512, 0);
//! buf[..5].copy_from_slice(b"hello");
//! assert_eq!(buf.bytes_init(), 10_000); // what a write would send
//! drop(buf); // back to this thread's cache
//! let again = pool.alloc(12_000)?; // same class: served from the cache
//! assert_eq!(pool.stats().cache_hits, 1);
//! # drop(again);
//! # Ok::<(), auraio_buffer_pool::PoolError>(())
//! ```
//!
//! # Tiers
//!
//! 1. **Thread cache** — each thread keeps, for *each* pool it uses, a small
//!    free list per class. Allocation and free touch only that list: no lock
//!    and no atomic read-modify-write on the fast path. A thread-local table
//!    keyed by pool id finds the cache (most recently used pool first), so
//!    any number of pools per thread are all accelerated.
//! 2. **Shards** — a few mutex-protected free lists per class (about one
//!    shard per two CPUs, at most 64). A cache that runs dry takes a batch
//!    from its home shard (or steals from another); a cache over its
//!    high-water mark gives a batch back.
//! 3. **System allocator** — `std::alloc` with the pool's alignment, when
//!    the shards are empty; a shard over its high-water mark frees there.
//!
//! The per-class high-water mark ([`PoolConfig::high_water`], default 64,
//! lowered for big classes by [`PoolConfig::max_cached_bytes_per_class`])
//! bounds what every cache and every shard keeps, so under churn memory goes
//! back to the system instead of accumulating. For each class the free
//! memory a pool keeps is at most
//! `(thread caches + shards) × high_water(class) × class_size`; with the
//! defaults a cache keeps at most 64 buffers of each class up to 1 MiB and
//! 64 MiB of each larger class. Requests above 128 MiB are never kept.
//! [`PoolStats`] reports allocations, cache hits, shard hits, system
//! allocations and frees, and bytes in use and held, overall and per class.
//!
//! Buffer contents are not cleared between users: memory is zeroed when first
//! obtained from the system, and a recycled buffer holds what its previous
//! user wrote ([`BufferPool::alloc_zeroed`] clears it).
//!
//! # Lifetime
//!
//! Every buffer holds a reference to its pool's shared state, so a pool may
//! be dropped while buffers are out: they stay valid and are freed to the
//! system when dropped. Shards are emptied when the last [`BufferPool`]
//! clone drops; thread caches of a dropped pool are released on that thread's
//! next pool use (or [`release_dropped_pool_caches`]) or at thread exit.
//!
//! # Registered buffers
//!
//! [`FixedBuffers`] carves a set of pool buffers for `io_uring` buffer
//! registration: it exposes the `iovec`s to register and hands out
//! [`FixedBuffer`]s that know their registered buffer index and offset.
#![warn(missing_docs)]

mod buffer;
mod cache;
mod config;
mod fixed;
pub mod io_buf;
mod pool;
mod refcount;
mod shared;
mod stats;
mod sync;
mod tls;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use buffer::{Buffer, BufferSlice, SliceError};
pub use config::{
    auto_shards, class_of, class_size, PoolConfig, PoolError, DEFAULT_ALIGNMENT, DEFAULT_BATCH,
    DEFAULT_HIGH_WATER, DEFAULT_MAX_CACHED_BYTES_PER_CLASS, DEFAULT_MAX_SIZE, MAX_ALIGNMENT,
    MAX_CLASS_SIZE, MAX_SHARDS, MIN_ALIGNMENT, MIN_CLASS_SIZE, NUM_CLASSES,
};
pub use fixed::{FixedBuffer, FixedBuffers, MAX_REGIONS};
pub use io_buf::{IoBuf, IoBufMut};
pub use pool::{release_dropped_pool_caches, BufferPool};
pub use stats::{ClassStats, PoolStats};
