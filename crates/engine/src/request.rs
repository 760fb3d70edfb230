//! [`Request`]: one operation described before it is submitted, plus how its
//! raw completion turns into the typed output the caller gets back.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use auraio_ring::{Fd, IoBufMut, Op, OpKind, Resources};

/// The output of a read or write: the byte count (or the error) and the
/// buffer, which always comes back to the caller.
pub type BufResult<B> = (io::Result<usize>, B);

/// Turns a raw completion (result, resources) into a typed output.
pub(crate) type Conv<O> = fn(io::Result<u32>, Resources) -> O;

/// Something an operation can target: any open file (`&File`, `&OwnedFd`,
/// `BorrowedFd`, ...) or a [`FixedFile`] registered with
/// [`Engine::register_files`](crate::Engine::register_files).
///
/// The file must stay open until the operation completes: the engine holds
/// only the descriptor number.
pub trait AsIoFd {
    /// The descriptor the ring should use.
    fn as_io_fd(&self) -> Fd;
}

impl<T: AsRawFd + ?Sized> AsIoFd for T {
    fn as_io_fd(&self) -> Fd {
        Fd::Raw(self.as_raw_fd())
    }
}

/// A file registered with every ring of an engine
/// ([`Engine::register_files`](crate::Engine::register_files)); operations on
/// it skip the kernel's per-op file lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedFile(pub(crate) u32);

impl FixedFile {
    /// The index in the registered file table.
    pub fn index(self) -> u32 {
        self.0
    }

    /// Refers to registered file slot `index` (as returned by
    /// [`Engine::register_files`](crate::Engine::register_files)).
    pub fn from_index(index: u32) -> Self {
        FixedFile(index)
    }
}

impl AsIoFd for FixedFile {
    fn as_io_fd(&self) -> Fd {
        Fd::Fixed(self.0)
    }
}

/// One operation, ready to go to [`Engine::submit`](crate::Engine::submit)
/// (callback) or [`Engine::call`](crate::Engine::call) (future). `O` is what
/// the caller gets back: for example [`BufResult<B>`] for a read.
///
/// Everything the kernel touches (buffers, paths) is owned by the request
/// and later by the engine until the completion arrives.
pub struct Request<O> {
    pub(crate) op: Op,
    pub(crate) pre_error: Option<io::Error>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) conv: Conv<O>,
}

impl<O> std::fmt::Debug for Request<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("op", &self.op.kind())
            .field("len", &self.op.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<O> Request<O> {
    #[inline]
    fn new(op: Op, conv: Conv<O>) -> Self {
        Request {
            op,
            pre_error: None,
            timeout: None,
            conv,
        }
    }

    /// A request on a path. A path the kernel cannot take (an interior NUL
    /// byte) is kept as the request's error, reported at submit; the op is
    /// then never sent.
    fn with_path(path: &Path, op: impl FnOnce(CString) -> Op, conv: Conv<O>) -> Self {
        let (cpath, err) = match path_cstring(path) {
            Ok(p) => (p, None),
            Err(e) => (CString::default(), Some(e)),
        };
        let mut r = Request::new(op(cpath), conv);
        r.pre_error = err;
        r
    }

    /// Gives the operation a deadline: if it has not completed after `d`, the
    /// kernel cancels it and it completes with `ECANCELED`
    /// (`io::Error::raw_os_error() == Some(libc::ECANCELED)`).
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The kind of operation.
    pub fn kind(&self) -> OpKind {
        self.op.kind()
    }

    /// Bytes the operation asks to transfer (0 for non-data operations).
    pub fn len(&self) -> u64 {
        self.op.len()
    }

    /// True when [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.op.is_empty()
    }

    /// Completes this request without running it: the output carries `e`
    /// and hands back every owned buffer.
    pub(crate) fn fail(self, e: io::Error) -> O {
        fail_op(self.op, self.conv, e)
    }
}

/// Builds the output for an op that never reached the kernel.
pub(crate) fn fail_op<O>(op: Op, conv: Conv<O>, e: io::Error) -> O {
    conv(Err(e), op_into_resources(op))
}

