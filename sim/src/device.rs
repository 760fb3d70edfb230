//! Device models: discrete-event servers with `c` internal units, a lognormal
//! service-time body, rare stalls, and the presets calibrated in
//! `docs/simulator.md`.
//!
//! A device receives [`DevOp`]s at the time the simulated `io_uring_enter`
//! hands them to the kernel and schedules their completions in the
//! simulator's event queue ([`Sched`]). Everything random is drawn from
//! ChaCha streams seeded by the caller, so a run is reproducible bit for bit.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::empirical::EmpiricalProfile;
use crate::sched::{Ev, Sched};

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

/// How a device picks the next waiting op when a unit frees up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// First come, first served (NVMe submission queues, SATA NCQ on SSDs).
    Fifo,
    /// Any waiting op with equal chance: models reordering (disk elevators,
    /// a hypervisor's back end) and gives the long tails those devices show.
    Random,
}

/// Parameters of a modelled device. Service time of one op, drawn when a
/// unit starts it:
///
/// `s = median · exp(σ·z) · busy^contention / (1 + reorder_gain·ln(visible))
///      + (bytes − 4 KiB)·ns_per_kib/1 KiB`, times `write_factor` for writes and the
/// current latency multiplier; with probability `op_stall_prob` add
/// `op_stall_ns`. `busy` counts units busy including this op, `visible` the ops
/// the device can choose from (capped by `queue_cap`). Every service time is
/// also multiplied by `exp(x₁(t) + x₂(t) + …)`, one term per [`Drift`]
/// component: the host-side noise of a virtual disk, whose throughput
/// wanders by ±10 % from one 20 ms window to the next and by a few % from
/// one second to the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceParams {
    /// Preset or user name.
    pub name: String,
    /// Internal parallel units `c`.
    pub units: u32,
    /// Median service time of a 4 KiB read on an otherwise idle device, ns.
    pub service_median_ns: f64,
    /// Lognormal shape σ of the service-time body.
    pub sigma: f64,
    /// Service time grows as `busy^contention` (0 = units independent).
    pub contention: f64,
    /// Service time shrinks as `1 / (1 + gain·ln(visible ops))` (HDD reordering).
    pub reorder_gain: f64,
    /// Most ops the device itself accepts (e.g. NCQ 32); the rest wait in a
    /// host FIFO. `None` = unbounded.
    pub queue_cap: Option<u32>,
    /// Order in which waiting ops get a unit.
    pub scheduling: Scheduling,
    /// Extra service per KiB above 4 KiB, ns.
    pub ns_per_kib: f64,
    /// Writes take this many times longer than reads.
    pub write_factor: f64,
    /// Chance that one op stalls (garbage collection, a retried read).
    pub op_stall_prob: f64,
    /// Extra service time of a stalled op, ns.
    pub op_stall_ns: u64,
    /// Device-wide stalls per second (Poisson); 0 = none.
    pub stall_rate_hz: f64,
    /// Length of a device-wide stall, ns: nothing starts or completes meanwhile.
    pub stall_ns: u64,
    /// Slow random drifts of the service time (none = a stationary device).
    #[serde(default)]
    pub drift: Vec<Drift>,
}

/// One component of a device's service-time drift: `x(t)`, a random walk
/// pulled back to 0 (an AR(1) process stepped every millisecond) whose
/// stationary standard deviation is `sigma` and correlation time `tau_ms`.
/// Service times are multiplied by `exp(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Stationary standard deviation of `x` (log service time).
    pub sigma: f64,
    /// Correlation time, ms (> 0).
    pub tau_ms: f64,
}

/// `virtio-stalls`' fast drift (`virtio-noisy`'s is 0.15): with the stalls
/// it gives the disk's 20 ms CV of ≈ 0.11.
const SIGMA_FAST_WITH_STALLS: f64 = 0.08;

