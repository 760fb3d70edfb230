//! Registered ("fixed") buffers for `io_uring` `READ_FIXED`/`WRITE_FIXED`.
//!
//! A [`FixedBuffers`] set carves `count` equal slots out of one or more pool
//! buffers ("regions"). Each region is one `iovec` to register with a ring;
//! a slot is identified to the kernel by the region's index (`buf_index`)
//! plus the slot's byte offset inside it. The set owns the memory: it stays
//! valid while the set or any [`FixedBuffer`] taken from it is alive, which
//! is what the ring's `register_buffers` safety contract asks of its caller.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::buffer::Buffer;
use crate::config::PoolError;
use crate::io_buf::{IoBuf, IoBufMut};
use crate::pool::BufferPool;

/// Most regions (iovecs) one set may register (the kernel's limit).
pub const MAX_REGIONS: usize = 1 << 14;

struct FixedInner {
    /// Owns the memory; never dereferenced as a whole while slots are out.
    _regions: Vec<Buffer>,
    bases: Vec<NonNull<u8>>,
    iovecs: Vec<libc::iovec>,
    stride: usize,
    per_region: usize,
    count: usize,
    free: Mutex<Vec<u32>>,
}

// SAFETY: the raw pointers (iovecs, bases) point into memory owned by
// `_regions`; slots are handed out uniquely through the `free` mutex, so
// sharing the set between threads gives no unsynchronized access.
unsafe impl Send for FixedInner {}
// SAFETY: see above; `&FixedInner` exposes only the iovec table (read-only)
// and the mutex-protected free list.
unsafe impl Sync for FixedInner {}

/// A set of registered-buffer slots carved from a pool. Cheap to clone.
#[derive(Clone)]
pub struct FixedBuffers {
    inner: Arc<FixedInner>,
}

impl fmt::Debug for FixedBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuffers")
            .field("count", &self.inner.count)
            .field("slot_size", &self.inner.stride)
            .field("regions", &self.inner.iovecs.len())
            .finish()
    }
}

impl FixedBuffers {
    /// `count` slots of `slot_size` bytes, one region (iovec) per slot.
    pub fn new(pool: &BufferPool, count: usize, slot_size: usize) -> Result<Self, PoolError> {
        Self::with_slots_per_region(pool, count, slot_size, 1)
    }

    /// `count` slots of `slot_size` bytes (rounded up to the pool's
    /// alignment), packed `per_region` to a region: fewer iovecs for many
    /// small slots.
    pub fn with_slots_per_region(
        pool: &BufferPool,
        count: usize,
        slot_size: usize,
        per_region: usize,
    ) -> Result<Self, PoolError> {
        let bad = |reason: String| {
            Err(PoolError::InvalidRegistration {
                reason: reason.into(),
            })
        };
        if count == 0 || slot_size == 0 || per_region == 0 {
            return bad(format!(
                "count ({count}), slot_size ({slot_size}) and per_region ({per_region}) must be non-zero"
            ));
        }
        if count > u32::MAX as usize {
            return bad(format!("too many slots: {count}"));
        }
        let a = pool.alignment();
        let stride = match slot_size.checked_add(a - 1) {
            Some(s) => s & !(a - 1),
            None => return bad(format!("slot_size {slot_size} too large")),
        };
        let per_region = per_region.min(count);
        let regions = count.div_ceil(per_region);
        if regions > MAX_REGIONS {
            return bad(format!(
                "{regions} regions exceed the kernel limit of {MAX_REGIONS}; raise per_region"
            ));
        }
        let Some(region_len) = stride.checked_mul(per_region) else {
            return bad(format!("region of {per_region} x {stride} bytes overflows"));
        };
        let mut owned = Vec::with_capacity(regions);
        let mut bases = Vec::with_capacity(regions);
        let mut iovecs = Vec::with_capacity(regions);
        for _ in 0..regions {
            let mut b = pool.alloc(region_len)?;
            let base = NonNull::new(b.as_mut_ptr()).ok_or(PoolError::OutOfMemory {
                size: region_len,
                alignment: a,
            })?;
            bases.push(base);
            iovecs.push(libc::iovec {
                iov_base: base.as_ptr().cast(),
                iov_len: region_len,
            });
            owned.push(b);
        }
        // Hand out low slots first (pop from the end).
        let free = (0..count as u32).rev().collect();
        Ok(FixedBuffers {
            inner: Arc::new(FixedInner {
                _regions: owned,
                bases,
                iovecs,
                stride,
                per_region,
                count,
                free: Mutex::new(free),
            }),
        })
    }

    /// The iovecs to pass to the ring's `register_buffers`; index `i` is
    /// `buf_index` `i`.
    pub fn iovecs(&self) -> &[libc::iovec] {
        &self.inner.iovecs
    }

    /// Number of slots.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// Capacity of each slot in bytes (a multiple of the pool alignment).
    pub fn slot_size(&self) -> usize {
        self.inner.stride
    }

    /// Slots not currently taken.
    pub fn available(&self) -> usize {
        self.lock_free().len()
    }

    fn lock_free(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        match self.inner.free.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Takes a free slot (its length is the full slot size), or `None` when
    /// all are out.
    pub fn take(&self) -> Option<FixedBuffer> {
        let slot = self.lock_free().pop()?;
        Some(FixedBuffer {
            set: Arc::clone(&self.inner),
            slot,
            len: self.inner.stride,
        })
    }
}

/// One slot of a [`FixedBuffers`] set; goes back to the set on drop.
pub struct FixedBuffer {
    set: Arc<FixedInner>,
    slot: u32,
    len: usize,
}

impl FixedBuffer {
    /// Index of the registered buffer (region) holding this slot: the
    /// `buf_index` of a `READ_FIXED`/`WRITE_FIXED`.
    pub fn buf_index(&self) -> u16 {
        // Fits: regions <= MAX_REGIONS = 2^14.
        (self.slot as usize / self.set.per_region) as u16
    }

    /// Byte offset of this slot inside its registered region.
    pub fn offset(&self) -> usize {
        (self.slot as usize % self.set.per_region) * self.set.stride
    }

    /// Slot number within the set.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Length in bytes (what `Deref` exposes and I/O uses).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity of the slot.
    pub fn capacity(&self) -> usize {
        self.set.stride
    }

    /// Sets the length, up to the capacity (all of it is initialized).
    pub fn set_len(&mut self, len: usize) -> Result<(), PoolError> {
        if len > self.set.stride {
            return Err(PoolError::TooLarge {
                requested: len,
                max: self.set.stride,
            });
        }
        self.len = len;
        Ok(())
    }

    fn ptr(&self) -> *mut u8 {
        let base = self.set.bases[self.buf_index() as usize].as_ptr();
        // SAFETY: `offset() + stride <= region_len`, inside the region block.
        unsafe { base.add(self.offset()) }
    }
}

impl Drop for FixedBuffer {
    fn drop(&mut self) {
        let mut free = match self.set.free.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        free.push(self.slot);
    }
}

impl Deref for FixedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the slot is `stride >= len` initialized bytes (pool blocks
        // are initialized), handed out to this FixedBuffer alone.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl DerefMut for FixedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}

impl fmt::Debug for FixedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuffer")
            .field("buf_index", &self.buf_index())
            .field("offset", &self.offset())
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the slot memory is owned by the set (kept alive by `self.set`),
// does not move, and is valid for `len <= stride` initialized bytes.
unsafe impl IoBuf for FixedBuffer {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: same pointer, writable for `len` bytes, unique to this slot.
unsafe impl IoBufMut for FixedBuffer {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}
