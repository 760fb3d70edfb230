//! [`BufferPool`]: the public handle.

use crate::buffer::Buffer;
use crate::cache::alloc_without_cache;
use crate::config::{class_of, class_size, PoolConfig, PoolError};
use crate::refcount::Counted;
use crate::shared::Shared;
use crate::stats::PoolStats;
use crate::sync::Arc;
use crate::tls;

/// A thread-safe pool of aligned buffers. Cheap to clone (all clones share
/// one pool); `Send + Sync`.
///
/// Dropping the last clone closes the pool: free lists go back to the
/// system at once, buffers still out stay valid and are freed to the system
/// when dropped, and thread caches release their memory when their thread
/// next uses any pool (or calls [`release_dropped_pool_caches`]) or exits.
#[derive(Clone)]
pub struct BufferPool {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.shared();
        f.debug_struct("BufferPool")
            .field("id", &shared.id)
            .field("alignment", &shared.alignment)
            .field("shards", &shared.num_shards())
            .field("config", &shared.cfg)
            .finish()
    }
}

struct Handle {
    shared: Counted<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
        tls::forget(self.shared.id);
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::with_defaults()
    }
}

impl BufferPool {
    /// A pool with `cfg`; fails on an invalid configuration.
    pub fn new(cfg: PoolConfig) -> Result<Self, PoolError> {
        let shared = Shared::new(cfg)?;
        Ok(Self::from_shared(shared))
    }

    /// A pool with [`PoolConfig::default`]: 4096 alignment, high-water 64,
    /// shards from the CPU count.
    pub fn with_defaults() -> Self {
        Self::from_shared(Shared::build(PoolConfig::default()))
    }

    fn from_shared(shared: Shared) -> Self {
        BufferPool {
            handle: Arc::new(Handle {
                shared: Counted::new(shared),
            }),
        }
    }

    #[inline]
    fn shared(&self) -> &Counted<Shared> {
        &self.handle.shared
    }

    /// A buffer of `len` bytes (`len` in `1..=max_size`), capacity rounded up
    /// to the size class. Contents are unspecified but initialized (zero if
    /// the memory is fresh, a previous user's bytes if recycled).
    // Always inlined: returned through memory, a `Buffer` written as four
    // 8-byte stores and read back as two 16-byte loads stalls the CPU's
    // store forwarding; inlined, it stays in registers.
    #[inline(always)]
    pub fn alloc(&self, len: usize) -> Result<Buffer, PoolError> {
        let shared = self.shared();
        // Fast path: a pooled size with a block waiting in this thread's
        // cache. Everything else (errors, refills, large requests) is out of
        // line, which keeps the hot path's result in registers.
        if len != 0 && len <= shared.cfg.max_size && shared.cfg.thread_cache {
            if let Some(class) = class_of(len) {
                let hit =
                    tls::with_cache(shared, |c| c.alloc_cached(class).map(|b| (b, c.take_ref())));
                if let Some(Some((block, count))) = hit {
                    return Ok(Buffer::from_block(block, len, class_size(class), count));
                }
            }
        }
        self.alloc_slow(len)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, len: usize) -> Result<Buffer, PoolError> {
        let shared = self.shared();
        if len == 0 {
            return Err(PoolError::ZeroSize);
        }
        if len > shared.cfg.max_size {
            return Err(PoolError::TooLarge {
                requested: len,
                max: shared.cfg.max_size,
            });
        }
        let Some(class) = class_of(len) else {
            return self.alloc_large(len);
        };
        let (block, count) = if shared.cfg.thread_cache {
            match tls::with_cache(shared, |c| c.alloc(class).map(|b| (b, c.take_ref()))) {
                Some(r) => r?,
                None => (alloc_without_cache(shared, class)?, shared.clone_one()),
            }
        } else {
            (alloc_without_cache(shared, class)?, shared.clone_one())
        };
        Ok(Buffer::from_block(block, len, class_size(class), count))
    }

    #[cold]
    fn alloc_large(&self, len: usize) -> Result<Buffer, PoolError> {
        let shared = self.shared();
        let a = shared.alignment;
        // Cannot overflow: validate() bounds max_size by isize::MAX - alignment.
        let cap = (len + a - 1) & !(a - 1);
        let block = shared.alloc_large(cap)?;
        Ok(Buffer::from_block(block, len, cap, shared.clone_one()))
    }

    /// Like [`alloc`](Self::alloc), with the first `len` bytes zeroed.
    pub fn alloc_zeroed(&self, len: usize) -> Result<Buffer, PoolError> {
        let mut b = self.alloc(len)?;
        b.as_mut_slice().fill(0);
        Ok(b)
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared().cfg
    }

    /// Alignment of every buffer.
    pub fn alignment(&self) -> usize {
        self.shared().alignment
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shared().num_shards()
    }

    /// A process-unique id of this pool (shared by its clones).
    pub fn id(&self) -> u64 {
        self.shared().id
    }

    /// A statistics snapshot. Exact when no allocation or free runs
    /// concurrently; otherwise each counter is a recent value.
    pub fn stats(&self) -> PoolStats {
        self.shared().stats()
    }

    /// Returns the calling thread's cached buffers of this pool to the
    /// shards (e.g. before a thread goes idle for a long time).
    pub fn trim_thread_cache(&self) {
        tls::trim(self.shared().id);
    }
}

/// Releases, on the calling thread, the caches of pools that have been
/// dropped. This also happens automatically the next time the thread creates
/// a cache for a new pool, frees a buffer of a dropped pool, or exits.
pub fn release_dropped_pool_caches() {
    tls::sweep();
}
