//! [`IoMeter`]: the one code path that turns raw I/O events into a [`Sample`].
//!
//! The engine keeps one per ring and the simulator one per simulated ring, so
//! a controller sees exactly the same kind of measurement in both.

use crate::histogram::LatencyHistogram;
use crate::sample::Sample;
use std::sync::atomic::AtomicU64 as StdU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Per-ring event counters. `Send + Sync`, relaxed atomics only, no clock:
/// time comes in with [`take_sample`](Self::take_sample).
///
/// Every completion is counted (counts are exact, never sampled) and its
/// latency recorded in a double-buffered [`LatencyHistogram`].
///
/// # `in_flight_avg` (Little's law)
/// The time-averaged concurrency of an interval is estimated as
/// `Σ latency of the completions in the interval / interval length`.
/// This is exact when every op starts and ends inside the interval. Ops that
/// straddle a boundary are credited wholly to the interval they complete in,
/// and ops still in flight at the end are not seen yet; in steady state the
/// two errors cancel on average, but after a sudden change of depth the
/// estimate lags by about one latency (small when the latency is much
/// shorter than the tick, e.g. 100 µs vs 10 ms).
#[derive(Debug, Default)]
pub struct IoMeter {
    hist: LatencyHistogram,
    bytes: StdU64,
    errors: StdU64,
    enter_calls: StdU64,
    sqes: StdU64,
    peak_in_flight: StdU64,
    backlog_now: StdU64,
    backlog_peak: StdU64,
    last_now_ns: StdU64,
}

impl IoMeter {
    /// A meter whose first interval starts at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// One op handed to the kernel; `in_flight_after` is the ring's
    /// in-flight count including it (tracks the interval's peak).
    #[inline]
    pub fn on_submit(&self, in_flight_after: u32) {
        let v = u64::from(in_flight_after);
        if v > self.peak_in_flight.load(Relaxed) {
            self.peak_in_flight.fetch_max(v, Relaxed);
        }
    }

    /// One `io_uring_enter` that submitted `sqes` SQEs.
    #[inline]
    pub fn on_enter(&self, sqes: u32) {
        self.enter_calls.fetch_add(1, Relaxed);
        self.sqes.fetch_add(u64::from(sqes), Relaxed);
    }

    /// One completion (call for every one). `bytes` counts only when
    /// `error` is false.
    #[inline]
    pub fn on_complete(&self, latency_ns: u64, bytes: u64, error: bool) {
        self.hist.record(latency_ns);
        if error {
            self.errors.fetch_add(1, Relaxed);
        } else if bytes != 0 {
            self.bytes.fetch_add(bytes, Relaxed);
        }
    }

    /// `n` completions that share one latency (e.g. reaped together), at
    /// the cost of one [`on_complete`](Self::on_complete): the histogram
    /// records `n` times `latency_ns` with one update per counter, and
    /// `bytes` (the successful ones' total) and `errors` (how many of the
    /// `n` failed) are added once. The same sample as `n` calls of
    /// `on_complete`; `n == 0` records no latency.
    #[inline]
    pub fn on_complete_n(&self, latency_ns: u64, n: u64, bytes: u64, errors: u64) {
        self.hist.record_n(latency_ns, n);
        if errors != 0 {
            self.errors.fetch_add(errors, Relaxed);
        }
        if bytes != 0 {
            self.bytes.fetch_add(bytes, Relaxed);
        }
    }

    /// The number of ops currently held back by the limit (a gauge; the
    /// sample reports the interval's highest value).
    #[inline]
    pub fn set_backlog(&self, ops_waiting: u32) {
        let v = u64::from(ops_waiting);
        self.backlog_now.store(v, Relaxed);
        if v > self.backlog_peak.load(Relaxed) {
            self.backlog_peak.fetch_max(v, Relaxed);
        }
    }

