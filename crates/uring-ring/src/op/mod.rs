//! Operations: what a caller asks the ring to do, and the one place where an
//! [`Op`] becomes an SQE.
//!
//! The `Op` type, its buffers' trait ([`OwnedBuf`]), [`Fd`] and the checks
//! made before submission live here; the rest is in the submodules:
//!
//! - `kind`: [`OpKind`], the kinds of operation (opcodes, names);
//! - `sqe`: building an op's SQE (`take_sqe`, `into_sqe`, `sqe_words`);
//! - `debug`: `Op`'s `Debug` output.

mod debug;
mod kind;
mod sqe;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::ffi::CString;
use std::os::unix::io::RawFd;

use crate::IoBufMut;

pub use kind::OpKind;

/// Most iovecs one readv/writev may carry (`IOV_MAX` on Linux).
pub const MAX_IOVECS: usize = 1024;

/// A buffer that can travel through the ring as a trait object and be
/// recovered as its concrete type afterwards (`into_any().downcast::<B>()`).
///
/// Implemented for every [`IoBufMut`]; you never implement it yourself.
pub trait OwnedBuf: IoBufMut {
    /// Turns the boxed buffer into `Box<dyn Any>` so the caller can downcast
    /// it back to the type it submitted.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<B: IoBufMut> OwnedBuf for B {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// The file an operation targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fd {
    /// A plain file descriptor. The caller keeps it open until the op completes.
    Raw(RawFd),
    /// An index into the ring's registered files
    /// ([`Ring::register_files`](crate::Ring::register_files)).
    Fixed(u32),
}

/// One I/O request. It owns everything the kernel may touch (buffers, paths)
/// until its completion, which hands those back in
/// [`Completion::resources`](crate::Completion::resources).
pub enum Op {
    /// Does nothing; completes with 0.
    Nop,
    /// Reads up to `buf.bytes_total()` bytes at `offset` into `buf`.
    Read {
        /// File to read.
        fd: Fd,
        /// Destination; returned with its init length set to the result.
        buf: Box<dyn OwnedBuf>,
        /// File offset in bytes.
        offset: u64,
    },
    /// Writes `buf.bytes_init()` bytes from `buf` at `offset`.
    Write {
        /// File to write.
        fd: Fd,
        /// Source data.
        buf: Box<dyn OwnedBuf>,
        /// File offset in bytes.
        offset: u64,
    },
    /// Scatter read: fills each buffer's `bytes_total()` in order.
    Readv {
        /// File to read.
        fd: Fd,
        /// Destinations, at most [`MAX_IOVECS`].
        bufs: Vec<Box<dyn OwnedBuf>>,
        /// File offset in bytes.
        offset: u64,
    },
    /// Gather write: sends each buffer's `bytes_init()` in order.
    Writev {
        /// File to write.
        fd: Fd,
        /// Sources, at most [`MAX_IOVECS`].
        bufs: Vec<Box<dyn OwnedBuf>>,
        /// File offset in bytes.
        offset: u64,
    },
    /// `fsync` (or `fdatasync` when `datasync`).
    Fsync {
        /// File to sync.
        fd: Fd,
        /// Sync data only (`fdatasync`).
        datasync: bool,
    },
    /// `fallocate(fd, mode, offset, len)`.
    Fallocate {
        /// File.
        fd: Fd,
        /// `FALLOC_FL_*` flags; 0 allocates and extends.
        mode: i32,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
    },
    /// `ftruncate(fd, len)` (Linux 6.9+; check [`Ring::supports`](crate::Ring::supports)).
    Ftruncate {
        /// File.
        fd: Fd,
        /// New length.
        len: u64,
    },
    /// `statx(dirfd, path, flags, mask)`; the result comes back as
    /// [`Resources::Statx`](crate::Resources::Statx).
    Statx {
        /// Directory for relative paths (`libc::AT_FDCWD` for the cwd).
        dirfd: RawFd,
        /// Path name.
        path: CString,
        /// `AT_*` flags.
        flags: i32,
        /// `STATX_*` mask.
        mask: u32,
    },
    /// `openat(dirfd, path, flags, mode)`; the result is the new fd. The
    /// path comes back as [`Resources::Path`](crate::Resources::Path).
    OpenAt {
        /// Directory for relative paths (`libc::AT_FDCWD` for the cwd).
        dirfd: RawFd,
        /// Path name.
        path: CString,
        /// `O_*` flags.
        flags: i32,
        /// Permission bits for a created file.
        mode: u32,
    },
    /// `close(fd)`, or frees a registered file slot for [`Fd::Fixed`].
    Close {
        /// File to close.
        fd: Fd,
    },
    /// Read into a registered buffer. `buf` must lie inside registered
    /// buffer `buf_index` (the kernel returns `-EFAULT` otherwise).
    ReadFixed {
        /// File to read.
        fd: Fd,
        /// Destination inside a registered buffer.
        buf: Box<dyn OwnedBuf>,
        /// Index of the registered buffer.
        buf_index: u16,
        /// File offset in bytes.
        offset: u64,
    },
    /// Write from a registered buffer (`bytes_init()` bytes).
    WriteFixed {
        /// File to write.
        fd: Fd,
        /// Source inside a registered buffer.
        buf: Box<dyn OwnedBuf>,
        /// Index of the registered buffer.
        buf_index: u16,
        /// File offset in bytes.
        offset: u64,
    },
}

