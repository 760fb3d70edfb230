//! Property tests: histogram accuracy, meter exactness, and the controller
//! invariants (limits in range, backoff within one tick of a P99 violation,
//! no change on empty windows, no growth when the limit is unused,
//! determinism, exact trace replay).

use auraio_controller::histogram::nearest_rank;
use auraio_controller::{
    read_trace, Aimd, AimdConfig, AimdPhase, Controller, ControllerConfig, Decision,
    HistogramSnapshot, IoMeter, LatencyHistogram, Limits, Sample, TickRecord, TraceHeader,
    TraceReplay, TraceWriter,
};
use proptest::prelude::*;
use std::time::Duration;

/// Latencies spread log-uniformly over 1 ns .. ~20 s, plus exact small values.
fn latency() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => 0u64..200,
        4 => (0.0f64..23.7).prop_map(|e| e.exp() as u64),
        1 => 1_000u64..1_000_000,
    ]
}

fn exact_percentile(sorted: &[u64], q: f64) -> u64 {
    sorted[(nearest_rank(q, sorted.len() as u64) - 1) as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn percentiles_within_3_percent(
        values in prop::collection::vec(latency(), 1..800),
        qs in prop::collection::vec(0.0f64..=1.0, 1..8),
    ) {
        let mut h = HistogramSnapshot::new();
        for &v in &values { h.record(v); }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        prop_assert_eq!(h.count(), values.len() as u64);
        prop_assert_eq!(h.min_ns(), sorted[0]);
        prop_assert_eq!(h.max_ns(), *sorted.last().unwrap());
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        prop_assert!((h.mean_ns() - mean).abs() <= mean * 1e-9 + 1e-9);
        for q in qs.iter().copied().chain([0.0, 0.5, 0.9, 0.99, 0.999, 1.0]) {
            let exact = exact_percentile(&sorted, q) as f64;
            let got = h.percentile_ns(q) as f64;
            prop_assert!((got - exact).abs() <= 0.03 * exact,
                "q {} exact {} got {}", q, exact, got);
        }
        prop_assert!(h.p50_ns() <= h.p90_ns() && h.p90_ns() <= h.p99_ns() && h.p99_ns() <= h.p999_ns());
    }

    #[test]
    fn merge_equals_recording_everything(
        a in prop::collection::vec(latency(), 0..300),
        b in prop::collection::vec(latency(), 0..300),
    ) {
        let (mut ha, mut hb, mut all) = (HistogramSnapshot::new(), HistogramSnapshot::new(), HistogramSnapshot::new());
        for &v in &a { ha.record(v); all.record(v); }
        for &v in &b { hb.record(v); all.record(v); }
        ha.merge(&hb);
        prop_assert_eq!(&ha, &all);
        let json = serde_json::to_string(&ha).unwrap();
        prop_assert_eq!(serde_json::from_str::<HistogramSnapshot>(&json).unwrap(), ha);
    }

    #[test]
    fn recorder_and_snapshot_agree(values in prop::collection::vec(latency(), 0..500), cut in 0usize..500) {
        let rec = LatencyHistogram::new();
        let mut plain = HistogramSnapshot::new();
        let mut got = HistogramSnapshot::new();
        for (i, &v) in values.iter().enumerate() {
            if i == cut { got.merge(&rec.swap()); }
            rec.record(v);
            plain.record(v);
        }
        got.merge(&rec.drain_all());
        prop_assert_eq!(got, plain);
    }

    #[test]
    fn meter_counts_are_exact(
        events in prop::collection::vec((latency(), 0u64..1 << 20, any::<bool>(), 0u32..300), 0..400),
        ticks in prop::collection::vec(0usize..400, 0..5),
    ) {
        let m = IoMeter::new();
        let (mut c, mut bytes, mut errs, mut lat_sum) = (0u64, 0u64, 0u64, 0u64);
        let mut peak = 0u32;
        let mut now = Duration::ZERO;
        let mut total = Sample::default();
        for (i, &(lat, len, err, infl)) in events.iter().enumerate() {
            if ticks.contains(&i) {
                now += Duration::from_millis(10);
                total.accumulate(&m.take_sample(now, 0));
            }
            m.on_submit(infl);
            m.on_enter(1);
            m.on_complete(lat, len, err);
            c += 1;
            lat_sum += lat;
            peak = peak.max(infl);
            if err { errs += 1 } else { bytes += len }
        }
        now += Duration::from_millis(10);
        let last = m.take_sample(now, 0);
        total.accumulate(&last);
        prop_assert_eq!(total.completions, c);
        prop_assert_eq!(total.errors, errs);
        prop_assert_eq!(total.bytes, bytes);
        prop_assert_eq!(total.latency.sum_ns(), lat_sum);
        prop_assert_eq!(total.enter_calls, c);
        prop_assert_eq!(total.sqes_submitted, c);
        prop_assert_eq!(total.in_flight_peak, peak);
        prop_assert_eq!(total.interval, now);
        // Little's law over the whole run
        let want = lat_sum as f64 / 1e9 / now.as_secs_f64();
        prop_assert!((total.in_flight_avg - want).abs() <= want * 1e-9 + 1e-9);
    }
}

/// One tick's worth of random measurements, independent of the limit.
#[derive(Clone, Debug)]
struct Raw {
    interval_ms: u64,
    completions: u64,
    lat_us: u64,
    tail_us: u64,
    peak: u32,
    backlog: u32,
    /// The device's stalled time the ring measured in the tick (µs).
    stalled_us: u64,
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        1u64..50,
        prop_oneof![1 => Just(0u64), 1 => 1u64..30, 3 => 30u64..3000],
        1u64..3_000,
        1u64..40_000,
        0u32..400,
        prop_oneof![Just(0u32), 0u32..100],
        prop_oneof![4 => Just(0u64), 1 => 1u64..40_000],
    )
        .prop_map(
            |(interval_ms, completions, lat_us, tail_us, peak, backlog, stalled_us)| Raw {
                interval_ms,
                completions,
                lat_us,
                tail_us,
                peak,
                backlog,
                stalled_us,
            },
        )
}

