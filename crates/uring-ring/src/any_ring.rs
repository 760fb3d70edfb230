//! [`AnyRing`]: an io_uring [`Ring`] or the [`BlockingRing`] fallback,
//! behind one type with `Ring`'s methods.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use crate::blocking::BlockingRing;
use crate::completion::{Completion, SubmitError};
use crate::config::{RingConfig, RingKind};
use crate::op::{Op, OpKind};
use crate::ring::Ring;
use crate::slots::SlotId;
use crate::stats::RingStats;
use crate::waiter::Waiter;

/// Which backend runs the ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// io_uring ([`Ring`]).
    IoUring,
    /// Blocking syscalls on a thread pool ([`BlockingRing`]).
    Blocking,
}

impl BackendKind {
    /// `"io_uring"` or `"blocking"`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Blocking => "blocking",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`AnyRing::new`] should build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// io_uring; the blocking pool when io_uring is unavailable:
    /// `io_uring_setup` fails with `EPERM`, `EACCES` or `ENOSYS` (seccomp
    /// filters, `kernel.io_uring_disabled`, kernels without io_uring), or
    /// `kernel.io_uring_disabled` is 2. Other errors (bad config, `ENOMEM`)
    /// are returned.
    #[default]
    Auto,
    /// io_uring only; its setup error is returned.
    IoUring,
    /// The blocking pool, even where io_uring works.
    Blocking,
}

impl FromStr for BackendChoice {
    type Err = io::Error;

    /// `"auto"`, `"io_uring"` (or `"uring"`), `"blocking"` (or `"threads"`).
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "io_uring" | "iouring" | "uring" => Ok(BackendChoice::IoUring),
            "blocking" | "threads" | "thread_pool" => Ok(BackendChoice::Blocking),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?}: expected auto, io_uring or blocking"),
            )),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::IoUring => "io_uring",
            BackendChoice::Blocking => "blocking",
        })
    }
}

/// Whether an io_uring setup error means "io_uring is not available here".
pub fn is_unavailable_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSYS)
    )
}

/// `kernel.io_uring_disabled` (0 when absent: older kernels).
pub fn io_uring_disabled_sysctl() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// An io_uring ring or the blocking fallback, with [`Ring`]'s methods and
/// signatures (each call delegates). Swap `Ring<T>` for `AnyRing<T>` and
/// `Ring::new(&cfg)` for `AnyRing::new(&cfg, BackendChoice::Auto)`.
// One long-lived value per ring: a few hundred bytes either way, and boxing
// the io_uring variant would add an indirection to every call.
#[allow(clippy::large_enum_variant)]
pub enum AnyRing<T> {
    /// io_uring.
    Uring(Ring<T>),
    /// Blocking syscalls on a thread pool.
    Blocking(BlockingRing<T>),
}

impl<T> fmt::Debug for AnyRing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyRing::Uring(r) => r.fmt(f),
            AnyRing::Blocking(r) => r.fmt(f),
        }
    }
}

impl<T> From<Ring<T>> for AnyRing<T> {
    fn from(r: Ring<T>) -> Self {
        AnyRing::Uring(r)
    }
}

impl<T> From<BlockingRing<T>> for AnyRing<T> {
    fn from(r: BlockingRing<T>) -> Self {
        AnyRing::Blocking(r)
    }
}

macro_rules! delegate {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyRing::Uring($r) => $e,
            AnyRing::Blocking($r) => $e,
        }
    };
}

