//! One io_uring instance: its request slots and submission batching.
//!
//! All of auraio's io_uring `unsafe` lives in this crate.
//!
//! # Model
//!
//! - [`Ring::submit`] takes an [`Op`] (which owns its buffers/paths) and a
//!   caller token `T`, puts both in a slot and pushes one SQE. SQEs are
//!   handed to the kernel once [`Ring::queued`] reaches the batch threshold,
//!   or on [`Ring::flush`] / [`Ring::poll`] / [`Ring::wait`].
//! - Every op produces exactly one [`Completion`]: token, result, the
//!   resources it owned (a read's buffer has its init length set to the
//!   result) and its latency, from the hand-off to the kernel (one clock
//!   read per `io_uring_enter` that submits) to the reap (one clock read per
//!   batch reaped); see [`Completion::latency_ns`].
//! - The SQE's `user_data` is the [`SlotId`]: slot index plus a generation,
//!   so a stale CQE can never complete the op that reuses a slot.
//! - At most [`Ring::capacity`] ops are in flight, and the ring's own
//!   requests (link timeouts, cancels) are budgeted too, so the CQ can never
//!   overflow. A full SQ is flushed and retried; `EBUSY`/`EAGAIN`/`EINTR`
//!   from `io_uring_enter` are handled inside.
//! - [`Ring::poll`] enters the kernel (`GETEVENTS`, min 0) when the CQ is
//!   empty but ops are in flight, so pending completion work runs instead
//!   of waiting for the next timer tick.
//! - A [`Waiter`] blocks in `io_uring_enter` without borrowing the ring, so a
//!   reaper thread can sleep while other threads lock the ring and submit.
//!
//! The ring is not `Sync`; share it behind a `Mutex`. It never runs caller
//! code, so completions can be handled after the lock is released.
//!
//! # Fallback
//!
//! Where io_uring is unavailable (seccomp, `kernel.io_uring_disabled`, old
//! kernels), [`blocking::BlockingRing`] offers the same API over a pool of
//! threads doing blocking syscalls, and [`AnyRing`] picks between the two
//! ([`BackendChoice::Auto`] falls back when `io_uring_setup` fails with
//! `EPERM`/`EACCES`/`ENOSYS`).
//!
//! ```no_run
//! use auraio_ring::{Fd, Op, Ring, RingConfig};
//! # fn main() -> std::io::Result<()> {
//! let file = std::fs::File::open("/etc/hostname")?;
//! let mut ring: Ring<u32> = Ring::new(&RingConfig::default())?;
//! let fd = Fd::Raw(std::os::fd::AsRawFd::as_raw_fd(&file));
//! ring.submit(Op::read(fd, Vec::<u8>::with_capacity(4096), 0), 7)?;
//! let mut done = Vec::new();
//! ring.wait(1, None, &mut done)?;
//! let c = done.pop().unwrap();
//! let data: Vec<u8> = c.resources.into_buf().unwrap();
//! assert_eq!(data.len(), c.result as usize);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod any_ring;
pub mod blocking;
mod clock;
mod completion;
mod config;
mod gaps;
mod op;
mod probe;
mod register;
mod resources;
mod ring;
mod slots;
mod stats;
mod waiter;

#[doc(hidden)]
pub mod testing;

#[cfg(all(test, loom))]
mod loom_tests;

pub use any_ring::{
    io_uring_disabled_sysctl, is_unavailable_error, AnyRing, BackendChoice, BackendKind,
};
pub use auraio_buffer_pool::{IoBuf, IoBufMut};
pub use blocking::BlockingRing;
pub use completion::{Completion, SubmitError, SubmitErrorKind};
pub use config::{RingConfig, RingKind};
pub use gaps::{CompletionGaps, GapStats};
pub use op::{Fd, Op, OpKind, OwnedBuf, MAX_IOVECS};
pub use resources::Resources;
pub use ring::{Ring, DRAIN_TIMEOUT};
pub use slots::SlotId;
pub use stats::RingStats;
pub use waiter::Waiter;
