//! The closed-loop runner: one simulated ring in front of a simulated device,
//! driven by a real controller from `auraio-controller`.
//!
//! It enforces the limit and batch threshold as the engine does:
//! - an op takes a ring slot only while `in_flight < limit`; the rest wait in
//!   a FIFO backlog and are pushed as completions free slots (or a raised
//!   limit allows);
//! - pushed SQEs are submitted by one `io_uring_enter` as soon as
//!   `batch_threshold` of them are queued, and whatever is still queued at
//!   the end of a reaping round (the thread goes idle) is flushed then;
//! - completions are reaped by one thread that sleeps when idle (waking costs
//!   `HostParams::wake_ns`) and spends CPU per SQE, per CQE and per enter.
//!
//! Samples are built by [`auraio_controller::IoMeter`], the engine's own code
//! path; every tick the sample goes to the controller and its decision takes
//! effect at once. All randomness comes from ChaCha streams derived from the
//! seed: the same seed gives the same run.

mod actions;
mod events;
mod record;
mod result;
mod run;
mod spec;
mod state;

pub use self::actions::APP_FLUSH_NS;
pub use self::result::{RunResult, TickPoint, WindowStats, PLOT_MIN_COMPLETIONS};
pub use self::run::{run, MAX_DURATION_S};
pub use self::spec::{HostParams, LoadKind, RunSpec, Step, Workload};
