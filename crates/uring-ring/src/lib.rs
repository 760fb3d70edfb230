//! One io_uring instance: its request slots and submission batching.
//!
//! All of auraio's io_uring `unsafe` lives in this crate.
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

mod completion;
mod config;
mod op;
mod probe;
mod register;
mod resources;
mod ring;
mod slots;
mod stats;
mod waiter;

#[cfg(all(test, loom))]
mod loom_tests;

pub use auraio_buffer_pool::{IoBuf, IoBufMut};
pub use completion::{Completion, SubmitError, SubmitErrorKind};
pub use config::{RingConfig, RingKind};
pub use op::{Fd, Op, OpKind, OwnedBuf, MAX_IOVECS};
pub use resources::Resources;
pub use ring::{Ring, DRAIN_TIMEOUT};
pub use slots::SlotId;
pub use stats::RingStats;
pub use waiter::Waiter;