impl DeviceParams {
    /// Names of the built-in presets.
    pub const PRESETS: &'static [&'static str] = &[
        "nvme",
        "sata-ssd",
        "hdd",
        "optane",
        "virtio",
        "virtio-noisy",
        "virtio-busy",
        "virtio-stalls",
    ];

    /// The `nvme` preset.
    pub fn nvme() -> DeviceParams {
        // A preset name that exists; the fallback is never taken.
        Self::preset("nvme").unwrap_or_else(|| Self::plain("nvme"))
    }

    fn plain(name: &str) -> DeviceParams {
        DeviceParams {
            name: name.to_string(),
            units: 1,
            service_median_ns: 100_000.0,
            sigma: 0.2,
            contention: 0.0,
            reorder_gain: 0.0,
            queue_cap: None,
            scheduling: Scheduling::Fifo,
            ns_per_kib: 0.0,
            write_factor: 1.0,
            op_stall_prob: 0.0,
            op_stall_ns: 0,
            stall_rate_hz: 0.0,
            stall_ns: 0,
            drift: Vec::new(),
        }
    }

    /// A preset by name (`nvme`, `sata-ssd`, `hdd`, `optane`, `virtio`).
    pub fn preset(name: &str) -> Option<DeviceParams> {
        let base = Self::plain(name);
        let p = match name {
            // ≈90 µs at QD1, 72 units → ≈800k IOPS, knee near QD 72.
            "nvme" => DeviceParams {
                units: 72,
                service_median_ns: 86_000.0,
                sigma: 0.25,
                ns_per_kib: 250.0,
                write_factor: 1.2,
                ..base
            },
            // SATA SSD: c≈10 flash channels behind NCQ (hard cap 32).
            "sata-ssd" => DeviceParams {
                units: 10,
                service_median_ns: 110_000.0,
                sigma: 0.3,
                queue_cap: Some(32),
                ns_per_kib: 1_800.0,
                write_factor: 1.5,
                ..base
            },
            // HDD: one actuator, ≈10 ms random access, NCQ reordering gains
            // ≈2.2× at depth 32.
            "hdd" => DeviceParams {
                units: 1,
                service_median_ns: 9_000_000.0,
                sigma: 0.35,
                reorder_gain: 0.35,
                queue_cap: Some(32),
                scheduling: Scheduling::Random,
                ns_per_kib: 6_000.0,
                ..base
            },
            // Optane: ≈10 µs, knee ≈ 8.
            "optane" => DeviceParams {
                units: 8,
                service_median_ns: 9_500.0,
                sigma: 0.15,
                ns_per_kib: 60.0,
                ..base
            },
            // This machine's virtio disk (fio 4 KiB random O_DIRECT reads):
            // ≈12.6k IOPS QD1, ≈96k QD32, ≈129k QD64 (P99 ≈1.0 ms),
            // ≈129k QD128 (P99 ≈3.8 ms). Units slow each other down
            // (host-side contention) and the back end reorders.
            "virtio" => DeviceParams {
                units: 56,
                service_median_ns: 70_000.0,
                sigma: 0.3,
                contention: 0.43,
                scheduling: Scheduling::Random,
                ns_per_kib: 400.0,
                write_factor: 1.3,
                ..base
            },
            // The same disk as the host's other guests make it. Measured
            // here (a `fixed:96` run's trace, throughput per window): CV
            // 0.11 over 20 ms, 0.08 over 50 ms, 0.07 over 100 ms, 0.05 over
            // 0.5 s; a fast component (white beyond ≈10 ms) and a slow one
            // that pairing cancels. See docs/simulator.md.
            "virtio-noisy" => DeviceParams {
                name: name.to_string(),
                drift: vec![
                    Drift {
                        sigma: 0.15,
                        tau_ms: 5.0,
                    },
                    Drift {
                        sigma: 0.08,
                        tau_ms: 1000.0,
                    },
                ],
                ..Self::preset("virtio")?
            },
            // This machine's disk on a busy day (2026-11-24, fio 4 KiB
            // random O_DIRECT reads): ≈72k IOPS at QD16, ≈80k QD32, ≈87k
            // QD64, ≈94k QD128, no more at QD192; P99 ≈0.3 / 0.6 / 3.0 /
            // 4.8 ms. Modelled from QD 16 up (where the controller starts):
            // 128 units that slow each other down (throughput ∝ depth^0.12
            // up to 128, flat beyond), with the host noise of
            // `virtio-noisy`. Its QD1 latency (≈20 µs) is not the disk's.
            "virtio-busy" => DeviceParams {
                units: 128,
                service_median_ns: 16_300.0,
                sigma: 0.55,
                contention: 0.88,
                scheduling: Scheduling::Random,
                ns_per_kib: 400.0,
                write_factor: 1.3,
                ..Self::preset("virtio-noisy")?
            },
            // `virtio-busy` with the disk's stalls: nothing completes for
            // 4 ms about 12 times a second (≈ 5 % of the time; measured
            // 2-6 ms, a dozen a second, 5-6 % at any depth, see
            // docs/controllers.md, *Stalled time*), and a tight body (σ 0.2:
            // the disk's P99 at QD 32 is ≈ 0.5 ms). The stalls are part of
            // the 20 ms noise, so the fast drift is smaller. Fixed depths
            // (8 s): QD 32 75k / P99 0.73 ms, 64 82k / 4.1 ms, 128 90k / 4.7 ms.
            "virtio-stalls" => {
                let mut p = DeviceParams {
                    stall_rate_hz: 12.0,
                    stall_ns: 4_000_000,
                    sigma: 0.2,
                    service_median_ns: 17_650.0,
                    ..Self::preset("virtio-busy")?
                };
                p.name = name.to_string();
                p.drift[0].sigma = SIGMA_FAST_WITH_STALLS;
                p
            }
            _ => return None,
        };
        Some(p)
    }

    /// Rough peak IOPS of 4 KiB reads (`units / mean service at full load`):
    /// used to size open-loop workloads and the neighbour's share.
    pub fn nominal_peak_iops(&self) -> f64 {
        let c = f64::from(self.units.max(1));
        let mean = self.service_median_ns * (self.sigma * self.sigma / 2.0).exp();
        let busy = c.powf(self.contention);
        let reorder = 1.0 + self.reorder_gain * f64::from(self.queue_cap.unwrap_or(32)).ln();
        c / (mean * busy / reorder) * 1e9
    }

    /// Check the parameters make sense (positive, finite).
    pub fn validate(&self) -> Result<(), String> {
        let finite_pos = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a positive number (got {v})"))
            }
        };
        if self.units == 0 {
            return Err("units must be at least 1".into());
        }
        finite_pos(self.service_median_ns, "service_median_ns")?;
        finite_pos(self.write_factor, "write_factor")?;
        for (v, what) in [
            (self.sigma, "sigma"),
            (self.contention, "contention"),
            (self.reorder_gain, "reorder_gain"),
            (self.ns_per_kib, "ns_per_kib"),
            (self.stall_rate_hz, "stall_rate_hz"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{what} must be >= 0 (got {v})"));
            }
        }
        if !(0.0..=1.0).contains(&self.op_stall_prob) {
            return Err("op_stall_prob must be in [0, 1]".into());
        }
        if self.queue_cap == Some(0) {
            return Err("queue_cap must be at least 1".into());
        }
        for d in &self.drift {
            if !(d.sigma.is_finite() && d.sigma >= 0.0) {
                return Err(format!("drift sigma must be >= 0 (got {})", d.sigma));
            }
            if !(d.tau_ms.is_finite() && d.tau_ms > 0.0) {
                return Err(format!("drift tau_ms must be > 0 (got {})", d.tau_ms));
            }
        }
        Ok(())
    }
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

