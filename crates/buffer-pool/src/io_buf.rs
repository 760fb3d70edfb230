//! Owned buffers that can be moved into an I/O operation and handed back.
//!
//! The kernel reads or writes a buffer *after* the call that submitted the
//! operation has returned, so the operation must own the buffer until its
//! completion arrives. These traits describe what an operation needs from an
//! owned buffer: a pointer that stays put while the owner is moved around, the
//! capacity the kernel may fill, and how much of it holds initialized data.

/// A buffer the kernel may *read from* (the source of a write).
///
/// # Safety
///
/// Implementors guarantee that:
/// - `stable_ptr()` points to `bytes_total()` bytes of memory owned by `self`,
///   the first `bytes_init()` of them initialized;
/// - the pointer stays valid and unchanged while `self` is alive, even when
///   `self` is moved (heap memory, never inline storage), and it is not
///   invalidated by any `&self` method;
/// - `bytes_init() <= bytes_total()`.
pub unsafe trait IoBuf: Send + 'static {
    /// Pointer to the first byte; stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialized bytes: what a write sends.
    fn bytes_init(&self) -> usize;
    /// Total capacity in bytes: what a read may fill.
    fn bytes_total(&self) -> usize;
}

/// A buffer the kernel may *write into* (the target of a read).
///
/// # Safety
///
/// On top of [`IoBuf`]'s guarantees, `stable_mut_ptr()` returns the same
/// address as `stable_ptr()`, valid for writes of `bytes_total()` bytes, and no
/// other live reference to that memory exists while `self` is borrowed mutably.
pub unsafe trait IoBufMut: IoBuf {
    /// Mutable pointer to the first byte; stable across moves of `self`.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `pos` bytes are now initialized (a read filled
    /// them). Never shrinks the initialized length.
    ///
    /// # Safety
    ///
    /// The caller guarantees that the first `pos` bytes have really been
    /// written, and that `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap allocation does not move when the Vec value moves, and
// `as_ptr` is valid for `capacity()` bytes, the first `len()` initialized.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: same allocation as `stable_ptr`, writable for `capacity()` bytes.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees `pos <= capacity()` and that the
            // first `pos` bytes were written.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's heap memory does not move with the box; all of it is
// initialized.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: same allocation as `stable_ptr`, writable for its whole length.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {
        // A boxed slice is always fully initialized.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reports_capacity_as_total_and_len_as_init() {
        let mut v: Vec<u8> = Vec::with_capacity(64);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert!(v.bytes_total() >= 64);
        let p = v.stable_ptr();
        let moved = v;
        assert_eq!(moved.stable_ptr(), p, "moving a Vec must not move its data");
    }

    #[test]
    fn vec_set_init_only_grows() {
        let mut v: Vec<u8> = Vec::with_capacity(16);
        // SAFETY: fill 8 bytes before claiming them initialized.
        unsafe {
            std::ptr::write_bytes(v.stable_mut_ptr(), 7, 8);
            v.set_init(8);
            v.set_init(2);
        }
        assert_eq!(v, vec![7u8; 8]);
    }

    #[test]
    fn boxed_slice_is_fully_initialized() {
        let b: Box<[u8]> = vec![1u8; 10].into_boxed_slice();
        assert_eq!(b.bytes_init(), 10);
        assert_eq!(b.bytes_total(), 10);
    }
}
