//! auraio: self-tuning asynchronous file I/O on io_uring.
#![warn(missing_docs)]
