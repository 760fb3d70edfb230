//! auraio: self-tuning asynchronous file I/O on io_uring.
//!
//! An [`Engine`] owns one io_uring per CPU (by default). Each ring has a
//! controller (AIMD by default) that continuously picks how many operations
//! may be in flight and how many SQEs to batch per `io_uring_enter`, from
//! measured throughput and latency. Operations beyond the limit wait in a
//! FIFO backlog; the user never sees `EAGAIN`.
//!
//! Two faces over one core:
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use auraio_engine::Engine;
//! let engine = Engine::new()?;
//! let file = std::fs::File::open("/etc/hostname")?;
//!
//! // Callbacks, run by poll()/wait()/run():
//! engine.read(&file, vec![0u8; 4096], 0, |res, buf| {
//!     println!("read {:?} bytes: {:?}", res, &buf[..]);
//! })?;
//! engine.run_until_idle()?;
//!
//! // Futures, on any executor:
//! let (res, buf) = futures::executor::block_on(engine.read_at(&file, vec![0u8; 4096], 0));
//! # let _ = (res, buf);
//! # Ok(()) }
//! ```
//!
//! Buffers are owned: they move into the operation and come back with its
//! result, also on errors and cancellation. A read fills up to
//! `bytes_total()` bytes (a `Vec`'s capacity) and sets the length to what was
//! read; a write sends `bytes_init()` bytes (a `Vec`'s length).
//!
//! # Guarantees
//!
//! - **Exactly one completion.** Every submitting call either returns `Err`
//!   (nothing was submitted, the callback is never called, and the
//!   [`SubmitError`] hands back the output with every buffer) or returns `Ok`,
//!   and then the callback is called exactly once / the future resolves
//!   exactly once: with the result, or `ECANCELED` after
//!   [`Engine::cancel`], a per-op timeout ([`Request::with_timeout`]) or
//!   shutdown. Structurally, an op's completion target lives in one place at
//!   a time (backlog, ring slot, delivery batch) and is consumed when
//!   delivered.
//! - **Buffer lifetime.** A buffer belongs to the engine from submit to
//!   completion. Dropping an [`OpFuture`] early cancels the op; the ring slot
//!   keeps the buffer until the kernel's completion is reaped, then frees it.
//! - **Back-pressure, not `EAGAIN`.** Ops beyond a ring's in-flight limit
//!   wait in its FIFO backlog and go out as completions free room. The limit
//!   never exceeds the ring's slot capacity, itself at most half the CQ, so
//!   the CQ cannot overflow.
//! - **Shutdown.** Dropping the last [`Engine`] clone (or
//!   [`Engine::shutdown`]) stops the threads, fails the backlog with
//!   `ECANCELED`, cancels and drains every in-flight op and delivers each
//!   completion once; later submissions fail with an error that
//!   [`is_shutdown`] recognises. Futures still alive resolve.
//! - **Callbacks** never run under an engine lock, so they may submit more
//!   I/O. A panicking callback is caught, counted
//!   ([`RingStatsSnapshot::callback_panics`]) and reported once on stderr;
//!   its buffer is dropped.
//! - **Short transfers are reported, never retried**: like io_uring (and
//!   `pread`/`pwrite`) a read or write may move fewer bytes than asked; the
//!   result is the real count (a read sets the buffer's initialised length
//!   to it) and submitting the rest is the caller's job. Zero-length
//!   transfers complete with `Ok(0)`.
//! - **Bad input** is refused at submit with a clear error and the buffers
//!   back: file positions (offset + length) beyond `i64::MAX` are
//!   `InvalidInput` and never reach the kernel; registering zero buffers or
//!   files is `InvalidInput`; unregistering while ops that use registered
//!   buffers/files are pending is `ResourceBusy`. A future polled again
//!   after it resolved returns `Pending` ([`futures::future::FusedFuture`]).
//!
//! `docs/reliability.md` lists the test behind each guarantee.
//!
//! # Backends
//!
//! Each ring runs on io_uring, or on a pool of threads doing blocking
//! syscalls ([`BackendChoice`]): `Auto` (the default) falls back to the pool
//! when `io_uring_setup` is refused (seccomp as in Docker's default profile,
//! `kernel.io_uring_disabled`, old kernels). Same API and guarantees; the
//! controller's in-flight limit governs how many syscalls run at once; a
//! syscall already running cannot be interrupted by cancel or shutdown.
//! [`EngineStats::backend`] and [`EngineStats::fallback_reason`] say which is
//! active and why.
//!
//! # Threads
//!
//! - one **tick** thread: every 10 ms, per ring, it turns the ring's meter
//!   into a [`controller::Sample`], asks the ring's controller for a
//!   [`Decision`], applies the in-flight limit and batch threshold, writes
//!   the trace, refills from the backlog if the limit rose, and submits SQEs
//!   still queued (so batching never delays an op by more than a tick);
//! - **reapers**, one per ring, started with the first future
//!   ([`ReaperMode`]): each blocks in the kernel (`io_uring_enter` with
//!   `GETEVENTS`, without the ring's lock), then reaps, refills and delivers.
//!   Callback-only programs have none: callbacks run in
//!   [`Engine::poll`]/[`Engine::wait`]/[`Engine::run`].
//!
//! # Submission and batching
//!
//! A submission picks a ring ([`RingSelection`]: the current CPU's by
//! default; [`Engine::on_ring`] pins a handle to one ring, whose `poll` and
//! `wait` then drive only that ring). Under the ring's lock it either pushes
//! an SQE (the ring submits when `batch_threshold` SQEs are queued, and at
//! once when nothing else is in the kernel) or parks the op in the backlog.
//! `poll`/`wait` flush what is queued, reap (entering the kernel when ops
//! are in flight, never busy-peeking), refill from the backlog, and then,
//! with the lock released, run callbacks and wake futures.
//!
//! [`Engine::submit`] makes no [`OpHandle`] (the cheapest way to submit one
//! op); [`Engine::submit_with_handle`] and the typed callback methods
//! ([`Engine::read`], [`Engine::write`], ...) return one, to
//! [`Engine::cancel`] the op or ask whether it is done.
//!
//! [`Engine::submit_batch`] submits many `(request, callback)` pairs with one
//! ring lock, no [`OpHandle`] per op and one `io_uring_enter` for the batch;
//! same per-op guarantees, and a bad request stops the batch without losing
//! anything ([`BatchError`]).
#![warn(missing_docs)]

