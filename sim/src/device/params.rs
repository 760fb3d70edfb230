//! The parameters of a modelled device ([`DeviceParams`], its [`Drift`] and
//! [`Scheduling`]) and the built-in presets.

use serde::{Deserialize, Serialize};

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
