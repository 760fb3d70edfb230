//! One io_uring instance: its request slots and submission batching.
//!
//! All of auraio's io_uring `unsafe` lives in this crate.
#![warn(missing_docs)]
