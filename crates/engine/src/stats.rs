//! [`EngineStats`]: what the engine reports about itself (serde).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use auraio_controller::HistogramSnapshot;
use auraio_ring::{BackendKind, RingKind};
use serde::{Deserialize, Serialize};

use crate::Engine;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One ring's state and recent performance.
///
/// Rates and percentiles cover the last ~1 s of controller ticks
/// (`window_secs`; 0 when the ring was idle then); `lifetime_*` percentiles
/// cover everything up to the last tick; counters are totals since the
/// engine started and count every completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RingStatsSnapshot {
    /// Ring index.
    pub ring: u32,
    /// `"normal"` or `"sqpoll"` (io_uring), `"blocking"` (thread pool).
    pub kind: String,
    /// Slots: the most ops this ring can have in flight.
    pub capacity: u32,
    /// Ops in the ring now (queued SQEs and in the kernel).
    pub in_flight: u32,
    /// Highest `in_flight` seen since start.
    pub peak_in_flight: u32,
    /// Ops held back by the in-flight limit now.
    pub backlog: u32,
    /// Accepted ops whose completion has not been delivered yet.
    pub pending: u64,
    /// In-flight limit in force.
    pub limit: u32,
    /// Batch threshold in force (SQEs per submit).
    pub batch: u32,
    /// Controller name.
    pub controller: String,
    /// Controller phase (e.g. `"probing"`, `"steady"`).
    pub phase: String,
    /// Why the controller last changed its decision.
    pub reason: String,
    /// Median latency in the window (ns; 0 without completions).
    pub p50_ns: u64,
    /// 99th percentile latency in the window (ns).
    pub p99_ns: u64,
    /// 99.9th percentile latency in the window (ns).
    pub p999_ns: u64,
    /// Completions the percentiles rest on.
    pub latency_samples: u64,
    /// Median latency since start (ns; up to the last tick).
    pub lifetime_p50_ns: u64,
    /// 99th percentile latency since start (ns).
    pub lifetime_p99_ns: u64,
    /// 99.9th percentile latency since start (ns).
    pub lifetime_p999_ns: u64,
    /// Length of the window the rates cover (s).
    pub window_secs: f64,
    /// Completions per second in the window.
    pub iops: f64,
    /// Bytes per second in the window.
    pub bytes_per_sec: f64,
    /// Time in the window the device stood still with ops in flight: gaps
    /// between completions several times longer than usual (s; see
    /// `auraio_controller::StallDetector`).
    #[serde(default)]
    pub stalled_secs: f64,
    /// Completions since start (every one, errors included).
    pub completions: u64,
    /// Bytes transferred by successful data ops since start.
    pub bytes: u64,
    /// Completions with an error result since start (`ECANCELED` included).
    pub errors: u64,
    /// Callbacks that panicked (caught) since start.
    pub callback_panics: u64,
    /// `io_uring_enter` calls made by the ring (submit and reap) since start.
    pub enter_calls: u64,
    /// `io_uring_enter` calls that submitted SQEs.
    pub submit_calls: u64,
    /// Blocking waits in the kernel (reapers, `wait`).
    pub waiter_enter_calls: u64,
    /// SQEs submitted since start (internal ones included).
    pub sqes_submitted: u64,
    /// Mean SQEs per submitting `io_uring_enter`.
    pub sqes_per_enter: f64,
}

/// Engine-wide totals (sums over rings; percentiles from the merged
/// histograms).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TotalStats {
    /// Ops in the rings now.
    pub in_flight: u32,
    /// Sum of the rings' peaks.
    pub peak_in_flight: u32,
    /// Ops held back by limits now.
    pub backlog: u32,
    /// Accepted ops not yet delivered.
    pub pending: u64,
    /// Sum of the rings' in-flight limits.
    pub limit: u32,
    /// Median latency over all rings in the window (ns).
    pub p50_ns: u64,
    /// 99th percentile latency over all rings (ns).
    pub p99_ns: u64,
    /// 99.9th percentile latency over all rings (ns).
    pub p999_ns: u64,
    /// Completions the percentiles rest on.
    pub latency_samples: u64,
    /// Median latency since start over all rings (ns; up to the last tick).
    pub lifetime_p50_ns: u64,
    /// 99th percentile latency since start over all rings (ns).
    pub lifetime_p99_ns: u64,
    /// 99.9th percentile latency since start over all rings (ns).
    pub lifetime_p999_ns: u64,
    /// Completions per second.
    pub iops: f64,
    /// Bytes per second.
    pub bytes_per_sec: f64,
    /// Completions since start.
    pub completions: u64,
    /// Bytes since start.
    pub bytes: u64,
    /// Errors since start.
    pub errors: u64,
    /// Caught callback panics since start.
    pub callback_panics: u64,
    /// `io_uring_enter` calls (rings' own) since start.
    pub enter_calls: u64,
    /// Submitting `io_uring_enter` calls since start.
    pub submit_calls: u64,
    /// SQEs submitted since start.
    pub sqes_submitted: u64,
    /// Mean SQEs per submitting `io_uring_enter`.
    pub sqes_per_enter: f64,
}

