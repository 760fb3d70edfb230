//! What a slot keeps alive for the kernel, and what a completion hands back.

use std::ffi::CString;
use std::fmt;

use crate::op::OwnedBuf;

/// What an operation owned, handed back with its completion.
pub enum Resources {
    /// The op owned nothing (nop, fsync, fallocate, ftruncate, close).
    None,
    /// The buffer of a read/write (fixed or not). After a read its init
    /// length covers the bytes read.
    Buf(Box<dyn OwnedBuf>),
    /// The buffers of a readv/writev, in order. After a readv each buffer's
    /// init length covers the bytes read into it.
    Bufs(Vec<Box<dyn OwnedBuf>>),
    /// The statx result (valid when the completion's result is 0).
    Statx(Box<libc::statx>),
    /// The path of an openat.
    Path(CString),
}

impl Resources {
    /// Takes the single buffer back as the concrete type that was submitted.
    /// `None` if this is not a `Buf` or the type does not match.
    pub fn into_buf<B: 'static>(self) -> Option<B> {
        match self {
            Resources::Buf(b) => b.into_any().downcast::<B>().ok().map(|b| *b),
            _ => None,
        }
    }

    /// Takes the buffers of a readv/writev back as concrete type `B`.
    /// `None` if this is not `Bufs` or any type does not match.
    pub fn into_bufs<B: 'static>(self) -> Option<Vec<B>> {
        match self {
            Resources::Bufs(v) => v
                .into_iter()
                .map(|b| b.into_any().downcast::<B>().ok().map(|b| *b))
                .collect(),
            _ => None,
        }
    }

    /// The statx result, if this is one.
    pub fn into_statx(self) -> Option<Box<libc::statx>> {
        match self {
            Resources::Statx(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resources::None => f.write_str("None"),
            Resources::Buf(b) => f
                .debug_struct("Buf")
                .field("init", &b.bytes_init())
                .field("total", &b.bytes_total())
                .finish(),
            Resources::Bufs(v) => f.debug_struct("Bufs").field("count", &v.len()).finish(),
            Resources::Statx(_) => f.write_str("Statx(..)"),
            Resources::Path(p) => f.debug_tuple("Path").field(p).finish(),
        }
    }
}

/// An iovec array the kernel reads during a readv/writev. Its heap storage
/// does not move when the array is moved into a slot.
pub(crate) struct IovecArray(Vec<libc::iovec>);

// SAFETY: the raw pointers inside point into buffers owned by the same slot
// (which are `Send`); the array is only read by the kernel and never
// dereferenced by us, so moving it across threads is sound.
unsafe impl Send for IovecArray {}

