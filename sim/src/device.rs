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

use rand::Rng;
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
/// the device can choose from (capped by `queue_cap`).
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
}

impl DeviceParams {
    /// Names of the built-in presets.
    pub const PRESETS: &'static [&'static str] = &["nvme", "sata-ssd", "hdd", "optane", "virtio"];

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
    /// Parametric discrete-event server.
    Model(ModelDevice),
    /// Trace-driven.
    Empirical(EmpiricalDevice),
}

impl Device {
    /// Build a device from its spec.
    pub fn new(spec: &DeviceSpec) -> Device {
        match spec {
            DeviceSpec::Model(p) => Device::Model(ModelDevice::new(p.clone())),
            DeviceSpec::Empirical(e) => Device::Empirical(EmpiricalDevice::new(e.clone())),
        }
    }

    /// Schedule the first device-wide stall (if the model has any).
    pub fn start(&mut self, sched: &mut Sched, stall_rng: &mut ChaCha8Rng) {
        if let Device::Model(m) = self {
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
            let s = self.service_ns(&op, visible, rng);
            let start = sched.now().max(at).max(self.stalled_until);
            sched.push(start + s, Ev::DevDone(op));
        }
    }

    fn service_ns(&self, op: &DevOp, visible: usize, rng: &mut ChaCha8Rng) -> u64 {
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
        s *= self.lat_mult;
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
    /// (IOPS, mean latency µs, P99 latency µs).
    pub(crate) fn fixed_depth(
        p: &DeviceParams,
        depth: u32,
        secs: f64,
        seed: u64,
    ) -> (f64, f64, f64) {
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
        let warm = end / 5;
        let mut lats = Vec::new();
        while let Some(ev) = sched.pop_until(end) {
            match ev {
                Ev::DevDone(op) => {
                    if let Some(op) = dev.on_done(op, &mut sched, &mut rng) {
                        let now = sched.now();
                        if now >= warm {
                            lats.push(now - start[op.id as usize]);
                        }
                        start[op.id as usize] = now;
                        dev.submit(op, now, &mut sched, &mut rng);
                    }
                }
                Ev::Stall => dev.on_stall(&mut sched, &mut stall_rng),
                _ => {}
            }
        }
        lats.sort_unstable();
        let n = lats.len().max(1);
        let iops = lats.len() as f64 / ((end - warm) as f64 * 1e-9);
        let mean = lats.iter().sum::<u64>() as f64 / n as f64 / 1e3;
        let p99 = lats.get(n * 99 / 100).copied().unwrap_or(0) as f64 / 1e3;
        (iops, mean, p99)
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
