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
#![warn(missing_docs)]

mod config;
mod engine;
mod error;
mod future;
mod op_state;
mod request;
mod shard;
mod stats;

pub use auraio_buffer_pool::{Buffer, BufferPool, IoBuf, IoBufMut, PoolConfig};
pub use auraio_controller::{Controller, ControllerConfig, ControllerState, Decision, Limits};
pub use auraio_ring::{Fd, OpKind, RingKind};
pub use config::{
    EngineBuilder, ReaperMode, RingSelection, DEFAULT_INITIAL_IN_FLIGHT, DEFAULT_QUEUE_DEPTH,
    DEFAULT_TICK,
};
pub use engine::Engine;
pub use error::{is_shutdown, EngineShutdown, SubmitError};
pub use future::OpFuture;
pub use op_state::OpHandle;
pub use request::{AsIoFd, BufResult, FixedFile, Request};
pub use stats::{EngineStats, RingStatsSnapshot, TotalStats};

/// The controller crate, for custom policies and trace types.
pub use auraio_controller as controller;
