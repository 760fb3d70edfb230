//! [`TraceReplay`]: plays back the decisions recorded in a trace, by time.

use crate::controller::{Controller, ControllerError, Limits};
use crate::sample::{ControllerState, Decision, Sample};
use crate::trace::{read_trace, Trace};
use std::path::Path;

/// Replays one ring's recorded decisions: at a tick with time `now`, the
/// decision in force is the one recorded by the last tick whose sample time
/// is `<= now` (before the first recorded tick: the limits' initial value).
/// Decisions are clamped into the current [`Limits`] (a replay on a smaller
/// ring stays safe); on the same limits the replay is exact.
#[derive(Clone, Debug)]
pub struct TraceReplay {
    /// `(time ns, decision, recorded phase)` sorted by time.
    points: Vec<(u128, Decision, String)>,
    source: String,
    limits: Limits,
    /// Index of the next point not yet in force.
    next: usize,
    current: Decision,
    phase: String,
}

impl TraceReplay {
    /// Replays ring `ring` of the trace file at `path`.
    pub fn from_file(path: &Path, ring: u32, limits: Limits) -> Result<Self, ControllerError> {
        let trace = read_trace(path)?;
        Self::from_trace(&trace, ring, limits, &path.display().to_string())
    }

    /// Replays ring `ring` of an in-memory trace; `source` names it in
    /// states and errors.
    pub fn from_trace(
        trace: &Trace,
        ring: u32,
        limits: Limits,
        source: &str,
    ) -> Result<Self, ControllerError> {
        let mut points: Vec<(u128, Decision, String)> = trace
            .ticks
            .iter()
            .filter(|t| t.ring == ring)
            .map(|t| (t.sample.now.as_nanos(), t.decision, t.state.phase.clone()))
            .collect();
        if points.is_empty() {
            return Err(ControllerError::InvalidConfig(format!(
                "trace {source} has no tick records for ring {ring} (it has {} tick records in all)",
                trace.ticks.len()
            )));
        }
        // Stable: equal times keep file order, the last one wins.
        points.sort_by_key(|p| p.0);
        let limits = limits.normalized();
        let current = Decision {
            in_flight_limit: limits.initial_in_flight,
            batch_threshold: crate::controller::clamp_batch(8, limits.initial_in_flight),
        };
        Ok(TraceReplay {
            points,
            source: source.to_string(),
            limits,
            next: 0,
            current,
            phase: "before-first-tick".into(),
        })
    }

    /// Number of recorded decisions.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no decision was recorded (never for a constructed replay).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn clamp(&self, d: Decision) -> Decision {
        let limit = self.limits.clamp(d.in_flight_limit);
        Decision {
            in_flight_limit: limit,
            batch_threshold: crate::controller::clamp_batch(d.batch_threshold, limit),
        }
    }
}

impl Controller for TraceReplay {
    fn tick(&mut self, sample: &Sample) -> Decision {
        let now = sample.now.as_nanos();
        // Time may jump backwards (a replay restarted): search from scratch.
        if self.next > 0 && self.points[self.next - 1].0 > now {
            self.next = 0;
            self.phase = "before-first-tick".into();
            self.current = Decision {
                in_flight_limit: self.limits.initial_in_flight,
                batch_threshold: crate::controller::clamp_batch(8, self.limits.initial_in_flight),
            };
        }
        while self.next < self.points.len() && self.points[self.next].0 <= now {
            let (_, d, phase) = &self.points[self.next];
            self.current = self.clamp(*d);
            self.phase = phase.clone();
            self.next += 1;
        }
        self.current
    }

    fn state(&self) -> ControllerState {
        ControllerState {
            name: "replay".into(),
            phase: self.phase.clone(),
            reason: format!(
                "replaying {} ({} of {} decisions applied)",
                self.source,
                self.next,
                self.points.len()
            ),
        }
    }

    fn current(&self) -> Decision {
        self.current
    }

    fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.normalized();
        self.current = self.clamp(self.current);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::trace::{TickRecord, TraceHeader};
    use std::time::Duration;

    fn trace(points: &[(u32, u64, u32)]) -> Trace {
        Trace {
            header: TraceHeader::new("aimd", 2, 256, 10),
            ticks: points
                .iter()
                .map(|&(ring, ms, limit)| TickRecord {
                    ring,
                    sample: Sample {
                        now: Duration::from_millis(ms),
                        ..Sample::default()
                    },
                    decision: Decision {
                        in_flight_limit: limit,
                        batch_threshold: 4,
                    },
                    state: ControllerState {
                        name: "aimd".into(),
                        phase: format!("p{limit}"),
                        reason: String::new(),
                    },
                })
                .collect(),
            ios: vec![],
        }
    }

    fn at(ms: u64) -> Sample {
        Sample {
            now: Duration::from_millis(ms),
            ..Sample::default()
        }
    }

    #[test]
    fn replays_by_time() {
        let t = trace(&[(0, 10, 20), (1, 10, 99), (0, 20, 30), (0, 40, 50)]);
        let mut r = TraceReplay::from_trace(&t, 0, Limits::new(1, 256, 16), "mem").unwrap();
        assert_eq!(r.current().in_flight_limit, 16);
        assert_eq!(r.tick(&at(5)).in_flight_limit, 16);
        assert_eq!(r.tick(&at(10)).in_flight_limit, 20);
        assert_eq!(r.tick(&at(15)).in_flight_limit, 20);
        assert_eq!(r.tick(&at(45)).in_flight_limit, 50);
        assert_eq!(r.state().phase, "p50");
        assert_eq!(r.tick(&at(1000)).in_flight_limit, 50);
        // time going back restarts
        assert_eq!(r.tick(&at(20)).in_flight_limit, 30);
        r.set_limits(Limits::new(1, 25, 16));
        assert_eq!(r.current().in_flight_limit, 25);
        let mut r1 = TraceReplay::from_trace(&t, 1, Limits::default(), "mem").unwrap();
        assert_eq!(r1.tick(&at(10)).in_flight_limit, 99);
    }

    #[test]
    fn missing_ring_is_an_error() {
        let t = trace(&[(0, 10, 20)]);
        let e = TraceReplay::from_trace(&t, 3, Limits::default(), "mem").unwrap_err();
        assert!(e.to_string().contains("no tick records for ring 3"), "{e}");
    }

    #[test]
    fn malformed_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.jsonl");
        std::fs::write(&p, "{\"type\":\"header\"}\n").unwrap();
        let e = TraceReplay::from_file(&p, 0, Limits::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bad.jsonl:1:"), "{msg}");
    }
}
