//! Operations: what a caller asks the ring to do, and the one place where an
//! [`Op`] becomes an SQE.

use std::any::Any;
use std::ffi::CString;
use std::fmt;
use std::os::unix::io::RawFd;

use io_uring::{opcode, squeue, types};

use crate::resources::{Held, IovecArray};
use crate::IoBufMut;

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

/// The kinds of operation a ring can perform; used for the feature probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `IORING_OP_NOP`.
    Nop,
    /// `IORING_OP_READ`.
    Read,
    /// `IORING_OP_WRITE`.
    Write,
    /// `IORING_OP_READV`.
    Readv,
    /// `IORING_OP_WRITEV`.
    Writev,
    /// `IORING_OP_FSYNC` (fsync and fdatasync).
    Fsync,
    /// `IORING_OP_FALLOCATE`.
    Fallocate,
    /// `IORING_OP_FTRUNCATE` (Linux 6.9+).
    Ftruncate,
    /// `IORING_OP_STATX`.
    Statx,
    /// `IORING_OP_OPENAT`.
    OpenAt,
    /// `IORING_OP_CLOSE`.
    Close,
    /// `IORING_OP_READ_FIXED`.
    ReadFixed,
    /// `IORING_OP_WRITE_FIXED`.
    WriteFixed,
    /// `IORING_OP_ASYNC_CANCEL` (used by [`Ring::cancel`](crate::Ring::cancel)).
    AsyncCancel,
    /// `IORING_OP_LINK_TIMEOUT` (used by
    /// [`Ring::submit_with_timeout`](crate::Ring::submit_with_timeout)).
    LinkTimeout,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 15] = [
        OpKind::Nop,
        OpKind::Read,
        OpKind::Write,
        OpKind::Readv,
        OpKind::Writev,
        OpKind::Fsync,
        OpKind::Fallocate,
        OpKind::Ftruncate,
        OpKind::Statx,
        OpKind::OpenAt,
        OpKind::Close,
        OpKind::ReadFixed,
        OpKind::WriteFixed,
        OpKind::AsyncCancel,
        OpKind::LinkTimeout,
    ];

    /// The kernel opcode.
    pub fn opcode(self) -> u8 {
        match self {
            OpKind::Nop => opcode::Nop::CODE,
            OpKind::Read => opcode::Read::CODE,
            OpKind::Write => opcode::Write::CODE,
            OpKind::Readv => opcode::Readv::CODE,
            OpKind::Writev => opcode::Writev::CODE,
            OpKind::Fsync => opcode::Fsync::CODE,
            OpKind::Fallocate => opcode::Fallocate::CODE,
            OpKind::Ftruncate => opcode::Ftruncate::CODE,
            OpKind::Statx => opcode::Statx::CODE,
            OpKind::OpenAt => opcode::OpenAt::CODE,
            OpKind::Close => opcode::Close::CODE,
            OpKind::ReadFixed => opcode::ReadFixed::CODE,
            OpKind::WriteFixed => opcode::WriteFixed::CODE,
            OpKind::AsyncCancel => opcode::AsyncCancel::CODE,
            OpKind::LinkTimeout => opcode::LinkTimeout::CODE,
        }
    }

    /// A short lowercase name ("read", "fsync", ...), e.g. for traces.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Nop => "nop",
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Readv => "readv",
            OpKind::Writev => "writev",
            OpKind::Fsync => "fsync",
            OpKind::Fallocate => "fallocate",
            OpKind::Ftruncate => "ftruncate",
            OpKind::Statx => "statx",
            OpKind::OpenAt => "openat",
            OpKind::Close => "close",
            OpKind::ReadFixed => "read_fixed",
            OpKind::WriteFixed => "write_fixed",
            OpKind::AsyncCancel => "async_cancel",
            OpKind::LinkTimeout => "link_timeout",
        }
    }

    #[inline]
    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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

    /// [`into_sqe`](Self::into_sqe) for an op left where its caller put
    /// it: the hot ops (NOP, (fixed) read and write) are read field by
    /// field and their buffer moved out, and `Op::Nop` is left in their
    /// place. A whole `Op` copied out with wide loads right after the
    /// caller's narrow stores (its tag byte, its `Fd`) was a
    /// store-forwarding stall per op. Other ops are moved out whole.
    ///
    /// Call [`validate`](Self::validate) first.
    #[inline(always)]
    pub(crate) fn take_sqe(&mut self) -> (squeue::Entry, Held) {
        let (sqe, buf, read) = match self {
            Op::Nop => {
                return (
                    sqe_words(opcode::Nop::CODE, Fd::Raw(-1), 0, 0, 0, 0),
                    Held::None,
                )
            }
            Op::Read { fd, buf, offset } => {
                let ptr = buf.stable_mut_ptr() as u64;
                let len = buf.bytes_total() as u32;
                let sqe = sqe_words(opcode::Read::CODE, *fd, *offset, ptr, len, 0);
                (sqe, buf, true)
            }
            Op::Write { fd, buf, offset } => {
                let ptr = buf.stable_ptr() as u64;
                let len = buf.bytes_init() as u32;
                let sqe = sqe_words(opcode::Write::CODE, *fd, *offset, ptr, len, 0);
                (sqe, buf, false)
            }
            Op::ReadFixed {
                fd,
                buf,
                buf_index,
                offset,
            } => {
                let ptr = buf.stable_mut_ptr() as u64;
                let len = buf.bytes_total() as u32;
                let code = opcode::ReadFixed::CODE;
                let sqe = sqe_words(code, *fd, *offset, ptr, len, *buf_index);
                (sqe, buf, true)
            }
            Op::WriteFixed {
                fd,
                buf,
                buf_index,
                offset,
            } => {
                let ptr = buf.stable_ptr() as u64;
                let len = buf.bytes_init() as u32;
                let code = opcode::WriteFixed::CODE;
                let sqe = sqe_words(code, *fd, *offset, ptr, len, *buf_index);
                (sqe, buf, false)
            }
            _ => return std::mem::replace(self, Op::Nop).into_sqe(),
        };
        // SAFETY: the buffer is moved out of the op here, and the op is
        // overwritten with `Op::Nop` right after without being dropped, so
        // the buffer has exactly one owner again (nothing between the two
        // writes can panic; the buffer's own methods ran above).
        let buf = unsafe { std::ptr::read(buf) };
        // SAFETY: `self` is a valid, exclusive place; its only owned field
        // (the buffer) was moved out just above, so nothing is leaked or
        // dropped twice by not dropping the old value.
        unsafe { std::ptr::write(self, Op::Nop) };
        let held = if read {
            Held::Read(buf)
        } else {
            Held::Write(buf)
        };
        (sqe, held)
    }

    /// Builds the SQE (without `user_data`/flags) and moves what the kernel
    /// will touch into a [`Held`] that the slot keeps until the CQE.
    ///
    /// Call [`validate`](Self::validate) first.
    #[inline(always)]
    pub(crate) fn into_sqe(self) -> (squeue::Entry, Held) {
        macro_rules! with_fd {
            ($fd:expr, |$f:ident| $body:expr) => {
                match $fd {
                    Fd::Raw(raw) => {
                        let $f = types::Fd(raw);
                        $body
                    }
                    Fd::Fixed(idx) => {
                        let $f = types::Fixed(idx);
                        $body
                    }
                }
            };
        }
        match self {
            Op::Nop => (
                sqe_words(opcode::Nop::CODE, Fd::Raw(-1), 0, 0, 0, 0),
                Held::None,
            ),
            Op::Read {
                fd,
                mut buf,
                offset,
            } => {
                let ptr = buf.stable_mut_ptr();
                let len = buf.bytes_total() as u32;
                let sqe = sqe_words(opcode::Read::CODE, fd, offset, ptr as u64, len, 0);
                (sqe, Held::Read(buf))
            }
            Op::Write { fd, buf, offset } => {
                let ptr = buf.stable_ptr();
                let len = buf.bytes_init() as u32;
                let sqe = sqe_words(opcode::Write::CODE, fd, offset, ptr as u64, len, 0);
                (sqe, Held::Write(buf))
            }
            Op::Readv {
                fd,
                mut bufs,
                offset,
            } => {
                let iov = IovecArray::new(
                    bufs.iter_mut()
                        .map(|b| libc::iovec {
                            iov_base: b.stable_mut_ptr().cast(),
                            iov_len: b.bytes_total(),
                        })
                        .collect(),
                );
                let (ptr, n) = (iov.as_ptr(), iov.len() as u32);
                let sqe = with_fd!(fd, |f| opcode::Readv::new(f, ptr, n).offset(offset).build());
                (sqe, Held::Readv(Box::new((bufs, iov))))
            }
            Op::Writev { fd, bufs, offset } => {
                let iov = IovecArray::new(
                    bufs.iter()
                        .map(|b| libc::iovec {
                            iov_base: b.stable_ptr() as *mut libc::c_void,
                            iov_len: b.bytes_init(),
                        })
                        .collect(),
                );
                let (ptr, n) = (iov.as_ptr(), iov.len() as u32);
                let sqe = with_fd!(fd, |f| opcode::Writev::new(f, ptr, n)
                    .offset(offset)
                    .build());
                (sqe, Held::Writev(Box::new((bufs, iov))))
            }
            Op::Fsync { fd, datasync } => {
                let flags = if datasync {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                let sqe = with_fd!(fd, |f| opcode::Fsync::new(f).flags(flags).build());
                (sqe, Held::None)
            }
            Op::Fallocate {
                fd,
                mode,
                offset,
                len,
            } => {
                let sqe = with_fd!(fd, |f| opcode::Fallocate::new(f, len)
                    .offset(offset)
                    .mode(mode)
                    .build());
                (sqe, Held::None)
            }
            Op::Ftruncate { fd, len } => {
                let sqe = with_fd!(fd, |f| opcode::Ftruncate::new(f, len).build());
                (sqe, Held::None)
            }
            Op::Statx {
                dirfd,
                path,
                flags,
                mask,
            } => {
                // SAFETY: `libc::statx` is plain old data; all-zero is a valid value.
                let mut out: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
                let out_ptr: *mut libc::statx = &mut *out;
                let sqe = opcode::Statx::new(
                    types::Fd(dirfd),
                    path.as_ptr(),
                    out_ptr.cast::<types::statx>(),
                )
                .flags(flags)
                .mask(mask)
                .build();
                (sqe, Held::Statx(Box::new((out, path))))
            }
            Op::OpenAt {
                dirfd,
                path,
                flags,
                mode,
            } => {
                let sqe = opcode::OpenAt::new(types::Fd(dirfd), path.as_ptr())
                    .flags(flags)
                    .mode(mode as libc::mode_t)
                    .build();
                (sqe, Held::Path(path))
            }
            Op::Close { fd } => {
                let sqe = with_fd!(fd, |f| opcode::Close::new(f).build());
                (sqe, Held::None)
            }
            Op::ReadFixed {
                fd,
                mut buf,
                buf_index,
                offset,
            } => {
                let ptr = buf.stable_mut_ptr();
                let len = buf.bytes_total() as u32;
                let sqe = sqe_words(
                    opcode::ReadFixed::CODE,
                    fd,
                    offset,
                    ptr as u64,
                    len,
                    buf_index,
                );
                (sqe, Held::Read(buf))
            }
            Op::WriteFixed {
                fd,
                buf,
                buf_index,
                offset,
            } => {
                let ptr = buf.stable_ptr();
                let len = buf.bytes_init() as u32;
                let sqe = sqe_words(
                    opcode::WriteFixed::CODE,
                    fd,
                    offset,
                    ptr as u64,
                    len,
                    buf_index,
                );
                (sqe, Held::Write(buf))
            }
        }
    }
}