/// What an op owns, as the resources its completion would carry.
pub(crate) fn op_into_resources(op: Op) -> Resources {
    match op {
        Op::Read { buf, .. }
        | Op::Write { buf, .. }
        | Op::ReadFixed { buf, .. }
        | Op::WriteFixed { buf, .. } => Resources::Buf(buf),
        Op::Readv { bufs, .. } | Op::Writev { bufs, .. } => Resources::Bufs(bufs),
        Op::OpenAt { path, .. } => Resources::Path(path),
        Op::Close { fd: Fd::Raw(fd) } => {
            // The caller gave up ownership of `fd`; as the close never ran,
            // close it here so it does not leak.
            // SAFETY: `fd` was obtained with `into_raw_fd` from an `OwnedFd`
            // handed to `Request::close`; nobody else owns it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            Resources::None
        }
        _ => Resources::None,
    }
}

/// Largest file position Linux accepts (`loff_t` is an `i64`).
const MAX_POS: u64 = i64::MAX as u64;

/// Checks what the engine can check before the kernel sees the op: file
/// positions must fit Linux's signed `loff_t`. An offset above `i64::MAX`
/// would reach the kernel as a negative position (`u64::MAX` even means
/// "the current file position" to io_uring), so it is refused here with
/// `InvalidInput` instead.
#[inline]
pub(crate) fn check_op(op: &Op) -> Option<io::Error> {
    let (offset, len) = match op {
        Op::Read { offset, .. }
        | Op::Write { offset, .. }
        | Op::Readv { offset, .. }
        | Op::Writev { offset, .. }
        | Op::ReadFixed { offset, .. }
        | Op::WriteFixed { offset, .. } => (*offset, op.len()),
        Op::Fallocate { offset, len, .. } => (*offset, *len),
        Op::Ftruncate { len, .. } => (*len, 0),
        _ => return None,
    };
    let end = offset.checked_add(len);
    if offset > MAX_POS || end.is_none_or(|e| e > MAX_POS) {
        Some(range_error(op, offset, len))
    } else {
        None
    }
}

/// The error of [`check_op`] (out of line: never on the hot path).
#[cold]
fn range_error(op: &Op, offset: u64, len: u64) -> io::Error {
    let what = op.kind().name();
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{what}: offset {offset} + length {len} is beyond i64::MAX, \
             the largest file position Linux accepts"
        ),
    )
}