fn build(r: &Raw, now: &mut Duration) -> Sample {
    let interval = Duration::from_millis(r.interval_ms);
    *now += interval;
    let mut s = Sample {
        now: *now,
        interval,
        completions: r.completions,
        bytes: r.completions * 4096,
        in_flight_peak: r.peak,
        backlog: r.backlog,
        enter_calls: r.completions / 4,
        sqes_submitted: r.completions,
        stalled: Duration::from_micros(r.stalled_us),
        ..Sample::default()
    };
    let tail = r.completions / 50;
    s.latency.record_n(r.lat_us * 1000, r.completions - tail);
    s.latency.record_n(r.tail_us * 1000, tail);
    s.in_flight_avg = s.latency.sum_ns() as f64 / 1e9 / interval.as_secs_f64();
    s
}

/// Some AIMD configurations, including short clocks so that every phase is
/// reached within a few hundred ticks.
fn aimd_cfg() -> impl Strategy<Value = AimdConfig> {
    (any::<bool>(), 1u64..50_000, 0u64..300, 0u64..1000, 1u32..4).prop_map(
        |(fast_climb, ceiling, settle, converge, window)| AimdConfig {
            climb_factor: if fast_climb { 2.0 } else { 1.25 },
            p99_ceiling_us: ceiling,
            settle_ms: settle,
            converge_ms: converge,
            min_window_ticks: window,
            baseline_ticks: window * 2,
            ..AimdConfig::default()
        },
    )
}

fn limits() -> impl Strategy<Value = Limits> {
    (0u32..20, 0u32..300, 0u32..300).prop_map(|(a, b, c)| Limits::new(a, b, c))
}

#[derive(Clone, Debug)]
enum Op {
    Tick(Raw),
    SetLimits(Limits),
    SetCeiling(u64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            30 => raw().prop_map(Op::Tick),
            1 => limits().prop_map(Op::SetLimits),
            1 => (1u64..50_000).prop_map(Op::SetCeiling),
        ],
        1..400,
    )
}

/// The property's own model of the latency guard's window (see
/// `AimdConfig::guard_ticks`): the last `keep` non-empty ticks since the
/// limit last went down, extended back to `min` completions.
#[derive(Default)]
struct GuardModel {
    /// Each tick's latencies and measured stalled time (ns).
    ticks: std::collections::VecDeque<(HistogramSnapshot, u64)>,
}

