//! Synchronization shim: loom's atomics under `--cfg loom`, std's otherwise.
//!
//! Only the histogram's recorder goes through the shim: it is the one piece of
//! this crate that threads share while it changes. The [`crate::IoMeter`]'s
//! plain counters are std atomics in both builds (they order nothing).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};
