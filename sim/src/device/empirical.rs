//! The trace-driven device ([`EmpiricalDevice`]): latencies drawn from a
//! recorded [`EmpiricalProfile`].

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::DevOp;
use crate::empirical::EmpiricalProfile;
use crate::sched::{Ev, Sched};

/// A device whose latencies come from recorded data ([`EmpiricalProfile`]):
/// an infinite server whose latency distribution depends on the number of
/// ops in flight when an op arrives.
#[derive(Debug)]
pub struct EmpiricalDevice {
    profile: Arc<EmpiricalProfile>,
    pub(super) lat_mult: f64,
    pub(super) cap_mult: f64,
    pub(super) in_flight: u32,
}

impl EmpiricalDevice {
    pub(super) fn new(profile: Arc<EmpiricalProfile>) -> Self {
        EmpiricalDevice {
            profile,
            lat_mult: 1.0,
            cap_mult: 1.0,
            in_flight: 0,
        }
    }

    pub(super) fn submit(&mut self, op: DevOp, at: u64, sched: &mut Sched, rng: &mut ChaCha8Rng) {
        self.in_flight += 1;
        let depth = f64::from(self.in_flight) / self.cap_mult;
        let u: f64 = rng.gen();
        let lat = self.profile.latency_ns(depth, u) * self.lat_mult;
        sched.push(at + lat.max(1.0) as u64, Ev::DevDone(op));
    }
}