/// The ring's own checks on an op (buffer sizes, iovec count), made before
/// the op is handed over, so that a batch can give a refused op back with
/// its callback (same errors as the ring's).
pub(crate) fn check_ring_limits(op: &Op) -> Option<io::Error> {
    let fits = |n: usize| u32::try_from(n).is_ok();
    let msg = match op {
        Op::Read { buf, .. } | Op::ReadFixed { buf, .. } if !fits(buf.bytes_total()) => {
            "buffer larger than u32::MAX bytes"
        }
        Op::Write { buf, .. } | Op::WriteFixed { buf, .. } if !fits(buf.bytes_init()) => {
            "buffer larger than u32::MAX bytes"
        }
        Op::Readv { bufs, .. } | Op::Writev { bufs, .. }
            if bufs.len() > auraio_ring::MAX_IOVECS =>
        {
            "more than 1024 iovecs"
        }
        _ => return None,
    };
    Some(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// Whether `op` targets a registered file.
pub(crate) fn uses_fixed_file(op: &Op) -> bool {
    match op {
        Op::Read { fd, .. }
        | Op::Write { fd, .. }
        | Op::Readv { fd, .. }
        | Op::Writev { fd, .. }
        | Op::Fsync { fd, .. }
        | Op::Fallocate { fd, .. }
        | Op::Ftruncate { fd, .. }
        | Op::Close { fd }
        | Op::ReadFixed { fd, .. }
        | Op::WriteFixed { fd, .. } => matches!(fd, Fd::Fixed(_)),
        _ => false,
    }
}

/// A best-effort copy of an `io::Error` (kind, errno and message; a
/// shutdown error stays recognisable by [`is_shutdown`](crate::is_shutdown)).
pub(crate) fn clone_error(e: &io::Error) -> io::Error {
    if crate::error::is_shutdown(e) {
        return crate::error::shutdown_error();
    }
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

const LOST_BUFFER: &str =
    "auraio internal invariant broken: a completion did not carry back the buffer it was given";

fn conv_buf<B: IoBufMut>(r: io::Result<u32>, res: Resources) -> BufResult<B> {
    let buf = res.into_buf::<B>().expect(LOST_BUFFER);
    (r.map(|n| n as usize), buf)
}

fn conv_bufs<B: IoBufMut>(r: io::Result<u32>, res: Resources) -> BufResult<Vec<B>> {
    let bufs = match res {
        Resources::Bufs(_) => res.into_bufs::<B>().expect(LOST_BUFFER),
        _ => panic!("{LOST_BUFFER}"),
    };
    (r.map(|n| n as usize), bufs)
}

fn conv_unit(r: io::Result<u32>, res: Resources) -> io::Result<()> {
    // The ops of a unit result (NOP, fsync, ...) own nothing: no drop glue
    // called per completion for their `Resources::None`.
    if !matches!(res, Resources::None) {
        drop(res);
    } else {
        std::mem::forget(res);
    }
    r.map(|_| ())
}

fn conv_statx(r: io::Result<u32>, res: Resources) -> io::Result<Box<libc::statx>> {
    r?;
    res.into_statx()
        .ok_or_else(|| io::Error::other("statx completed without a result"))
}

fn conv_open(r: io::Result<u32>, _res: Resources) -> io::Result<OwnedFd> {
    let fd = r? as RawFd;
    // SAFETY: a successful openat returns a new descriptor that nobody else
    // owns; from here the caller owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn path_cstring(path: &Path) -> Result<CString, io::Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}

fn dir_fd(dir: Option<BorrowedFd<'_>>) -> RawFd {
    dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd())
}

impl<B: IoBufMut> Request<BufResult<B>> {
    /// Read up to `buf.bytes_total()` bytes at `offset` into `buf`.
    ///
    /// `offset + len` must fit in an `i64` (Linux's `loff_t`), else the
    /// submission fails with `InvalidInput`. Offsets are always explicit
    /// (io_uring's "current position" is not used); for pipes and sockets
    /// pass 0.
    pub fn read(fd: &(impl AsIoFd + ?Sized), buf: B, offset: u64) -> Self {
        Request::new(
            Op::Read {
                fd: fd.as_io_fd(),
                buf: Box::new(buf),
                offset,
            },
            conv_buf::<B>,
        )
    }

    /// Write `buf.bytes_init()` bytes from `buf` at `offset`.
    pub fn write(fd: &(impl AsIoFd + ?Sized), buf: B, offset: u64) -> Self {
        Request::new(
            Op::Write {
                fd: fd.as_io_fd(),
                buf: Box::new(buf),
                offset,
            },
            conv_buf::<B>,
        )
    }

    /// Read into a buffer that lies inside registered buffer `buf_index`
    /// ([`Engine::register_buffers`](crate::Engine::register_buffers));
    /// otherwise the kernel fails it with `EFAULT`.
    pub fn read_fixed(fd: &(impl AsIoFd + ?Sized), buf: B, buf_index: u16, offset: u64) -> Self {
        Request::new(
            Op::ReadFixed {
                fd: fd.as_io_fd(),
                buf: Box::new(buf),
                buf_index,
                offset,
            },
            conv_buf::<B>,
        )
    }

    /// Write from a buffer inside registered buffer `buf_index`.
    pub fn write_fixed(fd: &(impl AsIoFd + ?Sized), buf: B, buf_index: u16, offset: u64) -> Self {
        Request::new(
            Op::WriteFixed {
                fd: fd.as_io_fd(),
                buf: Box::new(buf),
                buf_index,
                offset,
            },
            conv_buf::<B>,
        )
    }
}

impl<B: IoBufMut> Request<BufResult<Vec<B>>> {
    /// Scatter read at `offset`: fills each buffer's `bytes_total()` in order.
    pub fn readv(fd: &(impl AsIoFd + ?Sized), bufs: Vec<B>, offset: u64) -> Self {
        Request::new(
            Op::Readv {
                fd: fd.as_io_fd(),
                bufs: bufs
                    .into_iter()
                    .map(|b| Box::new(b) as Box<dyn auraio_ring::OwnedBuf>)
                    .collect(),
                offset,
            },
            conv_bufs::<B>,
        )
    }

    /// Gather write at `offset`: sends each buffer's `bytes_init()` in order.
    pub fn writev(fd: &(impl AsIoFd + ?Sized), bufs: Vec<B>, offset: u64) -> Self {
        Request::new(
            Op::Writev {
                fd: fd.as_io_fd(),
                bufs: bufs
                    .into_iter()
                    .map(|b| Box::new(b) as Box<dyn auraio_ring::OwnedBuf>)
                    .collect(),
                offset,
            },
            conv_bufs::<B>,
        )
    }
}

impl Request<io::Result<()>> {
    /// An operation that does nothing and completes with success.
    #[inline]
    pub fn nop() -> Self {
        Request::new(Op::Nop, conv_unit)
    }

    /// `fsync`: data and metadata.
    pub fn fsync(fd: &(impl AsIoFd + ?Sized)) -> Self {
        Request::new(
            Op::Fsync {
                fd: fd.as_io_fd(),
                datasync: false,
            },
            conv_unit,
        )
    }

    /// `fdatasync`: data and the metadata needed to read it.
    pub fn fdatasync(fd: &(impl AsIoFd + ?Sized)) -> Self {
        Request::new(
            Op::Fsync {
                fd: fd.as_io_fd(),
                datasync: true,
            },
            conv_unit,
        )
    }

    /// `fallocate(fd, mode, offset, len)`; `mode` 0 allocates (and extends).
    pub fn fallocate(fd: &(impl AsIoFd + ?Sized), mode: i32, offset: u64, len: u64) -> Self {
        Request::new(
            Op::Fallocate {
                fd: fd.as_io_fd(),
                mode,
                offset,
                len,
            },
            conv_unit,
        )
    }

    /// `ftruncate(fd, len)` (Linux 6.9+; otherwise an `Unsupported` error at
    /// submit).
    pub fn ftruncate(fd: &(impl AsIoFd + ?Sized), len: u64) -> Self {
        Request::new(
            Op::Ftruncate {
                fd: fd.as_io_fd(),
                len,
            },
            conv_unit,
        )
    }

    /// Closes `fd`, which the request now owns. If the request is never
    /// submitted (or its submission fails) the descriptor is closed anyway.
    pub fn close(fd: OwnedFd) -> Self {
        Request::new(
            Op::Close {
                fd: Fd::Raw(fd.into_raw_fd()),
            },
            conv_unit,
        )
    }

    /// Frees registered file slot `file` (the file it holds is closed when
    /// no longer used).
    pub fn close_fixed(file: FixedFile) -> Self {
        Request::new(
            Op::Close {
                fd: Fd::Fixed(file.0),
            },
            conv_unit,
        )
    }
}

impl Request<io::Result<Box<libc::statx>>> {
    /// `statx(dir, path, flags, mask)`; `dir` `None` means the current
    /// directory. `flags` are `libc::AT_*`, `mask` `libc::STATX_*`.
    pub fn statx(
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mask: u32,
    ) -> Self {
        Request::with_path(
            path.as_ref(),
            |path| Op::Statx {
                dirfd: dir_fd(dir),
                path,
                flags,
                mask,
            },
            conv_statx,
        )
    }
}

impl Request<io::Result<OwnedFd>> {
    /// `openat(dir, path, flags, mode)`; `dir` `None` means the current
    /// directory. The new descriptor is returned as an [`OwnedFd`].
    /// `O_CLOEXEC` is added to `flags`.
    pub fn openat(
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mode: u32,
    ) -> Self {
        Request::with_path(
            path.as_ref(),
            |path| Op::OpenAt {
                dirfd: dir_fd(dir),
                path,
                flags: flags | libc::O_CLOEXEC,
                mode,
            },
            conv_open,
        )
    }
}
