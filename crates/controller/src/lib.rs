//! Pure, deterministic controllers that turn one tick's measurements into the
//! next in-flight limit and batch size.
//!
//! * [`IoMeter`] turns raw I/O events into a [`Sample`] (engine and simulator
//!   share it); its latencies go through a lock-free [`LatencyHistogram`].
//! * A [`Controller`] turns each `Sample` into a [`Decision`]: [`Aimd`] (the
//!   default), [`Fixed`], [`TraceReplay`]; [`ControllerConfig`] picks one.
//! * Traces ([`TraceWriter`], [`read_trace`]) record samples and decisions.
//!
//! Nothing here reads a clock or touches io_uring: time arrives in the
//! sample, and the same samples always give the same decisions.
#![warn(missing_docs)]

mod aimd;
mod config;
mod controller;
mod fixed;
pub mod histogram;
mod meter;
mod replay;
mod sample;
mod stall;
mod sync;
pub mod trace;

#[cfg(all(test, loom))]
mod loom_tests;

pub use aimd::{Aimd, AimdConfig, AimdPhase};
pub use config::{ControllerConfig, DEFAULT_FIXED_BATCH};
pub use controller::{Controller, ControllerError, Limits};
pub use fixed::Fixed;
pub use histogram::{HistogramSnapshot, LatencyHistogram};
pub use meter::IoMeter;
pub use replay::TraceReplay;
pub use sample::{ControllerState, Decision, Sample};
pub use stall::{
    IntervalGaps, StallDetector, StallInterval, MIN_STALL_GAP_NS, STALL_GAP_FACTOR,
    STALL_LATENCY_FACTOR,
};
pub use trace::{
    parse_trace, read_trace, IoRecord, TickRecord, Trace, TraceError, TraceHeader, TraceRecord,
    TraceWriter,
};
