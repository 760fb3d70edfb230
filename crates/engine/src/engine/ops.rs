//! Futures and typed ops: [`Engine::call`], [`Engine::cancel`], the
//! callback methods ([`Engine::read`], ...) and their async forms
//! ([`Engine::read_at`], ...).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use auraio_ring::IoBufMut;

use crate::config::ReaperMode;
use crate::error::SubmitError;
use crate::future::OpFuture;
use crate::op_state::{Deliver, OpHandle};
use crate::request::{AsIoFd, BufResult, Request};

use super::Engine;

macro_rules! cb_op {
    ($(#[$m:meta])* $name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty, $req:expr) => {
        $(#[$m])*
        pub fn $name<F>(&self, $($arg: $ty,)* cb: F) -> Result<OpHandle, SubmitError<$out>>
        where
            F: FnOnce($out) + Send + 'static,
        {
            self.submit_with_handle($req, cb)
        }
    };
}

impl Engine {
    fn ensure_reaper(&self) {
        let sh = self.sh();
        if sh.reaper_mode == ReaperMode::Auto && !sh.reapers_started.load(Ordering::Acquire) {
            if let Err(e) = sh.start_reapers() {
                eprintln!("auraio: could not start reaper threads: {e}");
            }
        }
    }

    /// Submits `req` and returns a future for its output. The op is
    /// submitted now (not at the first poll). Dropping the future before it
    /// completes cancels the op; the engine keeps its buffers until the
    /// kernel's completion arrives. Works on any executor: completions are
    /// driven by the reaper threads (started on first use, see
    /// [`ReaperMode`]).
    pub fn call<O: 'static>(&self, req: Request<O>) -> OpFuture<O> {
        self.ensure_reaper();
        let conv = req.conv;
        match self.submit_single(req, |_| (Deliver::Future, None), Self::with_handle) {
            Ok(ctl) => OpFuture::pending(ctl, Arc::clone(self.sh()), conv),
            Err(e) => OpFuture::ready(e.into_output()),
        }
    }

    /// Two linked requests as futures (see [`submit_linked`](Self::submit_linked)).
    pub fn call_linked<A: 'static, B: 'static>(
        &self,
        first: Request<A>,
        second: Request<B>,
    ) -> (OpFuture<A>, OpFuture<B>) {
        self.ensure_reaper();
        let (conv_a, conv_b) = (first.conv, second.conv);
        match self.submit_pair(
            first,
            |_| (Deliver::Future, None),
            second,
            |_| (Deliver::Future, None),
        ) {
            Ok((a, b)) => (
                OpFuture::pending(a, Arc::clone(self.sh()), conv_a),
                OpFuture::pending(b, Arc::clone(self.sh()), conv_b),
            ),
            Err(e) => {
                let (a, b) = e.into_output();
                (OpFuture::ready(a), OpFuture::ready(b))
            }
        }
    }

    /// Cancels a submitted op. If it is still in the backlog it completes at
    /// once with `ECANCELED`; if it is in the kernel, an async cancel is
    /// issued and the op completes with `ECANCELED` or, if it finished
    /// first, its own result. Cancelling a finished op does nothing.
    pub fn cancel(&self, op: &OpHandle) -> io::Result<()> {
        self.sh().cancel(&op.ctl)
    }

    // ----- callback face ------------------------------------------------------

    /// Reads up to `buf.bytes_total()` bytes of `fd` at `offset`; `cb` gets
    /// the byte count (or error) and the buffer. See [`submit`](Self::submit)
    /// for the contract.
    pub fn read<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(Request::read(fd, buf, offset), move |(r, b)| cb(r, b))
    }

    /// Writes `buf.bytes_init()` bytes to `fd` at `offset`.
    pub fn write<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(Request::write(fd, buf, offset), move |(r, b)| cb(r, b))
    }

    /// Scatter read into `bufs` at `offset`.
    pub fn readv<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<Vec<B>>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, Vec<B>) + Send + 'static,
    {
        self.submit_with_handle(Request::readv(fd, bufs, offset), move |(r, b)| cb(r, b))
    }

    /// Gather write from `bufs` at `offset`.
    pub fn writev<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<Vec<B>>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, Vec<B>) + Send + 'static,
    {
        self.submit_with_handle(Request::writev(fd, bufs, offset), move |(r, b)| cb(r, b))
    }

    /// Read into a registered buffer (see [`register_buffers`](Self::register_buffers)).
    pub fn read_fixed<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(
            Request::read_fixed(fd, buf, buf_index, offset),
            move |(r, b)| cb(r, b),
        )
    }

    /// Write from a registered buffer.
    pub fn write_fixed<B, F>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
        cb: F,
    ) -> Result<OpHandle, SubmitError<BufResult<B>>>
    where
        B: IoBufMut,
        F: FnOnce(io::Result<usize>, B) + Send + 'static,
    {
        self.submit_with_handle(
            Request::write_fixed(fd, buf, buf_index, offset),
            move |(r, b)| cb(r, b),
        )
    }

    cb_op!(
        /// `fsync(fd)`.
        fsync(fd: &(impl AsIoFd + ?Sized)) -> io::Result<()>, Request::fsync(fd)
    );
    cb_op!(
        /// `fdatasync(fd)`.
        fdatasync(fd: &(impl AsIoFd + ?Sized)) -> io::Result<()>, Request::fdatasync(fd)
    );
    cb_op!(
        /// `fallocate(fd, mode, offset, len)`.
        fallocate(fd: &(impl AsIoFd + ?Sized), mode: i32, offset: u64, len: u64) -> io::Result<()>,
        Request::fallocate(fd, mode, offset, len)
    );
    cb_op!(
        /// `ftruncate(fd, len)` (`Unsupported` before Linux 6.9).
        ftruncate(fd: &(impl AsIoFd + ?Sized), len: u64) -> io::Result<()>,
        Request::ftruncate(fd, len)
    );
    cb_op!(
        /// Closes `fd` (owned by the op from now on).
        close(fd: OwnedFd) -> io::Result<()>, Request::close(fd)
    );
    cb_op!(
        /// A no-op round trip through the ring.
        nop() -> io::Result<()>, Request::nop()
    );
    cb_op!(
        /// `statx(dir, path, flags, mask)`; `dir` `None` = current directory.
        statx(dir: Option<BorrowedFd<'_>>, path: impl AsRef<Path>, flags: i32, mask: u32)
            -> io::Result<Box<libc::statx>>, Request::statx(dir, path, flags, mask)
    );
    cb_op!(
        /// `openat(dir, path, flags, mode)`; the callback gets the new fd.
        openat(dir: Option<BorrowedFd<'_>>, path: impl AsRef<Path>, flags: i32, mode: u32)
            -> io::Result<OwnedFd>, Request::openat(dir, path, flags, mode)
    );

    // ----- async face ---------------------------------------------------------

    /// Reads up to `buf.bytes_total()` bytes at `offset`:
    /// `let (res, buf) = engine.read_at(&file, buf, 0).await;`
    pub fn read_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::read(fd, buf, offset))
    }

    /// Writes `buf.bytes_init()` bytes at `offset`.
    pub fn write_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::write(fd, buf, offset))
    }

    /// Scatter read at `offset`.
    pub fn readv_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
    ) -> OpFuture<BufResult<Vec<B>>> {
        self.call(Request::readv(fd, bufs, offset))
    }

    /// Gather write at `offset`.
    pub fn writev_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        bufs: Vec<B>,
        offset: u64,
    ) -> OpFuture<BufResult<Vec<B>>> {
        self.call(Request::writev(fd, bufs, offset))
    }

    /// Read into a registered buffer.
    pub fn read_fixed_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::read_fixed(fd, buf, buf_index, offset))
    }

    /// Write from a registered buffer.
    pub fn write_fixed_at<B: IoBufMut>(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        buf: B,
        buf_index: u16,
        offset: u64,
    ) -> OpFuture<BufResult<B>> {
        self.call(Request::write_fixed(fd, buf, buf_index, offset))
    }

    /// `fsync(fd)` as a future.
    pub fn fsync_async(&self, fd: &(impl AsIoFd + ?Sized)) -> OpFuture<io::Result<()>> {
        self.call(Request::fsync(fd))
    }

    /// `fdatasync(fd)` as a future.
    pub fn fdatasync_async(&self, fd: &(impl AsIoFd + ?Sized)) -> OpFuture<io::Result<()>> {
        self.call(Request::fdatasync(fd))
    }

    /// `fallocate` as a future.
    pub fn fallocate_async(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        mode: i32,
        offset: u64,
        len: u64,
    ) -> OpFuture<io::Result<()>> {
        self.call(Request::fallocate(fd, mode, offset, len))
    }

    /// `ftruncate` as a future.
    pub fn ftruncate_async(
        &self,
        fd: &(impl AsIoFd + ?Sized),
        len: u64,
    ) -> OpFuture<io::Result<()>> {
        self.call(Request::ftruncate(fd, len))
    }

    /// `close` as a future.
    pub fn close_async(&self, fd: OwnedFd) -> OpFuture<io::Result<()>> {
        self.call(Request::close(fd))
    }

    /// A no-op as a future.
    pub fn nop_async(&self) -> OpFuture<io::Result<()>> {
        self.call(Request::nop())
    }

    /// `statx` as a future.
    pub fn statx_async(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mask: u32,
    ) -> OpFuture<io::Result<Box<libc::statx>>> {
        self.call(Request::statx(dir, path, flags, mask))
    }

    /// `openat` as a future.
    pub fn openat_async(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: impl AsRef<Path>,
        flags: i32,
        mode: u32,
    ) -> OpFuture<io::Result<OwnedFd>> {
        self.call(Request::openat(dir, path, flags, mode))
    }
}