/// The parametric discrete-event server.
#[derive(Debug)]
pub struct ModelDevice {
    p: DeviceParams,
    units_now: u32,
    lat_mult: f64,
    busy: u32,
    waiting: VecDeque<(DevOp, u64)>,
    host_q: VecDeque<(DevOp, u64)>,
    stalled_until: u64,
    drift: DriftState,
}

/// The state of a device's [`Drift`] components, stepped every
/// [`DriftState::STEP_NS`] up to the time a service starts.
#[derive(Debug, Default)]
struct DriftState {
    /// Current `x` of each component.
    x: Vec<f64>,
    /// Time the `x` are valid up to, ns.
    at: u64,
    /// The drift's own random stream (seeded by [`Device::start`]).
    rng: Option<ChaCha8Rng>,
}

impl DriftState {
    const STEP_NS: u64 = 1_000_000;

    /// Advances the components to `now`; returns the service-time multiplier.
    fn factor(&mut self, drift: &[Drift], now: u64) -> f64 {
        let Some(rng) = self.rng.as_mut() else {
            return 1.0;
        };
        self.x.resize(drift.len(), 0.0);
        while self.at + Self::STEP_NS <= now {
            for (x, d) in self.x.iter_mut().zip(drift) {
                let rho = (-(Self::STEP_NS as f64) / (d.tau_ms * 1e6)).exp();
                let z: f64 = StandardNormal.sample(rng);
                *x = rho * *x + d.sigma * (1.0 - rho * rho).sqrt() * z;
            }
            self.at += Self::STEP_NS;
        }
        self.x.iter().sum::<f64>().exp()
    }
}