impl<T> AnyRing<T> {
    /// Builds the backend `choice` asks for; see [`BackendChoice`]. With
    /// `Auto`, the fallback keeps the io_uring error in
    /// [`fallback_reason`](Self::fallback_reason).
    pub fn new(cfg: &RingConfig, choice: BackendChoice) -> io::Result<Self> {
        match choice {
            BackendChoice::IoUring => Ring::new(cfg).map(AnyRing::Uring),
            BackendChoice::Blocking => BlockingRing::new(cfg).map(AnyRing::Blocking),
            BackendChoice::Auto => {
                cfg.validate()?;
                if io_uring_disabled_sysctl() == 2 {
                    let mut b = BlockingRing::new(cfg)?;
                    b.set_fallback_reason("kernel.io_uring_disabled = 2".into());
                    return Ok(AnyRing::Blocking(b));
                }
                match Ring::new(cfg) {
                    Ok(r) => Ok(AnyRing::Uring(r)),
                    Err(e) if is_unavailable_error(&e) => {
                        let mut b = BlockingRing::new(cfg)?;
                        b.set_fallback_reason(format!("io_uring_setup failed: {e}"));
                        Ok(AnyRing::Blocking(b))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> BackendKind {
        match self {
            AnyRing::Uring(_) => BackendKind::IoUring,
            AnyRing::Blocking(_) => BackendKind::Blocking,
        }
    }

    /// Why `Auto` fell back to the blocking backend (`None` otherwise).
    pub fn fallback_reason(&self) -> Option<&str> {
        match self {
            AnyRing::Uring(_) => None,
            AnyRing::Blocking(b) => b.fallback_reason(),
        }
    }

    /// See [`Ring::kind`] (`Normal` for the blocking backend).
    pub fn kind(&self) -> RingKind {
        delegate!(self, r => r.kind())
    }

    /// See [`Ring::supports`].
    pub fn supports(&self, op: OpKind) -> bool {
        delegate!(self, r => r.supports(op))
    }

    /// See [`Ring::disable_op`].
    pub fn disable_op(&mut self, op: OpKind) {
        delegate!(self, r => r.disable_op(op))
    }

    /// See [`Ring::capacity`].
    pub fn capacity(&self) -> u32 {
        delegate!(self, r => r.capacity())
    }

    /// See [`Ring::in_flight`].
    pub fn in_flight(&self) -> u32 {
        delegate!(self, r => r.in_flight())
    }

    /// See [`Ring::queued`].
    pub fn queued(&self) -> u32 {
        delegate!(self, r => r.queued())
    }

    /// See [`Ring::ready_len`].
    pub fn ready_len(&self) -> usize {
        delegate!(self, r => r.ready_len())
    }

    /// See [`Ring::sq_entries`].
    pub fn sq_entries(&self) -> u32 {
        delegate!(self, r => r.sq_entries())
    }

    /// See [`Ring::cq_entries`].
    pub fn cq_entries(&self) -> u32 {
        delegate!(self, r => r.cq_entries())
    }

    /// See [`Ring::batch_threshold`].
    pub fn batch_threshold(&self) -> u32 {
        delegate!(self, r => r.batch_threshold())
    }

    /// See [`Ring::set_batch_threshold`].
    pub fn set_batch_threshold(&mut self, n: u32) {
        delegate!(self, r => r.set_batch_threshold(n))
    }

    /// See [`Ring::set_long_gap_ns`].
    pub fn set_long_gap_ns(&mut self, ns: u64) {
        delegate!(self, r => r.set_long_gap_ns(ns))
    }

    /// See [`Ring::waiter`].
    pub fn waiter(&self) -> Waiter {
        delegate!(self, r => r.waiter())
    }

    /// See [`Ring::stats`].
    pub fn stats(&self) -> RingStats {
        delegate!(self, r => r.stats())
    }

    /// See [`Ring::eventfd`].
    pub fn eventfd(&self) -> Option<RawFd> {
        delegate!(self, r => r.eventfd())
    }

    /// See [`Ring::now_ns`].
    pub fn now_ns(&self) -> u64 {
        delegate!(self, r => r.now_ns())
    }

    /// See [`Ring::token`].
    pub fn token(&self, slot: SlotId) -> Option<&T> {
        delegate!(self, r => r.token(slot))
    }

    /// See [`Ring::submit`].
    #[inline]
    pub fn submit(&mut self, op: Op, token: T) -> Result<SlotId, SubmitError<T>> {
        delegate!(self, r => r.submit(op, token))
    }

    /// See [`Ring::submit_in_place`]. The blocking backend takes the op
    /// out whole (and puts it back when refused).
    #[inline(always)]
    pub fn submit_in_place(
        &mut self,
        op: &mut Op,
        token: T,
    ) -> Result<SlotId, (crate::SubmitErrorKind, T)> {
        match self {
            AnyRing::Uring(r) => r.submit_in_place(op, token),
            AnyRing::Blocking(b) => match b.submit(std::mem::replace(op, Op::Nop), token) {
                Ok(id) => Ok(id),
                Err(e) => {
                    *op = e.op;
                    Err((e.kind, e.token))
                }
            },
        }
    }

    /// See [`Ring::submit_linked`].
    pub fn submit_linked(
        &mut self,
        first: (Op, T),
        second: (Op, T),
    ) -> Result<(SlotId, SlotId), SubmitError<T>> {
        delegate!(self, r => r.submit_linked(first, second))
    }

    /// See [`Ring::submit_with_timeout`] (and [`BlockingRing::submit_with_timeout`]
    /// for what the fallback can and cannot interrupt).
    pub fn submit_with_timeout(
        &mut self,
        op: Op,
        token: T,
        timeout: Duration,
    ) -> Result<SlotId, SubmitError<T>> {
        delegate!(self, r => r.submit_with_timeout(op, token, timeout))
    }

    /// See [`Ring::cancel`].
    pub fn cancel(&mut self, slot: SlotId) -> io::Result<()> {
        delegate!(self, r => r.cancel(slot))
    }

    /// See [`Ring::notify`].
    pub fn notify(&mut self) -> io::Result<()> {
        delegate!(self, r => r.notify())
    }

    /// See [`Ring::flush`].
    pub fn flush(&mut self) -> io::Result<u32> {
        delegate!(self, r => r.flush())
    }

    /// See [`Ring::poll`].
    pub fn poll(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<usize> {
        delegate!(self, r => r.poll(out))
    }

    /// See [`Ring::wait`].
    pub fn wait(
        &mut self,
        min: u32,
        timeout: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> io::Result<usize> {
        delegate!(self, r => r.wait(min, timeout, out))
    }

    /// See [`Ring::drain_for_shutdown`].
    pub fn drain_for_shutdown(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        delegate!(self, r => r.drain_for_shutdown(out))
    }

    /// See [`Ring::drain_with_timeout`].
    pub fn drain_with_timeout(
        &mut self,
        out: &mut Vec<Completion<T>>,
        timeout: Duration,
    ) -> io::Result<()> {
        delegate!(self, r => r.drain_with_timeout(out, timeout))
    }

    /// See [`Ring::register_buffers`].
    ///
    /// # Safety
    ///
    /// Same contract as [`Ring::register_buffers`].
    pub unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: forwarded from this function's contract.
        delegate!(self, r => unsafe { r.register_buffers(iovecs) })
    }

    /// See [`Ring::unregister_buffers`].
    pub fn unregister_buffers(&mut self) -> io::Result<()> {
        delegate!(self, r => r.unregister_buffers())
    }

    /// See [`Ring::register_files`].
    pub fn register_files(&mut self, fds: &[RawFd]) -> io::Result<()> {
        delegate!(self, r => r.register_files(fds))
    }

    /// See [`Ring::update_file`].
    pub fn update_file(&mut self, index: u32, fd: RawFd) -> io::Result<()> {
        delegate!(self, r => r.update_file(index, fd))
    }

    /// See [`Ring::unregister_files`].
    pub fn unregister_files(&mut self) -> io::Result<()> {
        delegate!(self, r => r.unregister_files())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `token` lends the token of an op in flight, on both backends, and
    /// nothing once its completion was reaped or for a stale id.
    #[test]
    fn token_is_lent_while_in_flight() {
        for choice in [BackendChoice::Auto, BackendChoice::Blocking] {
            let cfg = RingConfig {
                sq_entries: 8,
                batch_threshold: 8,
                ..Default::default()
            };
            let mut r: AnyRing<u32> = match AnyRing::new(&cfg, choice) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("skipping {choice:?}: {e}");
                    continue;
                }
            };
            let id = r.submit(Op::Nop, 7).map_err(|e| e.kind).unwrap();
            assert_eq!(r.token(id), Some(&7));
            let mut out = Vec::new();
            while out.is_empty() {
                r.wait(1, Some(Duration::from_secs(5)), &mut out).unwrap();
            }
            assert_eq!(out[0].token, 7);
            assert_eq!(r.token(id), None, "reaped: the slot is free");
            let again = r.submit(Op::Nop, 8).map_err(|e| e.kind).unwrap();
            assert_eq!(again.index(), id.index(), "the slot is reused");
            assert_eq!(r.token(id), None, "a stale id lends nothing");
            assert_eq!(r.token(again), Some(&8));
            r.drain_for_shutdown(&mut out).unwrap();
        }
    }

    /// `timed_waits: false` behaves as a kernel without
    /// `IORING_FEAT_EXT_ARG`: timed waits are refused, untimed ones and the
    /// shutdown drain still work.
    #[test]
    fn without_timed_waits_timeouts_are_refused() {
        let cfg = RingConfig {
            sq_entries: 8,
            timed_waits: false,
            ..Default::default()
        };
        let mut r: AnyRing<u32> = match AnyRing::new(&cfg, BackendChoice::IoUring) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipping: io_uring unavailable: {e}");
                return;
            }
        };
        let w = r.waiter();
        let e = w.wait(1, Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let mut out = Vec::new();
        r.submit(Op::Nop, 1).map_err(|e| e.kind).unwrap();
        let e = r
            .wait(1, Some(Duration::from_millis(1)), &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert_eq!(r.wait(1, None, &mut out).unwrap(), 1);
        r.submit(Op::Nop, 2).map_err(|e| e.kind).unwrap();
        r.drain_for_shutdown(&mut out).unwrap();
        assert_eq!(out.iter().map(|c| c.token).collect::<Vec<_>>(), [1, 2]);
    }
}
