//! The [`Controller`] trait, the [`Limits`] every policy stays within, and
//! the crate's error type.

use crate::sample::{ControllerState, Decision, Sample};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bounds on the in-flight limit. The engine sets `max_in_flight` to at most
/// the ring's slot capacity (itself ≤ the CQ size), so no policy can overflow
/// the CQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Lowest limit a policy may choose (at least 1).
    pub min_in_flight: u32,
    /// Highest limit a policy may choose.
    pub max_in_flight: u32,
    /// Limit in force before the first tick.
    pub initial_in_flight: u32,
}

impl Default for Limits {
    /// `min 1, max 256, initial 16`.
    fn default() -> Self {
        Limits {
            min_in_flight: 1,
            max_in_flight: 256,
            initial_in_flight: 16,
        }
    }
}

impl Limits {
    /// Limits with `initial` clamped into `[min, max]` (see [`normalized`](Self::normalized)).
    pub fn new(min_in_flight: u32, max_in_flight: u32, initial_in_flight: u32) -> Self {
        Limits {
            min_in_flight,
            max_in_flight,
            initial_in_flight,
        }
        .normalized()
    }

    /// A usable copy: `min >= 1`, `max >= min`, `initial` in `[min, max]`.
    /// Every policy normalizes what it is given, so odd values never panic.
    pub fn normalized(self) -> Self {
        let min = self.min_in_flight.max(1);
        let max = self.max_in_flight.max(min);
        Limits {
            min_in_flight: min,
            max_in_flight: max,
            initial_in_flight: self.initial_in_flight.clamp(min, max),
        }
    }

    /// `v` clamped into `[min, max]` (of the normalized limits).
    pub fn clamp(&self, v: u32) -> u32 {
        let n = self.normalized();
        v.clamp(n.min_in_flight, n.max_in_flight)
    }

    /// True when `v` is within `[min, max]` (of the normalized limits).
    pub fn contains(&self, v: u32) -> bool {
        self.clamp(v) == v
    }
}

/// A tuning policy: one tick's [`Sample`] in, the next [`Decision`] out.
///
/// Implementations are pure and deterministic: no clock, no I/O, no
/// randomness — the same samples always give the same decisions, so the
/// engine and the simulator run the same code and a trace replays exactly.
/// Object safe (`Box<dyn Controller>`).
pub trait Controller: Send + std::fmt::Debug {
    /// Consumes one tick's sample and returns the decision now in force.
    fn tick(&mut self, sample: &Sample) -> Decision;

    /// Name, phase and reason for the last change.
    fn state(&self) -> ControllerState;

    /// The decision in force now (before the first tick: the initial one).
    fn current(&self) -> Decision;

    /// Replaces the limits at run time; the current decision is clamped into
    /// them at once (visible through [`current`](Self::current)).
    fn set_limits(&mut self, limits: Limits) {
        let _ = limits;
    }

    /// Sets the P99 latency ceiling at run time (policies without a latency
    /// target ignore it).
    fn set_p99_ceiling(&mut self, ceiling: Duration) {
        let _ = ceiling;
    }
}

/// Errors building a controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A configuration value is unusable.
    #[error("invalid controller configuration: {0}")]
    InvalidConfig(String),
    /// A trace to replay could not be read.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
}

/// Batch threshold clamped to `[1, limit]`.
pub(crate) fn clamp_batch(batch: u32, limit: u32) -> u32 {
    batch.clamp(1, limit.max(1))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn limits_normalize() {
        let l = Limits::new(0, 0, 99);
        assert_eq!(l, Limits::new(1, 1, 1));
        let l = Limits::new(8, 4, 2);
        assert_eq!(
            l,
            Limits {
                min_in_flight: 8,
                max_in_flight: 8,
                initial_in_flight: 8
            }
        );
        let l = Limits::new(2, 64, 100);
        assert_eq!(l.initial_in_flight, 64);
        assert_eq!(l.clamp(0), 2);
        assert_eq!(l.clamp(65), 64);
        assert!(l.contains(10));
        assert!(!l.contains(1));
    }
}