impl ModelDevice {
    fn new(p: DeviceParams) -> Self {
        ModelDevice {
            units_now: p.units.max(1),
            p,
            lat_mult: 1.0,
            busy: 0,
            waiting: VecDeque::new(),
            host_q: VecDeque::new(),
            stalled_until: 0,
            drift: DriftState::default(),
        }
    }

    fn schedule_stall(&mut self, now: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        if self.p.stall_rate_hz > 0.0 && self.p.stall_ns > 0 {
            let e: f64 = Exp1.sample(rng);
            let gap = (e / self.p.stall_rate_hz * 1e9).max(1.0) as u64;
            sched.push(now + gap, Ev::Stall);
        }
    }

    fn submit(&mut self, op: DevOp, at: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        let in_device = self.busy as usize + self.waiting.len();
        match self.p.queue_cap {
            Some(cap) if in_device >= cap as usize => self.host_q.push_back((op, at)),
            _ => self.waiting.push_back((op, at)),
        }
        self.try_start(sched, rng);
    }

    fn try_start(&mut self, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        while self.busy < self.units_now && !self.waiting.is_empty() {
            let visible = self.waiting.len();
            let op = match self.p.scheduling {
                Scheduling::Fifo => self.waiting.pop_front(),
                Scheduling::Random => {
                    let i = rng.gen_range(0..visible);
                    self.waiting.swap_remove_back(i)
                }
            };
            let Some((op, at)) = op else { break };
            self.busy += 1;
            let start = sched.now().max(at).max(self.stalled_until);
            let drift = self.drift.factor(&self.p.drift, start);
            let s = self.service_ns(&op, visible, drift, rng);
            sched.push(start + s, Ev::DevDone(op));
        }
    }

    fn service_ns(&self, op: &DevOp, visible: usize, drift: f64, rng: &mut ChaCha8Rng) -> u64 {
        let p = &self.p;
        let z: f64 = StandardNormal.sample(rng);
        let mut s = p.service_median_ns * (p.sigma * z).exp();
        if p.contention > 0.0 {
            s *= f64::from(self.busy).powf(p.contention);
        }
        if p.reorder_gain > 0.0 && visible > 1 {
            s /= 1.0 + p.reorder_gain * (visible as f64).ln();
        }
        if op.bytes > 4096 {
            s += f64::from(op.bytes - 4096) / 1024.0 * p.ns_per_kib;
        }
        if op.write {
            s *= p.write_factor;
        }
        s *= self.lat_mult * drift;
        let mut ns = s.max(1.0) as u64;
        if p.op_stall_prob > 0.0 && rng.gen::<f64>() < p.op_stall_prob {
            ns += p.op_stall_ns;
        }
        ns
    }

