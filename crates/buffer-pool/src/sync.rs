//! Synchronization shim: loom's types under `--cfg loom`, std's otherwise.
//!
//! Only the primitives that order memory between threads go through the shim
//! (the pool's shared state, shard locks, the closed flag, raw allocation).
//! Statistics counters are plain std atomics in both builds: they carry no
//! synchronization, and keeping them out of loom keeps the models small.

#[cfg(loom)]
pub(crate) use loom::alloc::{alloc, dealloc};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::alloc::{alloc, dealloc};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section in this crate leaves
/// its data consistent even if a panic unwinds through it (they only push and
/// pop raw pointers), so a poisoned lock is still safe to use.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
