//! Device models: discrete-event servers with `c` internal units, a lognormal
//! service-time body, rare stalls, and the presets calibrated in
//! `docs/simulator.md`.
//!
//! A device receives [`DevOp`]s at the time the simulated `io_uring_enter`
//! hands them to the kernel and schedules their completions in the
//! simulator's event queue ([`Sched`]). Everything random is drawn from
//! ChaCha streams seeded by the caller, so a run is reproducible bit for bit.

mod empirical;
mod model;
mod params;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::empirical::EmpiricalProfile;
use crate::sched::Sched;

pub use self::empirical::EmpiricalDevice;
pub use self::model::ModelDevice;
pub use self::params::{DeviceParams, Drift, Scheduling};

/// One I/O as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevOp {
    /// Caller's id (the runner uses it to find the op's submit time).
    pub id: u64,
    /// Transfer size in bytes.
    pub bytes: u32,
    /// A write (else a read).
    pub write: bool,
    /// Issued by the noisy neighbour, not by the simulated ring.
    pub neighbour: bool,
}

/// A change applied to the device at a given time (scenario step events).
/// Multipliers are absolute (relative to the device as built), so "back to
/// normal" is a multiplier of 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceChange {
    /// Service times × k.
    LatencyMult {
        /// Multiplier.
        k: f64,
    },
    /// Internal units × k (rounded, at least 1). For trace-driven devices the
    /// measured depth is divided by k instead.
    CapacityMult {
        /// Multiplier.
        k: f64,
    },
    /// A neighbour issuing open-loop 4 KiB reads at `share` × the device's
    /// nominal peak IOPS (0 = gone).
    Neighbour {
        /// Share of nominal peak IOPS.
        share: f64,
    },
}

/// What drives a simulated device.
#[derive(Clone, Debug)]
pub enum DeviceSpec {
    /// A parametric model ([`DeviceParams`]).
    Model(DeviceParams),
    /// Latencies drawn from recorded data, conditioned on depth.
    Empirical(Arc<EmpiricalProfile>),
}

impl DeviceSpec {
    /// Short name for tables and plots.
    pub fn name(&self) -> String {
        match self {
            DeviceSpec::Model(p) => p.name.clone(),
            DeviceSpec::Empirical(e) => e.name.clone(),
        }
    }

    /// Rough peak IOPS (see [`DeviceParams::nominal_peak_iops`] and
    /// [`EmpiricalProfile::nominal_peak_iops`]).
    pub fn nominal_peak_iops(&self) -> f64 {
        match self {
            DeviceSpec::Model(p) => p.nominal_peak_iops(),
            DeviceSpec::Empirical(e) => e.nominal_peak_iops(),
        }
    }
}

/// A device being simulated.
#[derive(Debug)]
pub enum Device {
    /// Parametric discrete-event server (boxed: it is much larger than the
    /// trace-driven one).
    Model(Box<ModelDevice>),
    /// Trace-driven.
    Empirical(EmpiricalDevice),
}

impl Device {
    /// Build a device from its spec.
    pub fn new(spec: &DeviceSpec) -> Device {
        match spec {
            DeviceSpec::Model(p) => Device::Model(Box::new(ModelDevice::new(p.clone()))),
            DeviceSpec::Empirical(e) => Device::Empirical(EmpiricalDevice::new(e.clone())),
        }
    }

    /// Schedule the first device-wide stall (if the model has any) and seed
    /// the drift (if any) from `stall_rng`: the drift gets a stream of its
    /// own, so the same seed gives the same drift path `x(t)` whatever the
    /// depth (the Fixed sweep compares depths under the same noise).
    pub fn start(&mut self, sched: &mut Sched, stall_rng: &mut ChaCha8Rng) {
        if let Device::Model(m) = self {
            if !m.p.drift.is_empty() {
                m.drift.rng = Some(ChaCha8Rng::seed_from_u64(stall_rng.gen()));
            }
            m.schedule_stall(sched.now(), sched, stall_rng);
        }
    }

    /// An op reaches the device at `at` (>= `sched.now()`: the runner hands
    /// over a batch when the `io_uring_enter` that carries it is issued, and
    /// `at` is when that call returns). The op is not served before `at`.
    pub fn submit(&mut self, op: DevOp, at: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        let at = at.max(sched.now());
        match self {
            Device::Model(m) => m.submit(op, at, sched, rng),
            Device::Empirical(e) => e.submit(op, at, sched, rng),
        }
    }

    /// A `DevDone` event fired: returns the op if it really completed now
    /// (a stall may defer it).
    pub fn on_done(&mut self, op: DevOp, sched: &mut Sched, rng: &mut ChaCha8Rng) -> Option<DevOp> {
        match self {
            Device::Model(m) => m.on_done(op, sched, rng),
            Device::Empirical(e) => {
                e.in_flight = e.in_flight.saturating_sub(1);
                Some(op)
            }
        }
    }

    /// A device-wide stall begins now.
    pub fn on_stall(&mut self, sched: &mut Sched, stall_rng: &mut ChaCha8Rng) {
        if let Device::Model(m) = self {
            let now = sched.now();
            m.stalled_until = m.stalled_until.max(now + m.p.stall_ns);
            m.schedule_stall(now, sched, stall_rng);
        }
    }

    /// Apply a latency or capacity change (neighbours are the runner's job).
    pub fn apply(&mut self, change: DeviceChange, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        match self {
            Device::Model(m) => match change {
                DeviceChange::LatencyMult { k } => m.lat_mult = k.max(1e-6),
                DeviceChange::CapacityMult { k } => {
                    let u = (f64::from(m.p.units) * k).round().max(1.0);
                    m.units_now = u.min(f64::from(u32::MAX)) as u32;
                    m.try_start(sched, rng);
                }
                DeviceChange::Neighbour { .. } => {}
            },
            Device::Empirical(e) => match change {
                DeviceChange::LatencyMult { k } => e.lat_mult = k.max(1e-6),
                DeviceChange::CapacityMult { k } => e.cap_mult = k.max(1e-6),
                DeviceChange::Neighbour { .. } => {}
            },
        }
    }

    /// Ops inside the device (in service or waiting in it or its host queue).
    pub fn in_flight(&self) -> u32 {
        match self {
            Device::Model(m) => m.busy + m.waiting.len() as u32 + m.host_q.len() as u32,
            Device::Empirical(e) => e.in_flight,
        }
    }
}
