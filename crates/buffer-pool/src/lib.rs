//! Aligned, size-classed, thread-cached buffers for O_DIRECT I/O.
#![warn(missing_docs)]

pub mod io_buf;

pub use io_buf::{IoBuf, IoBufMut};