mod batch;
mod callback;
mod config;
mod engine;
mod error;
mod fault;
mod future;
mod lean;
mod op_state;
mod request;
mod ring_lock;
mod shard;
mod stats;
mod sync;

#[cfg(all(test, loom))]
mod loom_tests;

pub use auraio_buffer_pool::{Buffer, BufferPool, IoBuf, IoBufMut, PoolConfig};
pub use auraio_controller::{Controller, ControllerConfig, ControllerState, Decision, Limits};
pub use auraio_ring::{BackendChoice, BackendKind, Fd, OpKind, RingKind};
pub use batch::BatchError;
pub use config::{
    EngineBuilder, Fault, FaultInjector, FaultPlan, FaultPoint, FaultStats, ReaperMode,
    RingSelection, DEFAULT_INITIAL_IN_FLIGHT, DEFAULT_QUEUE_DEPTH, DEFAULT_TICK,
};
pub use engine::Engine;
pub use error::{is_shutdown, EngineShutdown, SubmitError};
pub use future::OpFuture;
pub use op_state::OpHandle;
pub use request::{AsIoFd, BufResult, FixedFile, Request};
pub use stats::{EngineStats, RingStatsSnapshot, TotalStats};

/// The controller crate, for custom policies and trace types.
pub use auraio_controller as controller;