    /// Closes the interval that began at the previous call (or at time 0)
    /// and ends at `now`, and starts the next one. `in_flight_now` seeds the
    /// next interval's peak (those ops are still in flight in it).
    /// Meant for one caller (the tick); a `now` earlier than the previous one
    /// gives a zero-length interval.
    pub fn take_sample(&self, now: Duration, in_flight_now: u32) -> Sample {
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let prev = self.last_now_ns.swap(now_ns, Relaxed);
        let interval = Duration::from_nanos(now_ns.saturating_sub(prev));
        let latency = self.hist.swap();
        let peak = self
            .peak_in_flight
            .swap(u64::from(in_flight_now), Relaxed)
            .max(u64::from(in_flight_now));
        let backlog_now = self.backlog_now.load(Relaxed);
        let backlog = self
            .backlog_peak
            .swap(backlog_now, Relaxed)
            .max(backlog_now);
        let secs = interval.as_secs_f64();
        let in_flight_avg = if secs > 0.0 {
            latency.sum_ns() as f64 / 1e9 / secs
        } else {
            0.0
        };
        Sample {
            now,
            interval,
            completions: latency.count(),
            bytes: self.bytes.swap(0, Relaxed),
            errors: self.errors.swap(0, Relaxed),
            in_flight_avg,
            in_flight_peak: u32::try_from(peak).unwrap_or(u32::MAX),
            backlog: u32::try_from(backlog).unwrap_or(u32::MAX),
            enter_calls: self.enter_calls.swap(0, Relaxed),
            sqes_submitted: self.sqes.swap(0, Relaxed),
            // Measured from the ring's completion gaps by the caller.
            stalled: Duration::ZERO,
            latency,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn builds_a_sample_and_resets() {
        let m = IoMeter::new();
        for i in 1..=4 {
            m.on_submit(i);
        }
        m.on_enter(4);
        m.set_backlog(7);
        m.set_backlog(2);
        // 4 ops of 5 ms each in a 10 ms interval: on average 2 in flight.
        for _ in 0..3 {
            m.on_complete(5_000_000, 4096, false);
        }
        m.on_complete(5_000_000, 4096, true);
        let s = m.take_sample(Duration::from_millis(10), 1);
        assert_eq!(s.now, Duration::from_millis(10));
        assert_eq!(s.interval, Duration::from_millis(10));
        assert_eq!(s.completions, 4);
        assert_eq!(s.errors, 1);
        assert_eq!(s.bytes, 3 * 4096);
        assert_eq!(s.in_flight_peak, 4);
        assert_eq!(s.backlog, 7);
        assert_eq!(s.enter_calls, 1);
        assert_eq!(s.sqes_submitted, 4);
        assert!((s.in_flight_avg - 2.0).abs() < 1e-9, "{}", s.in_flight_avg);
        assert_eq!(s.latency.count(), 4);

        let s2 = m.take_sample(Duration::from_millis(25), 0);
        assert_eq!(s2.interval, Duration::from_millis(15));
        assert_eq!(s2.completions, 0);
        assert_eq!(s2.bytes, 0);
        assert_eq!(s2.in_flight_peak, 1, "seeded by in_flight_now");
        assert_eq!(s2.backlog, 2, "gauge carries over");
        assert_eq!(s2.in_flight_avg, 0.0);
        assert_eq!(s2.enter_calls, 0);
    }

    #[test]
    fn on_complete_n_equals_n_on_completes() {
        let one = IoMeter::new();
        let batch = IoMeter::new();
        // 5 completions of 7 µs (2 failed, 3 × 4096 bytes), then 2 of 1 ms.
        for i in 0..5 {
            let failed = i % 2 == 1;
            one.on_complete(7_000, if failed { 0 } else { 4096 }, failed);
        }
        for _ in 0..2 {
            one.on_complete(1_000_000, 0, false);
        }
        batch.on_complete_n(7_000, 5, 3 * 4096, 2);
        batch.on_complete_n(1_000_000, 2, 0, 0);
        batch.on_complete_n(5, 0, 0, 0); // records nothing
        let a = one.take_sample(Duration::from_millis(10), 0);
        let b = batch.take_sample(Duration::from_millis(10), 0);
        assert_eq!(b.completions, 7);
        assert_eq!(
            (a.completions, a.bytes, a.errors),
            (b.completions, b.bytes, b.errors)
        );
        assert_eq!(a.latency.sum_ns(), b.latency.sum_ns());
        assert_eq!(a.latency.min_ns(), b.latency.min_ns());
        assert_eq!(a.latency.max_ns(), b.latency.max_ns());
        assert_eq!(
            a.latency.buckets().collect::<Vec<_>>(),
            b.latency.buckets().collect::<Vec<_>>()
        );
        assert!((a.in_flight_avg - b.in_flight_avg).abs() < 1e-12);
    }

    #[test]
    fn time_going_backwards_is_a_zero_interval() {
        let m = IoMeter::new();
        m.take_sample(Duration::from_millis(10), 0);
        m.on_complete(1000, 1, false);
        let s = m.take_sample(Duration::from_millis(5), 0);
        assert_eq!(s.interval, Duration::ZERO);
        assert_eq!(s.in_flight_avg, 0.0);
        assert_eq!(s.completions, 1);
    }
}
