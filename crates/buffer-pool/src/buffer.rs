//! [`Buffer`]: an owned, aligned buffer that returns to its pool on drop.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};
use std::ptr::NonNull;

use crate::cache::free_without_cache;
use crate::config::{class_of, PoolError, MAX_CLASS_SIZE};
use crate::io_buf::{IoBuf, IoBufMut};
use crate::refcount::Counted;
use crate::shared::{Block, Shared};
use crate::tls;

/// An owned, aligned buffer from a [`BufferPool`](crate::BufferPool).
///
/// Dereferences to its first [`len`](Self::len) bytes. The memory behind it
/// is [`capacity`](Self::capacity) bytes, aligned to
/// [`alignment`](Self::alignment), and always fully initialized: it is zeroed
/// when first obtained from the system and keeps whatever a previous user
/// wrote when recycled (use [`BufferPool::alloc_zeroed`](crate::BufferPool::alloc_zeroed)
/// when that matters).
///
/// Dropping the buffer gives its memory back to the pool (to the dropping
/// thread's cache), from any thread. If the pool has been dropped meanwhile,
/// the memory goes straight back to the system.
pub struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
    /// Capacity: exactly a class size for pooled buffers, more than the
    /// largest class for large (direct) ones, so it also encodes the class.
    cap: usize,
    /// A count on the pool state; taken in `drop` (hence `ManuallyDrop`).
    shared: ManuallyDrop<Counted<Shared>>,
}

// SAFETY: a Buffer uniquely owns its memory (like a Box<[u8]>); the pool
// state it points to is Send + Sync.
unsafe impl Send for Buffer {}
// SAFETY: `&Buffer` only gives shared access to initialized bytes.
unsafe impl Sync for Buffer {}

impl Buffer {
    pub(crate) fn from_block(
        block: Block,
        len: usize,
        cap: usize,
        shared: Counted<Shared>,
    ) -> Self {
        Buffer {
            ptr: block.0,
            len,
            cap,
            shared: ManuallyDrop::new(shared),
        }
    }

    /// Length in bytes: what `Deref` exposes, what a write sends and what a
    /// read fills.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when [`len`](Self::len) is zero (possible after `set_len(0)`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory behind the buffer (the size class, or the request
    /// rounded up to the alignment for large buffers). `len() <= capacity()`.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Alignment of the start address.
    #[inline]
    pub fn alignment(&self) -> usize {
        self.shared.alignment
    }

    /// Pointer to the first byte.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Mutable pointer to the first byte.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The first `len()` bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `cap >= len` initialized bytes owned by
        // `self` (blocks are zeroed at birth).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The first `len()` bytes, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The whole capacity, mutably.
    pub fn spare_capacity(&mut self) -> &mut [u8] {
        // SAFETY: the block is `cap` initialized bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// Sets the length to any value up to the capacity (every byte of the
    /// capacity is initialized, so this is safe).
    pub fn set_len(&mut self, len: usize) -> Result<(), PoolError> {
        if len > self.cap {
            return Err(PoolError::TooLarge {
                requested: len,
                max: self.cap,
            });
        }
        self.len = len;
        Ok(())
    }

    /// Shortens the buffer to `len` bytes; no-op if already shorter.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// An owned window `range` of this buffer (within its capacity) that
    /// can be moved into an I/O operation on its own: it reads into or writes
    /// from just those bytes. [`BufferSlice::into_inner`] gives the buffer
    /// back. An unbounded end means the buffer's length; the range may reach
    /// up to the capacity. A reversed or too-long range gives the buffer back
    /// inside the error.
    pub fn slice(self, range: impl RangeBounds<usize>) -> Result<BufferSlice, SliceError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        if start > end || end > self.cap {
            return Err(SliceError {
                start,
                end,
                buffer: self,
            });
        }
        Ok(BufferSlice {
            buf: self,
            start,
            end,
        })
    }

    /// Whether this buffer came from a size class (recycled on drop) rather
    /// than directly from the system.
    pub fn is_pooled(&self) -> bool {
        self.cap <= MAX_CLASS_SIZE
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: taken exactly once, here; `self.shared` is not used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        let ptr = self.ptr;
        let Some(class) = class_of(self.cap) else {
            shared.free_large(Block(ptr), self.cap);
            return;
        };
        let shared = if shared.is_closed() {
            // The pool is gone: release this thread's cache of it too.
            tls::forget(shared.id);
            shared
        } else if shared.cfg.thread_cache {
            match tls::free_to_cache(shared, class, ptr) {
                Ok(()) => return,
                Err(shared) => shared,
            }
        } else {
            shared
        };
        // No cache reachable (thread exiting), caching disabled, or closed.
        free_without_cache(&shared, class, Block(ptr));
    }
}

impl Deref for Buffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for Buffer {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for Buffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("alignment", &self.shared.alignment)
            .finish()
    }
}

// SAFETY: the memory is a heap block owned by the Buffer, so the pointer does
// not move with the value; it is valid for `len <= cap` initialized bytes.
unsafe impl IoBuf for Buffer {
    #[inline]
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    #[inline]
    fn bytes_init(&self) -> usize {
        self.len
    }
    #[inline]
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: same pointer as `stable_ptr`, writable for `len` bytes; `&mut self`
// guarantees uniqueness.
unsafe impl IoBufMut for Buffer {
    #[inline]
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {
        // Every byte of a pool buffer is always initialized.
    }
}

/// A [`Buffer::slice`] range that is reversed or beyond the capacity; holds
/// the buffer so it is not lost.
#[derive(Debug, thiserror::Error)]
#[error("range {start}..{end} is reversed or beyond the buffer's capacity")]
pub struct SliceError {
    /// Start of the rejected range.
    pub start: usize,
    /// End of the rejected range (exclusive).
    pub end: usize,
    /// The buffer, given back.
    pub buffer: Buffer,
}

/// An owned window into a [`Buffer`] (see [`Buffer::slice`]): derefs to the
/// window's bytes and implements [`IoBuf`]/[`IoBufMut`] over them.
#[derive(Debug)]
pub struct BufferSlice {
    buf: Buffer,
    start: usize,
    end: usize,
}

impl BufferSlice {
    /// Offset of the window in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// End of the window (exclusive).
    pub fn end(&self) -> usize {
        self.end
    }

    /// Length of the window.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The whole buffer, read-only.
    pub fn get_ref(&self) -> &Buffer {
        &self.buf
    }

    /// Gives the buffer back (its length is unchanged by the slice).
    pub fn into_inner(self) -> Buffer {
        self.buf
    }

    fn window_ptr(&self) -> *mut u8 {
        // SAFETY: `start <= end <= cap`, so the offset stays inside the block.
        unsafe { self.buf.ptr.as_ptr().add(self.start) }
    }
}

impl Deref for BufferSlice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the window lies within the block's `cap` initialized bytes,
        // owned by `self.buf`.
        unsafe { std::slice::from_raw_parts(self.window_ptr(), self.len()) }
    }
}

impl DerefMut for BufferSlice {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.window_ptr(), self.len()) }
    }
}

// SAFETY: the window points into the heap block owned by `buf`, which does not
// move with the value; all of it is initialized.
unsafe impl IoBuf for BufferSlice {
    fn stable_ptr(&self) -> *const u8 {
        self.window_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: same pointer, writable for the window; `&mut self` is unique.
unsafe impl IoBufMut for BufferSlice {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.window_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}