impl GuardModel {
    fn push(&mut self, h: &HistogramSnapshot, stalled: Duration, keep: usize, min: u64) {
        if h.is_empty() {
            return;
        }
        self.ticks.push_back((h.clone(), stalled.as_nanos() as u64));
        let total = |t: &std::collections::VecDeque<(HistogramSnapshot, u64)>| -> u64 {
            t.iter().map(|(h, _)| h.count()).sum()
        };
        while self.ticks.len() > keep {
            let front = self.ticks[0].0.count();
            if total(&self.ticks) - front < min && self.ticks.len() <= 256 {
                break;
            }
            self.ticks.pop_front();
        }
    }
    fn p99(&self, min: u64) -> Option<u64> {
        self.percentile(min, 0.99)
    }
    /// A tick of the window had a measured stall, or completed under a
    /// third of the median tick.
    fn has_stall(&self) -> bool {
        let mut c: Vec<u64> = self.ticks.iter().map(|(t, _)| t.count()).collect();
        c.sort_unstable();
        self.longest_stall() > 0 || (c.len() >= 3 && c[0] * 3 < c[c.len() / 2])
    }
    fn longest_stall(&self) -> u64 {
        self.ticks.iter().map(|&(_, s)| s).max().unwrap_or(0)
    }
    /// A stall's tail, where the guard holds instead of cutting: a window
    /// holding a stall whose P99 is over 8 x P50 (`TAIL_RATIO`), or whose
    /// longest stall S accounts for the tail (P99 <= 2 P50 + S and
    /// 2 S >= P99 - P50).
    fn stall_tail(&self, min: u64) -> bool {
        let s = self.longest_stall();
        match (self.percentile(min, 0.99), self.percentile(min, 0.5)) {
            (Some(p99), Some(p50)) => {
                self.has_stall()
                    && (p99 as f64 > 8.0 * p50 as f64
                        || (s > 0 && p99 <= 2 * p50 + s && 2 * s >= p99 - p50))
            }
            _ => false,
        }
    }
    fn percentile(&self, min: u64, q: f64) -> Option<u64> {
        let mut all = HistogramSnapshot::new();
        for (t, _) in &self.ticks {
            all.merge(t);
        }
        (all.count() >= min.max(1)).then(|| all.percentile_ns(q))
    }
}

