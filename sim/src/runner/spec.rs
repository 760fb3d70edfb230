//! The runner's input: the application's workload, the reaping thread's
//! costs, device changes, and the whole [`RunSpec`] of one run.

use std::time::Duration;

use auraio_controller::Limits;
use serde::{Deserialize, Serialize};

use crate::device::{DeviceChange, DeviceSpec};

/// How the application generates I/O.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadKind {
    /// `outstanding` ops always pending: a new op as soon as one completes.
    /// With `outstanding` above the controller's maximum there is always
    /// more demand than the limit (a backlog).
    Closed {
        /// Ops the application keeps pending (in flight + backlog).
        outstanding: u32,
    },
    /// Poisson arrivals at `iops` per second, whatever the device does.
    Open {
        /// Offered rate.
        iops: f64,
    },
}

/// The application's I/O pattern.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Closed or open loop.
    pub load: LoadKind,
    /// Fraction of reads (the rest are writes).
    pub read_fraction: f64,
    /// Block size, bytes.
    pub block_size: u32,
}

impl Workload {
    /// Closed-loop 4 KiB random reads with 2048 ops pending.
    pub fn closed() -> Self {
        Workload {
            load: LoadKind::Closed { outstanding: 2048 },
            read_fraction: 1.0,
            block_size: 4096,
        }
    }

    /// Open-loop 4 KiB random reads at `iops`.
    pub fn open(iops: f64) -> Self {
        Workload {
            load: LoadKind::Open { iops },
            read_fraction: 1.0,
            block_size: 4096,
        }
    }
}

/// CPU costs of the submitting/reaping thread.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostParams {
    /// From a completion arriving to the sleeping thread running, ns.
    pub wake_ns: u64,
    /// One `io_uring_enter`, ns.
    pub enter_ns: u64,
    /// Preparing one SQE, ns.
    pub per_sqe_ns: u64,
    /// Reaping one CQE and running its callback, ns.
    pub per_cqe_ns: u64,
}

impl Default for HostParams {
    fn default() -> Self {
        HostParams {
            wake_ns: 4_000,
            enter_ns: 1_500,
            per_sqe_ns: 80,
            per_cqe_ns: 120,
        }
    }
}

/// A device change at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When, seconds from the start.
    pub at_s: f64,
    /// What changes.
    pub change: DeviceChange,
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The device.
    pub device: DeviceSpec,
    /// The application.
    pub workload: Workload,
    /// The reaping thread's costs.
    pub host: HostParams,
    /// Device changes (any order).
    pub steps: Vec<Step>,
    /// Simulated time, s.
    pub duration_s: f64,
    /// Controller tick, ms.
    pub tick_ms: u64,
    /// Limits handed to the controller.
    pub limits: Limits,
    /// P99 ceiling handed to the controller (None = its default).
    pub p99_ceiling: Option<Duration>,
    /// Seed of every random stream.
    pub seed: u64,
    /// Time windows `[from_s, to_s)` whose latencies and completions are
    /// accumulated separately (evaluation windows).
    pub windows: Vec<(f64, f64)>,
}
