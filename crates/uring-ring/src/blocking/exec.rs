//! Runs one op with blocking syscalls. Same result convention as io_uring:
//! `>= 0` on success, `-errno` on failure.

use std::os::fd::RawFd;

use crate::blocking::state::{held_of, Target};
use crate::op::{Op, OpKind};
use crate::resources::{Held, IovecArray, Resources};

/// Turns a syscall's return value into a result: `-errno` when negative.
fn result_of(ret: isize) -> i32 {
    if ret < 0 {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        i32::try_from(ret).unwrap_or(i32::MAX)
    }
}

/// Calls `f` until it does not fail with `EINTR`.
fn retry(mut f: impl FnMut() -> isize) -> i32 {
    loop {
        let r = result_of(f());
        if r != -libc::EINTR {
            return r;
        }
    }
}

/// A positioned transfer like io_uring does it: offset `u64::MAX` (-1)
/// means "the file position"; a non-seekable file (pipe, socket) ignores
/// the offset; an offset beyond `i64::MAX` is `-EINVAL`.
fn at_offset(
    offset: u64,
    mut positioned: impl FnMut(libc::off_t) -> isize,
    mut plain: impl FnMut() -> isize,
) -> i32 {
    if offset == u64::MAX {
        return retry(&mut plain);
    }
    let Ok(off) = libc::off_t::try_from(offset) else {
        return -libc::EINVAL;
    };
    let r = retry(|| positioned(off));
    if r == -libc::ESPIPE {
        retry(plain)
    } else {
        r
    }
}

fn off(v: u64) -> Result<libc::off_t, i32> {
    libc::off_t::try_from(v).map_err(|_| -libc::EINVAL)
}

/// Whether `result` means the op did all it was asked (for links): data
/// ops must transfer every byte, others must not fail.
pub(crate) fn succeeded_fully(kind: OpKind, expected: u64, result: i32) -> bool {
    if result < 0 {
        return false;
    }
    match kind {
        OpKind::Read
        | OpKind::Write
        | OpKind::Readv
        | OpKind::Writev
        | OpKind::ReadFixed
        | OpKind::WriteFixed => result as u64 == expected,
        _ => true,
    }
}

