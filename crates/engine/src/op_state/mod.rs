//! Per-operation state: where an op is (backlog, ring, done), how its
//! completion is delivered (callback or future), and the handle used to
//! cancel it.
//!
//! Exactly-once delivery is structural: the [`Target`] of an op lives in one
//! place at a time (the backlog, a ring slot, or a local batch being
//! delivered) and is consumed by [`Target::finish`]. Lock order is always
//! ring lock, then an op's `OpCtl` lock; user code never runs under either.

mod ctl;
mod deliver;
mod handle;
mod info;
mod target;

#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use ctl::{OpCtl, Phase};
pub(crate) use deliver::{panic_message, CtlTarget, Deliver, Finish};
pub use handle::OpHandle;
pub(crate) use info::OpInfo;
pub(crate) use target::{Owned, Target};