impl Op {
    /// Convenience: a read into any owned buffer.
    pub fn read(fd: Fd, buf: impl IoBufMut, offset: u64) -> Op {
        Op::Read {
            fd,
            buf: Box::new(buf),
            offset,
        }
    }

    /// Convenience: a write from any owned buffer.
    pub fn write(fd: Fd, buf: impl IoBufMut, offset: u64) -> Op {
        Op::Write {
            fd,
            buf: Box::new(buf),
            offset,
        }
    }

    /// The kind of this operation.
    #[inline]
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Nop => OpKind::Nop,
            Op::Read { .. } => OpKind::Read,
            Op::Write { .. } => OpKind::Write,
            Op::Readv { .. } => OpKind::Readv,
            Op::Writev { .. } => OpKind::Writev,
            Op::Fsync { .. } => OpKind::Fsync,
            Op::Fallocate { .. } => OpKind::Fallocate,
            Op::Ftruncate { .. } => OpKind::Ftruncate,
            Op::Statx { .. } => OpKind::Statx,
            Op::OpenAt { .. } => OpKind::OpenAt,
            Op::Close { .. } => OpKind::Close,
            Op::ReadFixed { .. } => OpKind::ReadFixed,
            Op::WriteFixed { .. } => OpKind::WriteFixed,
        }
    }

    /// Bytes this op asks to transfer (0 for non-data ops).
    #[inline]
    pub fn len(&self) -> u64 {
        match self {
            Op::Read { buf, .. } | Op::ReadFixed { buf, .. } => buf.bytes_total() as u64,
            Op::Write { buf, .. } | Op::WriteFixed { buf, .. } => buf.bytes_init() as u64,
            Op::Readv { bufs, .. } => bufs.iter().map(|b| b.bytes_total() as u64).sum(),
            Op::Writev { bufs, .. } => bufs.iter().map(|b| b.bytes_init() as u64).sum(),
            _ => 0,
        }
    }

    /// True when [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what can be checked before the kernel sees it.
    #[inline]
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        const TOO_BIG: &str = "buffer larger than u32::MAX bytes";
        let fits = |n: usize| u32::try_from(n).is_ok();
        match self {
            Op::Read { buf, .. } | Op::ReadFixed { buf, .. } if !fits(buf.bytes_total()) => {
                Err(TOO_BIG)
            }
            Op::Write { buf, .. } | Op::WriteFixed { buf, .. } if !fits(buf.bytes_init()) => {
                Err(TOO_BIG)
            }
            Op::Readv { bufs, .. } | Op::Writev { bufs, .. } if bufs.len() > MAX_IOVECS => {
                Err("more than 1024 iovecs")
            }
            _ => Ok(()),
        }
    }
}
