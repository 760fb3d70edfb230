//! Building an [`Op`]'s SQE: [`Op::take_sqe`] and [`Op::into_sqe`] for every
//! op, and `sqe_words`, the hot ops' SQEs assembled as whole words.

use io_uring::{opcode, squeue, types};

use super::{Fd, Op};
use crate::resources::{Held, IovecArray};

impl Op {
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
pub(super) fn sqe_words(
    opcode: u8,
    fd: Fd,
    off: u64,
    addr: u64,
    len: u32,
    buf_index: u16,
) -> squeue::Entry {
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