impl IovecArray {
    pub(crate) fn new(v: Vec<libc::iovec>) -> Self {
        IovecArray(v)
    }
    pub(crate) fn as_ptr(&self) -> *const libc::iovec {
        self.0.as_ptr()
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Everything a slot keeps alive for the kernel until the op's CQE.
pub(crate) enum Held {
    None,
    Read(Box<dyn OwnedBuf>),
    Write(Box<dyn OwnedBuf>),
    // The rare, large variants are boxed so that `Held` (and with it every
    // slot and every move of one) stays small on the read/write/nop path.
    Readv(Box<(Vec<Box<dyn OwnedBuf>>, IovecArray)>),
    Writev(Box<(Vec<Box<dyn OwnedBuf>>, IovecArray)>),
    Statx(Box<(Box<libc::statx>, CString)>),
    Path(CString),
}

impl Held {
    /// Converts into what the caller gets back, recording how many bytes a
    /// read produced, with the op's result. Must only be called after the
    /// op's CQE arrived (or once it is known the kernel never saw the op).
    ///
    /// A buffer's `set_init` is the user's code (`IoBufMut` is implemented
    /// outside this crate). If it panics, the panic is caught here and the
    /// op's result becomes `-EIO`: the op still completes exactly once, and
    /// the ops reaped with it are not lost.
    #[inline(always)]
    pub(crate) fn into_resources(self, result: i32) -> (i32, Resources) {
        // The common op that owns nothing (NOP, fsync, ...) takes a plain
        // branch, ahead of the jump table over all kinds.
        if let Held::None = self {
            return (result, Resources::None);
        }
        let done = if result > 0 { result as usize } else { 0 };
        match self {
            Held::None => (result, Resources::None),
            Held::Read(mut b) => {
                let n = done.min(b.bytes_total());
                // SAFETY: the kernel reported writing `n` bytes from the
                // start of the buffer, and `n <= bytes_total()`.
                let ok = unsafe { set_init_guarded(&mut b, n) };
                (if ok { result } else { -libc::EIO }, Resources::Buf(b))
            }
            Held::Write(b) => (result, Resources::Buf(b)),
            Held::Readv(v) => {
                let (mut bufs, _iov) = *v;
                let mut left = done;
                let mut ok = true;
                for b in bufs.iter_mut() {
                    let n = left.min(b.bytes_total());
                    if n > 0 {
                        // SAFETY: readv fills the iovecs in order, so this
                        // buffer's first `n` bytes were written; `n <= total`.
                        ok &= unsafe { set_init_guarded(b, n) };
                    }
                    left -= n;
                }
                (if ok { result } else { -libc::EIO }, Resources::Bufs(bufs))
            }
            Held::Writev(v) => (result, Resources::Bufs(v.0)),
            Held::Statx(v) => (result, Resources::Statx(v.0)),
            Held::Path(p) => (result, Resources::Path(p)),
        }
    }
}

/// `b.set_init(n)`, catching a panic in it; `false` if it panicked.
///
/// # Safety
/// As for [`IoBufMut::set_init`](auraio_buffer_pool::IoBufMut::set_init):
/// the first `n` bytes of the buffer were written, and
/// `n <= b.bytes_total()`.
unsafe fn set_init_guarded(b: &mut Box<dyn OwnedBuf>, n: usize) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller's guarantee, passed on unchanged.
        unsafe { b.set_init(n) }
    }))
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_result_sets_init_length() {
        let mut v = vec![0u8; 16];
        v.clear();
        let (res, r) = Held::Read(Box::new(v)).into_resources(5);
        assert_eq!(res, 5);
        let v: Vec<u8> = r.into_buf().unwrap();
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn error_result_leaves_init_alone() {
        let v: Vec<u8> = Vec::with_capacity(16);
        let (res, r) = Held::Read(Box::new(v)).into_resources(-libc::EBADF);
        assert_eq!(res, -libc::EBADF);
        let v: Vec<u8> = r.into_buf().unwrap();
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn readv_result_is_spread_in_order() {
        let mut a = vec![0u8; 4];
        a.clear();
        let mut b = vec![0u8; 4];
        b.clear();
        let (ca, cb) = (a.capacity(), b.capacity());
        let iov = IovecArray::new(Vec::new());
        let (res, r) = Held::Readv(Box::new((vec![Box::new(a), Box::new(b)], iov)))
            .into_resources((ca + 1) as i32);
        assert_eq!(res, (ca + 1) as i32);
        let v: Vec<Vec<u8>> = r.into_bufs().unwrap();
        assert_eq!(v[0].len(), ca);
        assert_eq!(v[1].len(), 1.min(cb));
    }

    #[test]
    fn held_stays_small_for_the_hot_path() {
        // Every slot stores one and every submit/reap moves one: the large,
        // rare variants are boxed so this stays at a buffer pointer + tag.
        assert!(
            std::mem::size_of::<Held>() <= 24,
            "Held is {} bytes",
            std::mem::size_of::<Held>()
        );
    }

    #[test]
    fn wrong_type_downcast_is_none() {
        let r = Resources::Buf(Box::new(vec![1u8]));
        assert!(r.into_buf::<Box<[u8]>>().is_none());
    }
}
