//! [`Fixed`]: a constant in-flight limit and batch size (the baseline every
//! adaptive policy is measured against).

use crate::controller::{clamp_batch, Controller, Limits};
use crate::sample::{ControllerState, Decision, Sample};

/// Always the same decision: `in_flight` (clamped into the limits) and
/// `batch` (clamped into `[1, in_flight]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixed {
    in_flight: u32,
    batch: u32,
    limits: Limits,
    decision: Decision,
}

impl Fixed {
    /// A fixed policy asking for `in_flight` ops in flight and a batch of
    /// `batch`, within `limits`.
    pub fn new(in_flight: u32, batch: u32, limits: Limits) -> Self {
        let mut f = Fixed {
            in_flight,
            batch,
            limits: limits.normalized(),
            decision: Decision {
                in_flight_limit: 1,
                batch_threshold: 1,
            },
        };
        f.recompute();
        f
    }

    fn recompute(&mut self) {
        let limit = self.limits.clamp(self.in_flight);
        self.decision = Decision {
            in_flight_limit: limit,
            batch_threshold: clamp_batch(self.batch, limit),
        };
    }
}

impl Controller for Fixed {
    fn tick(&mut self, _sample: &Sample) -> Decision {
        self.decision
    }

    fn state(&self) -> ControllerState {
        let reason = if self.decision.in_flight_limit == self.in_flight {
            format!("fixed at {}", self.in_flight)
        } else {
            format!(
                "fixed at {} (asked {}, clamped to limits [{}, {}])",
                self.decision.in_flight_limit,
                self.in_flight,
                self.limits.min_in_flight,
                self.limits.max_in_flight
            )
        };
        ControllerState {
            name: "fixed".into(),
            phase: "fixed".into(),
            reason,
        }
    }

    fn current(&self) -> Decision {
        self.decision
    }

    fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.normalized();
        self.recompute();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fixed_is_fixed_and_clamped() {
        let mut f = Fixed::new(64, 8, Limits::new(1, 256, 16));
        let d = Decision {
            in_flight_limit: 64,
            batch_threshold: 8,
        };
        assert_eq!(f.current(), d);
        assert_eq!(f.tick(&Sample::default()), d);
        assert_eq!(f.state().phase, "fixed");
        f.set_limits(Limits::new(1, 32, 16));
        assert_eq!(f.current().in_flight_limit, 32);
        assert!(f.state().reason.contains("clamped"));
        let f = Fixed::new(4, 8, Limits::default());
        assert_eq!(f.current().batch_threshold, 4);
        let f = Fixed::new(0, 0, Limits::default());
        assert_eq!(
            f.current(),
            Decision {
                in_flight_limit: 1,
                batch_threshold: 1
            }
        );
    }
}