/// The SQE of a NOP or a (fixed) read/write, assembled as eight whole
/// 64-bit words in the kernel's `io_uring_sqe` layout (what io-uring's
/// builders produce for these opcodes: no flags but `IOSQE_FIXED_FILE`, no
/// ioprio, no rw_flags, no personality; `user_data` is set by the caller).
///
/// io-uring's builders fill a zeroed SQE field by field (byte, half-word
/// and word stores); the SQE was then copied into the SQ with wide loads
/// right after those narrow stores, a store-forwarding stall per op.
/// Whole words can stay in registers until they are stored into the SQ.
/// `sqe_words_match_the_builders` checks the layout against the builders.
#[inline(always)]
fn sqe_words(opcode: u8, fd: Fd, off: u64, addr: u64, len: u32, buf_index: u16) -> squeue::Entry {
    let (fd, flags) = match fd {
        Fd::Raw(fd) => (fd as u32, 0u8),
        Fd::Fixed(idx) => (idx, squeue::Flags::FIXED_FILE.bits()),
    };
    // Word 0: opcode (u8), flags (u8), ioprio (u16), fd (i32).
    let w0 = u64::from(opcode) | (u64::from(flags) << 8) | (u64::from(fd) << 32);
    // Words: 0, off, addr, len | rw_flags << 32, user_data,
    // buf_index | personality << 16 | file_index << 32, addr3, pad.
    let words: [u64; 8] = [w0, off, addr, u64::from(len), 0, u64::from(buf_index), 0, 0];
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (the size is checked by `transmute`), made of integers
    // and unions of integers only, so every bit pattern is a valid value;
    // both types have 8-byte alignment. The words follow the kernel ABI
    // layout (see the test named above).
    unsafe { std::mem::transmute::<[u64; 8], squeue::Entry>(words) }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Op");
        d.field("kind", &self.kind());
        match self {
            Op::Read { fd, offset, .. }
            | Op::Write { fd, offset, .. }
            | Op::Readv { fd, offset, .. }
            | Op::Writev { fd, offset, .. }
            | Op::ReadFixed { fd, offset, .. }
            | Op::WriteFixed { fd, offset, .. } => {
                d.field("fd", fd)
                    .field("offset", offset)
                    .field("len", &self.len());
            }
            Op::Fsync { fd, datasync } => {
                d.field("fd", fd).field("datasync", datasync);
            }
            Op::Fallocate {
                fd,
                mode,
                offset,
                len,
            } => {
                d.field("fd", fd)
                    .field("mode", mode)
                    .field("offset", offset)
                    .field("len", len);
            }
            Op::Ftruncate { fd, len } => {
                d.field("fd", fd).field("len", len);
            }
            Op::Statx { dirfd, path, .. } | Op::OpenAt { dirfd, path, .. } => {
                d.field("dirfd", dirfd).field("path", path);
            }
            Op::Close { fd } => {
                d.field("fd", fd);
            }
            Op::Nop => {}
        }
        d.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_distinct_opcodes() {
        let mut codes: Vec<u8> = OpKind::ALL.iter().map(|k| k.opcode()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), OpKind::ALL.len());
        for (i, k) in OpKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn too_many_iovecs_is_invalid() {
        let bufs: Vec<Box<dyn OwnedBuf>> = (0..MAX_IOVECS + 1)
            .map(|_| Box::new(vec![0u8; 1]) as Box<dyn OwnedBuf>)
            .collect();
        let op = Op::Writev {
            fd: Fd::Raw(0),
            bufs,
            offset: 0,
        };
        assert!(op.validate().is_err());
    }

    #[test]
    fn read_sqe_points_at_the_buffer() {
        let buf = vec![0u8; 0].into_iter().collect::<Vec<u8>>();
        let mut buf = buf;
        buf.reserve_exact(64);
        let total = buf.capacity();
        let op = Op::read(Fd::Raw(3), buf, 4096);
        assert_eq!(op.len(), total as u64);
        let (sqe, held) = op.into_sqe();
        assert_eq!(sqe.get_opcode(), u32::from(opcode::Read::CODE));
        assert!(matches!(held, Held::Read(_)));
    }

    /// The SQE bytes of a 64-byte entry.
    fn sqe_bytes(e: &squeue::Entry) -> [u8; 64] {
        // SAFETY: test-only view of a 64-byte `repr(C)` value of integers.
        unsafe { std::mem::transmute_copy::<squeue::Entry, [u8; 64]>(e) }
    }

    /// `sqe_words` (the hot ops' SQEs, built as whole words) produces the
    /// very bytes io-uring's builders produce, for raw and registered
    /// files, with a user_data set afterwards as the ring does.
    #[test]
    fn sqe_words_match_the_builders() {
        let (off, addr, len, bi) = (0x1234_5678_9abc_u64, 0xdead_beef_f00d_u64, 4096u32, 7u16);
        for (fd, raw, fixed) in [(Fd::Raw(5), 5, None), (Fd::Fixed(9), 9, Some(9u32))] {
            let ours = [
                sqe_words(opcode::Read::CODE, fd, off, addr, len, 0),
                sqe_words(opcode::Write::CODE, fd, off, addr, len, 0),
                sqe_words(opcode::ReadFixed::CODE, fd, off, addr, len, bi),
                sqe_words(opcode::WriteFixed::CODE, fd, off, addr, len, bi),
            ];
            let theirs = match fixed {
                None => {
                    let f = types::Fd(raw);
                    [
                        opcode::Read::new(f, addr as *mut u8, len)
                            .offset(off)
                            .build(),
                        opcode::Write::new(f, addr as *const u8, len)
                            .offset(off)
                            .build(),
                        opcode::ReadFixed::new(f, addr as *mut u8, len, bi)
                            .offset(off)
                            .build(),
                        opcode::WriteFixed::new(f, addr as *const u8, len, bi)
                            .offset(off)
                            .build(),
                    ]
                }
                Some(i) => {
                    let f = types::Fixed(i);
                    [
                        opcode::Read::new(f, addr as *mut u8, len)
                            .offset(off)
                            .build(),
                        opcode::Write::new(f, addr as *const u8, len)
                            .offset(off)
                            .build(),
                        opcode::ReadFixed::new(f, addr as *mut u8, len, bi)
                            .offset(off)
                            .build(),
                        opcode::WriteFixed::new(f, addr as *const u8, len, bi)
                            .offset(off)
                            .build(),
                    ]
                }
            };
            for (i, (a, b)) in ours.into_iter().zip(theirs).enumerate() {
                let (a, b) = (a.user_data(0x77), b.user_data(0x77));
                assert_eq!(sqe_bytes(&a), sqe_bytes(&b), "op {i} on {fd:?}");
            }
        }
        let nop = sqe_words(opcode::Nop::CODE, Fd::Raw(-1), 0, 0, 0, 0).user_data(3);
        let want = opcode::Nop::new().build().user_data(3);
        assert_eq!(sqe_bytes(&nop), sqe_bytes(&want));
        // And what `into_sqe` builds for a NOP and a read is exactly that.
        let (sqe, _) = Op::Nop.into_sqe();
        assert_eq!(sqe_bytes(&sqe.user_data(3)), sqe_bytes(&want));
        let mut buf: Vec<u8> = Vec::with_capacity(64);
        let ptr = buf.as_mut_ptr();
        let total = buf.capacity() as u32;
        let (sqe, _) = Op::read(Fd::Raw(3), buf, 4096).into_sqe();
        let want = opcode::Read::new(types::Fd(3), ptr, total)
            .offset(4096)
            .build();
        assert_eq!(sqe_bytes(&sqe), sqe_bytes(&want));
    }

    /// `take_sqe` builds the SQE `into_sqe` builds, hands the buffer over
    /// (as the same `Held`) and leaves `Op::Nop` behind, for every op.
    #[test]
    fn take_sqe_matches_into_sqe_and_leaves_a_nop() {
        let make = |which: u32| -> Op {
            let b: Vec<u8> = Vec::with_capacity(16);
            match which {
                0 => Op::Nop,
                1 => Op::read(Fd::Raw(3), b, 7),
                2 => Op::Write {
                    fd: Fd::Fixed(2),
                    buf: Box::new(vec![1u8; 9]),
                    offset: 11,
                },
                3 => Op::ReadFixed {
                    fd: Fd::Raw(4),
                    buf: Box::new(b),
                    buf_index: 3,
                    offset: 5,
                },
                4 => Op::WriteFixed {
                    fd: Fd::Fixed(1),
                    buf: Box::new(vec![2u8; 4]),
                    buf_index: 6,
                    offset: 8,
                },
                _ => Op::Fsync {
                    fd: Fd::Raw(5),
                    datasync: true,
                },
            }
        };
        let kind = |h: &Held| std::mem::discriminant(h);
        for which in 0..6 {
            let mut op = make(which);
            let (ours, held) = op.take_sqe();
            assert!(matches!(op, Op::Nop), "op {which}: a NOP left behind");
            let (theirs, held2) = make(which).into_sqe();
            assert_eq!(kind(&held), kind(&held2), "op {which}: same Held");
            let (mut a, mut b) = (sqe_bytes(&ours), sqe_bytes(&theirs));
            // The address is the buffer's (a different one in `theirs`).
            if let Held::Read(buf) | Held::Write(buf) = &held {
                let addr = u64::from_le_bytes(a[16..24].try_into().unwrap());
                assert_eq!(addr, buf.stable_ptr() as u64, "op {which}: address");
                a[16..24].fill(0);
                b[16..24].fill(0);
            }
            assert_eq!(a, b, "op {which}");
        }
    }
}
