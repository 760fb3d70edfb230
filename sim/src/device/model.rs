//! The parametric discrete-event server ([`ModelDevice`]) and the state of
//! its service-time drift.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};

use super::{DevOp, DeviceParams, Drift, Scheduling};
use crate::sched::{Ev, Sched};

/// The parametric discrete-event server.
#[derive(Debug)]
pub struct ModelDevice {
    pub(super) p: DeviceParams,
    pub(super) units_now: u32,
    pub(super) lat_mult: f64,
    pub(super) busy: u32,
    pub(super) waiting: VecDeque<(DevOp, u64)>,
    pub(super) host_q: VecDeque<(DevOp, u64)>,
    pub(super) stalled_until: u64,
    pub(super) drift: DriftState,
}

/// The state of a device's [`Drift`] components, stepped every
/// [`DriftState::STEP_NS`] up to the time a service starts.
#[derive(Debug, Default)]
pub(super) struct DriftState {
    /// Current `x` of each component.
    x: Vec<f64>,
    /// Time the `x` are valid up to, ns.
    at: u64,
    /// The drift's own random stream (seeded by [`Device::start`](super::Device::start)).
    pub(super) rng: Option<ChaCha8Rng>,
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
    pub(super) fn new(p: DeviceParams) -> Self {
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

    pub(super) fn schedule_stall(&mut self, now: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        if self.p.stall_rate_hz > 0.0 && self.p.stall_ns > 0 {
            let e: f64 = Exp1.sample(rng);
            let gap = (e / self.p.stall_rate_hz * 1e9).max(1.0) as u64;
            sched.push(now + gap, Ev::Stall);
        }
    }

    pub(super) fn submit(&mut self, op: DevOp, at: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        let in_device = self.busy as usize + self.waiting.len();
        match self.p.queue_cap {
            Some(cap) if in_device >= cap as usize => self.host_q.push_back((op, at)),
            _ => self.waiting.push_back((op, at)),
        }
        self.try_start(sched, rng);
    }

    pub(super) fn try_start(&mut self, sched: &mut Sched, rng: &mut ChaCha8Rng) {
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

    pub(super) fn on_done(
        &mut self,
        op: DevOp,
        sched: &mut Sched,
        rng: &mut ChaCha8Rng,
    ) -> Option<DevOp> {
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
