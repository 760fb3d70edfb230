//! Blocking in `io_uring_enter(GETEVENTS)` without the ring's lock, and the
//! raw enter call with a timeout (`IORING_ENTER_EXT_ARG`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const ENTER_GETEVENTS: u32 = io_uring::EnterFlags::GETEVENTS.bits();
pub(crate) const ENTER_SQ_WAKEUP: u32 = io_uring::EnterFlags::SQ_WAKEUP.bits();
pub(crate) const ENTER_SQ_WAIT: u32 = io_uring::EnterFlags::SQ_WAIT.bits();
pub(crate) const ENTER_EXT_ARG: u32 = io_uring::EnterFlags::EXT_ARG.bits();

/// `struct __kernel_timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

impl KernelTimespec {
    pub(crate) fn from_duration(d: Duration) -> Self {
        KernelTimespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// One `io_uring_enter` on `fd`. With `timeout`, passes it through
/// `IORING_ENTER_EXT_ARG` (caller checked the feature). Returns the
/// syscall's value (SQEs consumed) or the errno.
pub(crate) fn enter(
    fd: RawFd,
    to_submit: u32,
    min_complete: u32,
    mut flags: u32,
    timeout: Option<Duration>,
) -> io::Result<u32> {
    let ts;
    let arg;
    let (arg_ptr, arg_sz): (*const libc::c_void, usize) = match timeout {
        Some(t) => {
            ts = KernelTimespec::from_duration(t);
            arg = GetEventsArg {
                ts: &ts as *const KernelTimespec as u64,
                ..GetEventsArg::default()
            };
            flags |= ENTER_EXT_ARG;
            (
                (&arg as *const GetEventsArg).cast(),
                std::mem::size_of::<GetEventsArg>(),
            )
        }
        None => (std::ptr::null(), 0),
    };
    // SAFETY: io_uring_enter only reads `arg_ptr` (a live, correctly laid out
    // io_uring_getevents_arg whose `ts` points at a live timespec, both on
    // this stack frame) when EXT_ARG is set, and otherwise gets null/0. No
    // memory of ours is written. A bad `fd` yields EBADF, not UB.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            to_submit,
            min_complete,
            flags,
            arg_ptr,
            arg_sz,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u32)
    }
}

pub(crate) struct WaiterShared {
    /// A duplicate of the ring fd: keeps the kernel ring alive and never
    /// closes under a blocked waiter.
    fd: OwnedFd,
    ext_arg: bool,
    pub(crate) enters: AtomicU64,
}

/// Blocks a thread until completions are available, without holding the
/// ring (and its lock).
///
/// Typical use: a reaper thread calls `waiter.wait(1, Some(tick))`, then locks
/// the ring and calls [`Ring::poll`](crate::Ring::poll). Cheap to clone;
/// `Send + Sync`. It owns a duplicate of the ring's fd, so it stays valid
/// even after the ring is dropped (it then simply times out).
///
/// A waiter from a [`BlockingRing`](crate::blocking::BlockingRing) blocks on
/// that backend's completion signal instead (a condition variable the worker
/// threads signal); it behaves the same way.
#[derive(Clone)]
pub struct Waiter {
    inner: WaiterInner,
}

#[derive(Clone)]
enum WaiterInner {
    Uring(Arc<WaiterShared>),
    Blocking(Arc<crate::blocking::Shared>),
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            WaiterInner::Uring(s) => f
                .debug_struct("Waiter")
                .field("fd", &s.fd.as_raw_fd())
                .finish_non_exhaustive(),
            WaiterInner::Blocking(_) => f
                .debug_struct("Waiter")
                .field("backend", &"blocking")
                .finish_non_exhaustive(),
        }
    }
}

impl Waiter {
    pub(crate) fn new(ring_fd: RawFd, ext_arg: bool) -> io::Result<Self> {
        // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own.
        let dup = unsafe { libc::fcntl(ring_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a freshly created fd that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        Ok(Waiter {
            inner: WaiterInner::Uring(Arc::new(WaiterShared {
                fd,
                ext_arg,
                enters: AtomicU64::new(0),
            })),
        })
    }

    /// A waiter on a blocking backend's completion signal.
    pub(crate) fn blocking(shared: Arc<crate::blocking::Shared>) -> Self {
        Waiter {
            inner: WaiterInner::Blocking(shared),
        }
    }

    /// How many times this waiter (and its clones) blocked.
    pub(crate) fn enters(&self) -> u64 {
        match &self.inner {
            WaiterInner::Uring(s) => s.enters.load(Ordering::Relaxed),
            WaiterInner::Blocking(s) => s.waiter_enters(),
        }
    }

    /// Blocks until at least `min` CQEs are in the completion queue, or
    /// `timeout` passes (`None` = no timeout), or a signal interrupts.
    ///
    /// Returns `Ok(())` in all three cases: it is a hint to go and reap, not
    /// a count. CQEs the ring consumes internally (link timeouts, cancels)
    /// also count towards `min`. Completions already in the CQ make it
    /// return at once. `min == 0` only runs pending completion work.
    pub fn wait(&self, min: u32, timeout: Option<Duration>) -> io::Result<()> {
        let shared = match &self.inner {
            WaiterInner::Uring(s) => s,
            WaiterInner::Blocking(s) => {
                s.waiter_wait(min, timeout);
                return Ok(());
            }
        };
        if timeout.is_some() && !shared.ext_arg {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "waiting with a timeout needs IORING_FEAT_EXT_ARG (Linux 5.11+)",
            ));
        }
        shared.enters.fetch_add(1, Ordering::Relaxed);
        match enter(shared.fd.as_raw_fd(), 0, min, ENTER_GETEVENTS, timeout) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }
}
