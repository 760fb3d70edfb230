//! The mixed stress workload: threads submitting reads and writes of random
//! sizes at random offsets in their own region of a real file, through both
//! faces, with random cancels, per-op timeouts and dropped futures, while
//! the controller retunes; the engine is shut down mid-stream. Used by
//! `stress_mixed.rs` (io_uring and the blocking backend) and by the seccomp
//! fallback test.
//!
//! What it checks (every check can fail):
//! - every accepted op completes exactly once: callbacks run and futures
//!   resolve exactly as many times as ops were accepted (dropped futures
//!   aside, whose ops are tracked by their buffers), each with its own
//!   buffer (a misrouted completion is caught by the op id in the buffer);
//! - every buffer comes back: a live-buffer counter returns to 0 after the
//!   engine is gone, and every chunk is released (buffers release their
//!   chunk on drop, also those of dropped futures, dropped by the engine);
//! - data: a shadow copy of each region records what successful writes put
//!   there; reads during the run and a final pass over the file (plain
//!   `pread`, not the engine) must match it byte for byte, except bytes a
//!   failed or abandoned write may or may not have touched (counted).

mod buf;
mod completion;
mod config;
mod run;
mod shadow;
mod thread;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

// The shared test helpers, for the files of this module.
use super::{block_on, io_buf_via_data, pattern, Rng};

// The public paths (`common::mixed::run_mixed`, ...). `common` is compiled
// into test binaries that do not use the workload: there these are unused.
#[allow(unused_imports)]
pub use self::{
    buf::StressBuf,
    config::{MixedConfig, MixedReport},
    run::run_mixed,
};

/// `Poll` helper for tests that drive one future by hand.
pub fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    Pin::new(f).poll(&mut cx)
}
