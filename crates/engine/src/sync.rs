//! Synchronisation primitives: `loom`'s under `--cfg loom` (model checking
//! of the op state machine), `std`'s otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::{atomic::AtomicU64, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{atomic::AtomicU64, Mutex, MutexGuard};