/// Executes `op` on the calling thread and returns its result and the
/// resources it owned (reads with their init length set).
pub(crate) fn execute(op: Op, target: Target, pre: Option<i32>) -> (i32, Resources) {
    if let Some(res) = pre {
        return held_of(op).into_resources(res);
    }
    let fd: Result<RawFd, i32> = target.raw();
    let (result, held) = match op {
        Op::Nop => (0, Held::None),
        Op::Read {
            mut buf, offset, ..
        }
        | Op::ReadFixed {
            mut buf, offset, ..
        } => {
            let res = fd.map_or_else(
                |e| e,
                |fd| {
                    let (ptr, len) = (buf.stable_mut_ptr(), buf.bytes_total());
                    at_offset(
                        offset,
                        // SAFETY: `ptr` is valid for `len` bytes of writes
                        // (IoBufMut contract) and the buffer is owned by this
                        // op for the whole call.
                        |o| unsafe { libc::pread(fd, ptr.cast(), len, o) },
                        // SAFETY: as above.
                        || unsafe { libc::read(fd, ptr.cast(), len) },
                    )
                },
            );
            (res, Held::Read(buf))
        }
        Op::Write { buf, offset, .. } | Op::WriteFixed { buf, offset, .. } => {
            let res = fd.map_or_else(
                |e| e,
                |fd| {
                    let (ptr, len) = (buf.stable_ptr(), buf.bytes_init());
                    at_offset(
                        offset,
                        // SAFETY: `ptr` is valid for `len` initialized bytes
                        // (IoBuf contract); the op owns the buffer.
                        |o| unsafe { libc::pwrite(fd, ptr.cast(), len, o) },
                        // SAFETY: as above.
                        || unsafe { libc::write(fd, ptr.cast(), len) },
                    )
                },
            );
            (res, Held::Write(buf))
        }
        Op::Readv {
            mut bufs, offset, ..
        } => {
            let iov: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.stable_mut_ptr().cast(),
                    iov_len: b.bytes_total(),
                })
                .collect();
            let n = iov.len() as libc::c_int;
            let res = fd.map_or_else(
                |e| e,
                |fd| {
                    at_offset(
                        offset,
                        // SAFETY: each iovec describes a writable buffer owned
                        // by this op (IoBufMut contract); `n` <= 1024 entries.
                        |o| unsafe { libc::preadv(fd, iov.as_ptr(), n, o) },
                        // SAFETY: as above.
                        || unsafe { libc::readv(fd, iov.as_ptr(), n) },
                    )
                },
            );
            (res, Held::Readv(Box::new((bufs, IovecArray::new(iov)))))
        }
        Op::Writev { bufs, offset, .. } => {
            let iov: Vec<libc::iovec> = bufs
                .iter()
                .map(|b| libc::iovec {
                    iov_base: b.stable_ptr() as *mut libc::c_void,
                    iov_len: b.bytes_init(),
                })
                .collect();
            let n = iov.len() as libc::c_int;
            let res = fd.map_or_else(
                |e| e,
                |fd| {
                    at_offset(
                        offset,
                        // SAFETY: each iovec describes initialized bytes of a
                        // buffer owned by this op; the kernel only reads them.
                        |o| unsafe { libc::pwritev(fd, iov.as_ptr(), n, o) },
                        // SAFETY: as above.
                        || unsafe { libc::writev(fd, iov.as_ptr(), n) },
                    )
                },
            );
            (res, Held::Writev(Box::new((bufs, IovecArray::new(iov)))))
        }
        Op::Fsync { datasync, .. } => {
            let res = fd.map_or_else(
                |e| e,
                |fd| {
                    retry(|| {
                        // SAFETY: plain syscalls on an integer fd.
                        let r = unsafe {
                            if datasync {
                                libc::fdatasync(fd)
                            } else {
                                libc::fsync(fd)
                            }
                        };
                        r as isize
                    })
                },
            );
            (res, Held::None)
        }
        Op::Fallocate {
            mode, offset, len, ..
        } => {
            let res = fd
                .and_then(|fd| Ok((fd, off(offset)?, off(len)?)))
                .map_or_else(
                    |e| e,
                    |(fd, o, l)| {
                        // SAFETY: plain syscall on integer arguments.
                        retry(|| unsafe { libc::fallocate(fd, mode, o, l) } as isize)
                    },
                );
            (res, Held::None)
        }
        Op::Ftruncate { len, .. } => {
            let res = fd.and_then(|fd| Ok((fd, off(len)?))).map_or_else(
                |e| e,
                // SAFETY: plain syscall on integer arguments.
                |(fd, l)| retry(|| unsafe { libc::ftruncate(fd, l) } as isize),
            );
            (res, Held::None)
        }
        Op::Statx {
            dirfd,
            path,
            flags,
            mask,
        } => {
            // SAFETY: `libc::statx` is plain old data; all-zero is valid.
            let mut st: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
            let out: *mut libc::statx = &mut *st;
            let res = retry(|| {
                // SAFETY: `path` is a NUL-terminated string and `out` points
                // at a live, writable `struct statx`, both owned here.
                unsafe {
                    libc::syscall(libc::SYS_statx, dirfd, path.as_ptr(), flags, mask, out) as isize
                }
            });
            (res, Held::Statx(Box::new((st, path))))
        }
        Op::OpenAt {
            dirfd,
            path,
            flags,
            mode,
        } => {
            let res = retry(|| {
                // SAFETY: `path` is a NUL-terminated string owned here.
                unsafe { libc::openat(dirfd, path.as_ptr(), flags, mode as libc::c_uint) as isize }
            });
            (res, Held::Path(path))
        }
        Op::Close { .. } => {
            let res = match target {
                // Dropping the table's duplicate closes it (once no other
                // op still uses it).
                Target::Registered(fd) => {
                    drop(fd);
                    0
                }
                Target::Missing => -libc::EBADF,
                // SAFETY: closing an integer fd the caller gave us to close;
                // never retried (the fd is gone even on EINTR).
                Target::Raw(fd) => result_of(unsafe { libc::close(fd) } as isize),
            };
            (res, Held::None)
        }
    };
    held.into_resources(result)
}