    fn on_done(&mut self, op: DevOp, sched: &mut Sched, rng: &mut ChaCha8Rng) -> Option<DevOp> {
        if sched.now() < self.stalled_until {
            sched.push(self.stalled_until, Ev::DevDone(op));
            return None;
        }
        self.busy = self.busy.saturating_sub(1);
        if let Some(cap) = self.p.queue_cap {
            while self.busy as usize + self.waiting.len() < cap as usize {
                match self.host_q.pop_front() {
                    Some(o) => self.waiting.push_back(o),
                    None => break,
                }
            }
        }
        self.try_start(sched, rng);
        Some(op)
    }
}

/// A device whose latencies come from recorded data ([`EmpiricalProfile`]):
/// an infinite server whose latency distribution depends on the number of
/// ops in flight when an op arrives.
#[derive(Debug)]
pub struct EmpiricalDevice {
    profile: Arc<EmpiricalProfile>,
    lat_mult: f64,
    cap_mult: f64,
    in_flight: u32,
}

impl EmpiricalDevice {
    fn new(profile: Arc<EmpiricalProfile>) -> Self {
        EmpiricalDevice {
            profile,
            lat_mult: 1.0,
            cap_mult: 1.0,
            in_flight: 0,
        }
    }

    fn submit(&mut self, op: DevOp, at: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        self.in_flight += 1;
        let depth = f64::from(self.in_flight) / self.cap_mult;
        let u: f64 = rng.gen();
        let lat = self.profile.latency_ns(depth, u) * self.lat_mult;
        sched.push(at + lat.max(1.0) as u64, Ev::DevDone(op));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Closed loop at a fixed depth straight on the device (no host costs):
    /// every completion as (time, latency) in ns, for `secs` seconds.
    fn closed_loop(p: &DeviceParams, depth: u32, secs: f64, seed: u64) -> Vec<(u64, u64)> {
        let mut dev = Device::new(&DeviceSpec::Model(p.clone()));
        let mut sched = Sched::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stall_rng = ChaCha8Rng::seed_from_u64(seed + 1);
        dev.start(&mut sched, &mut stall_rng);
        let mut start = vec![0u64; depth as usize];
        for i in 0..depth {
            let op = DevOp {
                id: u64::from(i),
                bytes: 4096,
                write: false,
                neighbour: false,
            };
            dev.submit(op, 0, &mut sched, &mut rng);
        }
        let end = (secs * 1e9) as u64;
        let mut done = Vec::new();
        while let Some(ev) = sched.pop_until(end) {
            match ev {
                Ev::DevDone(op) => {
                    if let Some(op) = dev.on_done(op, &mut sched, &mut rng) {
                        let now = sched.now();
                        done.push((now, now - start[op.id as usize]));
                        start[op.id as usize] = now;
                        dev.submit(op, now, &mut sched, &mut rng);
                    }
                }
                Ev::Stall => dev.on_stall(&mut sched, &mut stall_rng),
                _ => {}
            }
        }
        done
    }

    /// [`closed_loop`] summed up after a warm-up of the first fifth:
    /// (IOPS, mean latency µs, P99 latency µs).
    pub(crate) fn fixed_depth(
        p: &DeviceParams,
        depth: u32,
        secs: f64,
        seed: u64,
    ) -> (f64, f64, f64) {
        let end = (secs * 1e9) as u64;
        let warm = end / 5;
        let mut lats: Vec<u64> = closed_loop(p, depth, secs, seed)
            .into_iter()
            .filter(|&(t, _)| t >= warm)
            .map(|(_, l)| l)
            .collect();
        lats.sort_unstable();
        let n = lats.len().max(1);
        let iops = lats.len() as f64 / ((end - warm) as f64 * 1e-9);
        let mean = lats.iter().sum::<u64>() as f64 / n as f64 / 1e3;
        let p99 = lats.get(n * 99 / 100).copied().unwrap_or(0) as f64 / 1e3;
        (iops, mean, p99)
    }

    /// Coefficient of variation of the throughput over windows of `win_ms`
    /// (completions per window, after 0.5 s of warm-up).
    fn window_cv(done: &[(u64, u64)], win_ms: u64) -> f64 {
        let w = win_ms * 1_000_000;
        let first = 500_000_000 / w;
        let mut counts = std::collections::BTreeMap::<u64, f64>::new();
        for &(t, _) in done {
            if t / w >= first {
                *counts.entry(t / w).or_default() += 1.0;
            }
        }
        // The last window may be cut short by the end of the run.
        counts.pop_last();
        let n = counts.len() as f64;
        let mean = counts.values().sum::<f64>() / n;
        let var = counts
            .values()
            .map(|c| (c - mean) * (c - mean))
            .sum::<f64>()
            / (n - 1.0);
        var.sqrt() / mean
    }

    #[test]
    fn virtio_busy_gains_slowly_up_to_128_and_not_beyond() {
        let mut p = DeviceParams::preset("virtio-busy").unwrap();
        p.drift.clear();
        let at = |d| fixed_depth(&p, d, 1.0, 7);
        let (x16, ..) = at(16);
        let (x64, _, p99_64) = at(64);
        let (x128, _, p99_128) = at(128);
        let (x192, ..) = at(192);
        assert!((65e3..80e3).contains(&x16), "QD16 {x16}");
        assert!((88e3..100e3).contains(&x128), "QD128 {x128}");
        let gain = x128 / x64 - 1.0;
        assert!((0.04..0.12).contains(&gain), "64 -> 128 gains {gain:.3}");
        assert!(x192 < x128 * 1.02, "192 {x192} vs 128 {x128}");
        assert!(p99_128 > 1.5 * p99_64, "P99 {p99_128} vs {p99_64} µs");
    }

    #[test]
    fn virtio_stalls_puts_the_p99_in_the_stalls_tail_from_depth_64() {
        // The disk: a tight body (P99 ≈ 0.5 ms at QD 32), and from QD 64 on
        // the stalls catch more than 1 % of the reads (P99 2-5 ms).
        let p = DeviceParams::preset("virtio-stalls").unwrap();
        let (x32, _, p99_32) = fixed_depth(&p, 32, 4.0, 7);
        let (x64, _, p99_64) = fixed_depth(&p, 64, 4.0, 7);
        let (x128, _, p99_128) = fixed_depth(&p, 128, 4.0, 7);
        assert!(p99_32 < 1_000.0, "QD32 P99 {p99_32} µs");
        assert!(p99_64 > 3_000.0, "QD64 P99 {p99_64} µs");
        assert!(p99_128 > p99_64, "P99 {p99_128} vs {p99_64} µs");
        assert!(x32 < x64, "{x32} vs {x64}");
        let gain = x128 / x64 - 1.0;
        assert!((0.03..0.15).contains(&gain), "64 -> 128 gains {gain:.3}");
        let cv = window_cv(&closed_loop(&p, 96, 4.5, 3), 20);
        assert!((0.08..0.15).contains(&cv), "CV over 20 ms: {cv:.3}");
    }

    #[test]
    fn virtio_noisy_wanders_like_the_disk_it_models() {
        // Measured on this machine's disk (docs/simulator.md): CV 0.11 over
        // 20 ms, 0.08 over 50 ms, 0.07 over 100 ms, 0.05 over 0.5 s.
        let noisy = DeviceParams::preset("virtio-noisy").unwrap();
        let done = closed_loop(&noisy, 96, 8.5, 3);
        for (win, lo, hi) in [(20, 0.08, 0.14), (50, 0.05, 0.11), (500, 0.025, 0.08)] {
            let cv = window_cv(&done, win);
            assert!((lo..hi).contains(&cv), "CV over {win} ms: {cv:.3}");
        }
        // Without the drift the same disk is far steadier.
        let calm = DeviceParams::preset("virtio").unwrap();
        let cv = window_cv(&closed_loop(&calm, 96, 2.5, 3), 20);
        assert!(cv < 0.05, "stationary virtio, 20 ms CV {cv:.3}");
        // A drift needs a positive correlation time.
        let mut bad = noisy.clone();
        bad.drift[0].tau_ms = 0.0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn nvme_preset_matches_its_description() {
        let p = DeviceParams::preset("nvme").unwrap();
        let (iops1, mean1, _) = fixed_depth(&p, 1, 0.05, 7);
        assert!((80.0..100.0).contains(&mean1), "QD1 mean {mean1} µs");
        assert!((10_000.0..12_500.0).contains(&iops1), "QD1 {iops1} IOPS");
        let (iops72, ..) = fixed_depth(&p, 72, 0.02, 7);
        let (iops144, mean144, _) = fixed_depth(&p, 144, 0.02, 7);
        assert!((720_000.0..880_000.0).contains(&iops72), "QD72 {iops72}");
        // Past the knee: no more throughput, only queueing.
        assert!(iops144 < iops72 * 1.03, "{iops144} vs {iops72}");
        assert!(mean144 > 1.8 * mean1, "{mean144} vs {mean1}");
    }

    #[test]
    fn sata_hdd_optane_shapes() {
        let sata = DeviceParams::preset("sata-ssd").unwrap();
        let (s10, ..) = fixed_depth(&sata, 10, 0.05, 3);
        let (s32, ..) = fixed_depth(&sata, 32, 0.05, 3);
        assert!(s32 < s10 * 1.1, "sata saturates at c=10: {s10} {s32}");
        let hdd = DeviceParams::preset("hdd").unwrap();
        let (h1, m1, _) = fixed_depth(&hdd, 1, 5.0, 3);
        let (h32, ..) = fixed_depth(&hdd, 32, 10.0, 3);
        assert!((7_000.0..13_000.0).contains(&m1), "hdd QD1 {m1} µs");
        assert!(h32 > 1.8 * h1, "reordering gain: {h1} → {h32}");
        let opt = DeviceParams::preset("optane").unwrap();
        let (o1, om1, _) = fixed_depth(&opt, 1, 0.01, 3);
        let (o8, ..) = fixed_depth(&opt, 8, 0.01, 3);
        let (o16, ..) = fixed_depth(&opt, 16, 0.01, 3);
        assert!((8.0..12.0).contains(&om1), "optane QD1 {om1} µs");
        assert!(
            o8 > 7.0 * o1 && o16 < o8 * 1.05,
            "knee at 8: {o1} {o8} {o16}"
        );
    }

    #[test]
    fn stalls_and_steps_change_latency() {
        let mut p = DeviceParams::preset("optane").unwrap();
        let (iops, base, _) = fixed_depth(&p, 4, 0.2, 3);
        // Stalled 10 % of the time: ≈10 % fewer IOPS, longer latencies.
        p.stall_rate_hz = 100.0;
        p.stall_ns = 1_000_000;
        let (iops_s, stalled, _) = fixed_depth(&p, 4, 0.2, 3);
        assert!(
            iops_s < iops * 0.95 && iops_s > iops * 0.8,
            "{iops} → {iops_s}"
        );
        assert!(stalled > base * 1.05, "{base} → {stalled}");
        // Op stalls: 5 % of ops take 1 ms more, so the P99 is over 1 ms.
        p.stall_rate_hz = 0.0;
        p.op_stall_prob = 0.05;
        p.op_stall_ns = 1_000_000;
        let (_, _, p99) = fixed_depth(&p, 4, 0.2, 3);
        assert!(p99 > 1000.0, "op stalls show in the tail: {p99} µs");
        assert!(p.validate().is_ok());
        p.units = 0;
        assert!(p.validate().is_err());
        let mut q = DeviceParams::preset("nvme").unwrap();
        q.sigma = f64::NAN;
        assert!(q.validate().is_err());
        assert!(DeviceParams::preset("floppy").is_none());
        for name in DeviceParams::PRESETS {
            let p = DeviceParams::preset(name).unwrap();
            assert!(p.validate().is_ok(), "{name}");
            assert!(p.nominal_peak_iops() > 0.0, "{name}");
        }
    }

    #[test]
    fn same_seed_same_device_run() {
        let p = DeviceParams::preset("virtio").unwrap();
        assert_eq!(fixed_depth(&p, 16, 0.02, 9), fixed_depth(&p, 16, 0.02, 9));
        assert_ne!(fixed_depth(&p, 16, 0.02, 9), fixed_depth(&p, 16, 0.02, 10));
    }
}