/// Everything [`Engine::stats`] reports. Serializes to JSON with serde.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// The I/O backend in use: `"io_uring"` or `"blocking"` (thread pool).
    pub backend: String,
    /// Why the engine fell back to the blocking backend, if it did.
    pub fallback_reason: Option<String>,
    /// Controller name.
    pub controller: String,
    /// Seconds since the engine was built.
    pub uptime_secs: f64,
    /// True after shutdown.
    pub shut_down: bool,
    /// Trace records that could not be written.
    pub trace_errors: u64,
    /// Totals over all rings.
    pub total: TotalStats,
    /// Per ring.
    pub rings: Vec<RingStatsSnapshot>,
}

/// `"normal"`, `"sqpoll"`, or the lowercase name of any other backend kind
/// the ring reports.
fn kind_name(k: RingKind) -> String {
    format!("{k:?}").to_lowercase()
}

fn per_enter(sqes: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        sqes as f64 / calls as f64
    }
}

impl Engine {
    /// A snapshot of the engine's state and performance.
    pub fn stats(&self) -> EngineStats {
        let sh = self.sh();
        let mut rings = Vec::with_capacity(sh.rings.len());
        let mut total = TotalStats::default();
        let mut all_hist = HistogramSnapshot::default();
        let mut all_life = HistogramSnapshot::default();
        let mut max_window = 0.0f64;
        for s in &sh.rings {
            let rs = *lock(&s.ring_stats);
            let (hist, life, completions, bytes, stalled, window, phase, reason, controller) = {
                let p = lock(&s.published);
                let mut h = HistogramSnapshot::default();
                let (mut c, mut b, mut st) = (0u64, 0u64, Duration::ZERO);
                for smp in &p.window {
                    h.merge(&smp.latency);
                    c += smp.completions;
                    b += smp.bytes;
                    st += smp.stalled;
                }
                (
                    h,
                    p.lifetime.clone(),
                    c,
                    b,
                    st.as_secs_f64(),
                    p.window_len.as_secs_f64(),
                    p.state.phase.clone(),
                    p.state.reason.clone(),
                    p.state.name.clone(),
                )
            };
            let rate = |x: u64| if window > 0.0 { x as f64 / window } else { 0.0 };
            let r = RingStatsSnapshot {
                ring: s.idx,
                kind: match s.backend {
                    BackendKind::Blocking => BackendKind::Blocking.name().to_string(),
                    _ => kind_name(s.kind),
                },
                capacity: s.capacity,
                in_flight: s.in_flight.load(Relaxed),
                peak_in_flight: s.peak.load(Relaxed),
                backlog: s.backlog_len.load(Relaxed),
                pending: s.pending(),
                limit: s.limit.load(Relaxed),
                batch: s.batch.load(Relaxed),
                controller,
                phase,
                reason,
                p50_ns: hist.p50_ns(),
                p99_ns: hist.p99_ns(),
                p999_ns: hist.p999_ns(),
                latency_samples: hist.count(),
                lifetime_p50_ns: life.p50_ns(),
                lifetime_p99_ns: life.p99_ns(),
                lifetime_p999_ns: life.p999_ns(),
                window_secs: window,
                iops: rate(completions),
                bytes_per_sec: rate(bytes),
                stalled_secs: stalled,
                completions: s.completions.load(Relaxed),
                bytes: s.bytes.load(Relaxed),
                errors: s.errors.load(Relaxed),
                callback_panics: s.panics.load(Relaxed),
                enter_calls: rs.enter_calls,
                submit_calls: rs.submit_calls,
                waiter_enter_calls: rs.waiter_enter_calls,
                sqes_submitted: rs.sqes_submitted,
                sqes_per_enter: per_enter(rs.sqes_submitted, rs.submit_calls),
            };
            all_hist.merge(&hist);
            all_life.merge(&life);
            max_window = max_window.max(window);
            total.in_flight += r.in_flight;
            total.peak_in_flight += r.peak_in_flight;
            total.backlog += r.backlog;
            total.pending += r.pending;
            total.limit += r.limit;
            total.iops += r.iops;
            total.bytes_per_sec += r.bytes_per_sec;
            total.completions += r.completions;
            total.bytes += r.bytes;
            total.errors += r.errors;
            total.callback_panics += r.callback_panics;
            total.enter_calls += r.enter_calls;
            total.submit_calls += r.submit_calls;
            total.sqes_submitted += r.sqes_submitted;
            rings.push(r);
        }
        let _ = max_window;
        total.p50_ns = all_hist.p50_ns();
        total.p99_ns = all_hist.p99_ns();
        total.p999_ns = all_hist.p999_ns();
        total.latency_samples = all_hist.count();
        total.lifetime_p50_ns = all_life.p50_ns();
        total.lifetime_p99_ns = all_life.p99_ns();
        total.lifetime_p999_ns = all_life.p999_ns();
        total.sqes_per_enter = per_enter(total.sqes_submitted, total.submit_calls);
        let backend = match sh.rings.first().map(|s| s.backend) {
            Some(BackendKind::Blocking) => BackendKind::Blocking.name().to_string(),
            _ => BackendKind::IoUring.name().to_string(),
        };
        let fallback_reason = sh.rings.iter().find_map(|s| s.fallback_reason.clone());
        EngineStats {
            backend,
            fallback_reason,
            controller: sh.controller_name.clone(),
            uptime_secs: sh.uptime().as_secs_f64(),
            shut_down: sh.closed.load(Relaxed),
            trace_errors: sh.trace_errors(),
            total,
            rings,
        }
    }
}