fn in_range(d: Decision, l: &Limits) -> bool {
    let l = l.normalized();
    d.in_flight_limit >= l.min_in_flight
        && d.in_flight_limit <= l.max_in_flight
        && d.batch_threshold >= 1
        && d.batch_threshold <= d.in_flight_limit
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn aimd_invariants(cfg in aimd_cfg(), lim in limits(), ops in ops()) {
        let (keep, min) = (cfg.guard_ticks as usize, cfg.min_window_completions);
        let body_fraction = 1.0 / cfg.latency_guard_mult;
        // After the controller's own cut the guard judges again only once
        // it holds `keep` ticks at the new limit.
        let mut holding = false;
        // The P99 that caused the last cut, while every judged window since
        // violated too: a further cut needs the P99 to have fallen below
        // CUT_RESPONSE (0.9) of it.
        let mut last_cut: Option<u64> = None;
        let mut c = Aimd::new(cfg, lim);
        let mut lim = lim;
        let mut guard = GuardModel::default();
        prop_assert!(in_range(c.current(), &lim));
        let mut now = Duration::ZERO;
        for op in &ops {
            match op {
                Op::SetLimits(l) => {
                    let before = c.current().in_flight_limit;
                    c.set_limits(*l);
                    if c.current().in_flight_limit < before {
                        guard = GuardModel::default();
                    }
                    holding = false;
                    lim = *l;
                    prop_assert!(in_range(c.current(), &lim), "after set_limits {:?}: {:?}", l, c.current());
                }
                Op::SetCeiling(us) => c.set_p99_ceiling(Duration::from_micros(*us)),
                Op::Tick(r) => {
                    let before = c.current();
                    let threshold = c.latency_threshold_ns();
                    let s = build(r, &mut now);
                    let d = c.tick(&s);
                    prop_assert!(in_range(d, &lim), "{:?} out of {:?}", d, lim);
                    prop_assert_eq!(d, c.current());
                    if s.completions == 0 {
                        prop_assert_eq!(d, before, "an empty window changed the decision");
                    }
                    guard.push(&s.latency, s.stalled, keep, min);
                    if guard.ticks.len() >= keep {
                        holding = false;
                    }
                    let p99 = guard.p99(min);
                    // Queueing moves the body (P95) too; a tail alone is a stall.
                    let queueing = guard.percentile(min, 0.95)
                        .is_some_and(|p| p > (threshold as f64 * body_fraction) as u64);
                    let stall_tail = guard.stall_tail(min);
                    if s.completions > 0 {
                        prop_assert_eq!(c.guard_p99_ns(), p99, "guard window differs from the model");
                    }
                    let violation = p99.filter(|_| s.completions > 0)
                        .filter(|&p| p > threshold && queueing && !holding);
                    if s.completions > 0 && !holding && p99.is_some() && violation.is_none() {
                        last_cut = None;
                    }
                    let responsive = |p: u64| last_cut.is_none_or(|prev| (p as f64) < prev as f64 * 0.9);
                    if let Some(p99) = p99.filter(|_| s.completions > 0) {
                        if p99 > threshold && queueing && !holding && responsive(p99) && !stall_tail
                            && before.in_flight_limit > lim.normalized().min_in_flight
                        {
                            prop_assert!(d.in_flight_limit < before.in_flight_limit,
                                "no backoff on a P99 violation: guard p99 {} > {}: {:?} -> {:?} ({:?})",
                                p99, threshold, before, d, c.state());
                        }
                    }
                    // A single tick far above the threshold with enough
                    // weight always trips the guard.
                    if s.completions >= 20 && s.latency.percentile_ns(0.5) > threshold
                        && before.in_flight_limit > lim.normalized().min_in_flight
                    {
                        prop_assert!(d.in_flight_limit < before.in_flight_limit || p99.is_some_and(|p| p <= threshold)
                            || !queueing || holding || stall_tail || p99.is_some_and(|p| !responsive(p)),
                            "tick median above the threshold without a backoff");
                    }
                    // Only a backoff (the controller's own cut) clears
                    // the guard window; trials move the limit both ways.
                    if c.phase() == AimdPhase::Backoff {
                        prop_assert!(d.in_flight_limit < before.in_flight_limit, "a backoff that did not cut");
                        prop_assert!(violation.is_some_and(responsive), "a cut without a responsive violation");
                        prop_assert!(!stall_tail, "a cut on a stall's tail");
                        last_cut = violation;
                        guard = GuardModel::default();
                        holding = true;
                    }
                }
            }
        }
    }

    #[test]
    fn aimd_no_growth_when_the_limit_is_unused(
        cfg in aimd_cfg(),
        lim in limits(),
        ticks in prop::collection::vec((raw(), 0.0f64..0.74), 1..400),
    ) {
        let mut c = Aimd::new(cfg, lim);
        let mut now = Duration::ZERO;
        for (r, frac) in &ticks {
            let before = c.current().in_flight_limit;
            let mut r = r.clone();
            r.backlog = 0;
            r.peak = (before as f64 * frac) as u32;
            let d = c.tick(&build(&r, &mut now));
            prop_assert!(d.in_flight_limit <= before, "grew {} -> {} while unused ({:?})", before, d.in_flight_limit, c.state());
        }
    }

    #[test]
    fn controllers_are_deterministic(cfg in aimd_cfg(), lim in limits(), ticks in prop::collection::vec(raw(), 1..300)) {
        let run = || {
            let mut c = Aimd::new(cfg.clone(), lim);
            let mut now = Duration::ZERO;
            ticks.iter().map(|r| {
                let d = c.tick(&build(r, &mut now));
                (d, c.state())
            }).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }

    #[test]
    fn replay_reproduces_a_recorded_run(lim in limits(), ticks in prop::collection::vec(raw(), 1..200)) {
        let mut c = ControllerConfig::default().build(lim).unwrap();
        let mut w = TraceWriter::new(Vec::new(), TraceHeader::new("aimd", 1, 256, 10)).unwrap();
        let mut now = Duration::ZERO;
        let mut samples = Vec::new();
        let mut decisions = Vec::new();
        for r in &ticks {
            let s = build(r, &mut now);
            let d = c.tick(&s);
            w.tick(&TickRecord { ring: 0, sample: s.clone(), decision: d, state: c.state() }).unwrap();
            samples.push(s);
            decisions.push(d);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, w.into_inner()).unwrap();
        let trace = read_trace(&path).unwrap();
        prop_assert_eq!(trace.ticks.len(), ticks.len());
        let mut r = TraceReplay::from_trace(&trace, 0, lim, "t").unwrap();
        let replayed: Vec<Decision> = samples.iter().map(|s| r.tick(s)).collect();
        // Equal sample times: the replay applies the last decision recorded
        // at that time, so compare at the last tick of each time.
        for i in 0..samples.len() {
            if i + 1 == samples.len() || samples[i + 1].now != samples[i].now {
                prop_assert_eq!(replayed[i], decisions[i], "tick {}", i);
            }
        }
        let mut via_cfg = ControllerConfig::Replay { path: path.clone() }.build(lim).unwrap();
        prop_assert_eq!(via_cfg.tick(samples.last().unwrap()), *decisions.last().unwrap());
    }

    #[test]
    fn fixed_config_round_trips(n in 1u32..10_000, b in 1u32..10_000) {
        let c = ControllerConfig::Fixed { in_flight: n, batch: b };
        prop_assert_eq!(c.to_string().parse::<ControllerConfig>().unwrap(), c.clone());
        let j = serde_json::to_string(&c).unwrap();
        prop_assert_eq!(serde_json::from_str::<ControllerConfig>(&j).unwrap(), c);
    }
}
