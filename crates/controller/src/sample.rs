//! What a controller sees ([`Sample`]) and what it answers ([`Decision`],
//! [`ControllerState`]).

use crate::histogram::HistogramSnapshot;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One tick's observation of one ring, built by [`crate::IoMeter::take_sample`]
/// (the same code in the engine and the simulator).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Monotonic time since the start of the run (passed in; never read here).
    pub now: Duration,
    /// Length of the interval this sample covers.
    pub interval: Duration,
    /// Completions in the interval (every one, never sampled).
    pub completions: u64,
    /// Bytes transferred by successful completions in the interval.
    pub bytes: u64,
    /// Completions that returned an error.
    pub errors: u64,
    /// Latency of the completions in the interval.
    pub latency: HistogramSnapshot,
    /// Time-averaged measured concurrency (Little's law: sum of the
    /// completion latencies in the interval / interval length). Not the limit.
    pub in_flight_avg: f64,
    /// Highest number of ops in flight at any point in the interval.
    pub in_flight_peak: u32,
    /// Highest number of ops held back by the limit during the interval
    /// (> 0 means demand exceeded the limit).
    pub backlog: u32,
    /// `io_uring_enter` calls in the interval.
    pub enter_calls: u64,
    /// SQEs submitted by those calls.
    pub sqes_submitted: u64,
    /// Time the device stood still with ops in flight (see
    /// [`crate::StallDetector`]); zero where the source does not measure it
    /// (and in traces written before it existed).
    #[serde(default)]
    pub stalled: Duration,
}

impl Sample {
    /// Completions per second (0 for an empty or zero-length interval).
    pub fn iops(&self) -> f64 {
        let s = self.interval.as_secs_f64();
        if s > 0.0 {
            self.completions as f64 / s
        } else {
            0.0
        }
    }

    /// Bytes per second (0 for a zero-length interval).
    pub fn bytes_per_sec(&self) -> f64 {
        let s = self.interval.as_secs_f64();
        if s > 0.0 {
            self.bytes as f64 / s
        } else {
            0.0
        }
    }

    /// Mean SQEs per `io_uring_enter` (0 when there was no enter).
    pub fn sqes_per_enter(&self) -> f64 {
        if self.enter_calls > 0 {
            self.sqes_submitted as f64 / self.enter_calls as f64
        } else {
            0.0
        }
    }

    /// True when nothing completed in the interval.
    pub fn is_empty(&self) -> bool {
        self.completions == 0
    }

    /// Folds `later` (the following interval) into `self`: sums counts and
    /// time, merges latency, takes the later `now`, the max of peaks and
    /// backlogs, and recomputes the time-averaged in-flight over both.
    pub fn accumulate(&mut self, later: &Sample) {
        let a = self.interval.as_secs_f64();
        let b = later.interval.as_secs_f64();
        self.in_flight_avg = if a + b > 0.0 {
            (self.in_flight_avg * a + later.in_flight_avg * b) / (a + b)
        } else {
            later.in_flight_avg.max(self.in_flight_avg)
        };
        self.now = later.now;
        self.interval += later.interval;
        self.completions += later.completions;
        self.bytes += later.bytes;
        self.errors += later.errors;
        self.latency.merge(&later.latency);
        self.in_flight_peak = self.in_flight_peak.max(later.in_flight_peak);
        self.backlog = self.backlog.max(later.backlog);
        self.enter_calls += later.enter_calls;
        self.sqes_submitted += later.sqes_submitted;
        self.stalled += later.stalled;
    }
}

/// A controller's output: what the ring enforces until the next tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Maximum ops in flight on the ring.
    pub in_flight_limit: u32,
    /// Submit (enter the kernel) once this many SQEs are queued.
    pub batch_threshold: u32,
}

/// A controller's self-description, for stats, traces and plots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Policy name (`"aimd"`, `"fixed"`, `"replay"`, …).
    pub name: String,
    /// Current phase (`"probing"`, `"steady"`, …).
    pub phase: String,
    /// Why the last change (of limit or phase) happened.
    pub reason: String,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn rates_and_accumulate() {
        let mut a = Sample {
            now: Duration::from_millis(10),
            interval: Duration::from_millis(10),
            completions: 100,
            bytes: 409_600,
            in_flight_avg: 4.0,
            in_flight_peak: 5,
            enter_calls: 10,
            sqes_submitted: 80,
            ..Sample::default()
        };
        assert_eq!(a.iops(), 10_000.0);
        assert_eq!(a.sqes_per_enter(), 8.0);
        let b = Sample {
            now: Duration::from_millis(40),
            interval: Duration::from_millis(30),
            completions: 300,
            in_flight_avg: 8.0,
            in_flight_peak: 9,
            backlog: 3,
            ..Sample::default()
        };
        a.accumulate(&b);
        assert_eq!(a.now, Duration::from_millis(40));
        assert_eq!(a.interval, Duration::from_millis(40));
        assert_eq!(a.completions, 400);
        assert!((a.in_flight_avg - 7.0).abs() < 1e-9);
        assert_eq!(a.in_flight_peak, 9);
        assert_eq!(a.backlog, 3);
        assert_eq!(Sample::default().iops(), 0.0);
        assert_eq!(Sample::default().sqes_per_enter(), 0.0);
    }

    #[test]
    fn serde_round_trip() {
        let mut s = Sample {
            now: Duration::from_millis(123),
            interval: Duration::from_millis(10),
            completions: 2,
            ..Sample::default()
        };
        s.latency.record(80_000);
        s.latency.record(90_000);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Sample>(&j).unwrap(), s);
        let d = Decision {
            in_flight_limit: 64,
            batch_threshold: 8,
        };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&j).unwrap(), d);
    }
}
