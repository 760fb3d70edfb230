//! Unit tests of the scenarios: segments, the whole-run ratio, and judging
//! reaction and convergence.

use super::*;
use crate::runner::{RunResult, TickPoint, WindowStats};

fn fake_run(sc: &Scenario, limit_at: impl Fn(f64) -> u32) -> RunResult {
    let n = (sc.duration_s / 0.01).round() as usize;
    let ticks: Vec<TickPoint> = (1..=n)
        .map(|i| {
            let t = i as f64 * 0.01;
            TickPoint {
                t_s: t,
                limit: limit_at(t),
                batch: 8,
                iops: 1000.0,
                p50_us: 100.0,
                p99_us: 200.0,
                p99_plot_us: 200.0,
                in_flight_avg: 10.0,
                in_flight_peak: limit_at(t),
                backlog: 1,
                stalled_ms: 0.0,
                phase: "steady".into(),
                reason: String::new(),
            }
        })
        .collect();
    let windows = sc
        .segments()
        .iter()
        .map(|s| {
            let mut latency = auraio_controller::HistogramSnapshot::default();
            latency.record(200_000);
            WindowStats {
                from_s: s.eval.0,
                to_s: s.eval.1,
                completions: 1000,
                latency,
                ticks: 100,
                seconds: 1.0,
            }
        })
        .collect();
    RunResult {
        controller: "fake".into(),
        ticks,
        windows,
        completions: 0,
        enter_calls: 1,
        sqes: 1,
        events: 0,
    }
}

fn best(depth: u32) -> Option<BestFixed> {
    Some(BestFixed {
        depth,
        max_iops: 1000.0,
        p99_us: 200.0,
        p50_us: 100.0,
        points: vec![],
    })
}

#[test]
fn run_ratio_counts_the_whole_run_of_a_closed_loop_without_steps() {
    // virtio-busy: 10 s, one segment, closed loop; best 1000 IOPS.
    let sc = builtin("virtio-busy").unwrap();
    let mut r = fake_run(&sc, |_| 64);
    r.completions = 9_500;
    let m = judge(&sc, &[best(64)], &r);
    let ratio = m.run_thr_ratio.expect("closed loop, no steps");
    assert!((ratio - 0.95).abs() < 1e-9, "{ratio}");
    // With steps the segments have different bests: no whole-run ratio.
    let sc = builtin("nvme-capacity-halves").unwrap();
    let m = judge(&sc, &[best(72), best(36)], &fake_run(&sc, |_| 64));
    assert_eq!(m.run_thr_ratio, None);
    // Nor for an open loop (its reference is the offered rate).
    let sc = builtin("app-limited").unwrap();
    let m = judge(&sc, &[None], &fake_run(&sc, |_| 64));
    assert_eq!(m.run_thr_ratio, None);
}

#[test]
fn judge_reaction_and_convergence() {
    let sc = builtin("nvme-capacity-halves").unwrap();
    let b = vec![best(72), best(36)];
    // Reaches 72 at 0.5 s, then 40 (within ±25 % of 36) 1 s after the step.
    let good = fake_run(&sc, |t| {
        if t < 0.5 {
            16
        } else if t < 6.0 {
            72
        } else {
            40
        }
    });
    let m = judge(&sc, &b, &good);
    assert!(
        (m.converge_s.unwrap() - 0.5).abs() < 0.011,
        "{:?}",
        m.converge_s
    );
    assert!((m.react_s.unwrap() - 1.0).abs() < 0.011, "{:?}", m.react_s);
    assert!(!m.react_never);
    assert!(m.failures.is_empty(), "{:?}", m.failures);
    // Stays at 72 after the step: never reacts, and the band fails.
    let stuck = fake_run(&sc, |t| if t < 0.5 { 16 } else { 72 });
    let m = judge(&sc, &b, &stuck);
    assert!(m.react_never);
    assert!(
        m.failures.iter().any(|f| f.contains("reaction")),
        "{:?}",
        m.failures
    );
    assert!(
        m.failures.iter().any(|f| f.contains("mean limit")),
        "{:?}",
        m.failures
    );
    assert!((m.limit_ratio.unwrap() - 2.0).abs() < 1e-9);
}

#[test]
fn every_builtin_exists_and_segments_cover_the_run() {
    for name in BUILTIN {
        let sc = builtin(name).unwrap();
        assert_eq!(sc.name, *name);
        let segs = sc.segments();
        assert!(!segs.is_empty());
        assert_eq!(segs[0].start_s, 0.0);
        assert!((segs.last().unwrap().end_s - sc.duration_s).abs() < 1e-9);
        for w in segs.windows(2) {
            assert!((w[0].end_s - w[1].start_s).abs() < 1e-9);
        }
    }
    assert!(builtin("nope").is_none());
    let s = builtin("nvme-latency-step").unwrap().segments();
    assert_eq!(s.len(), 3);
    assert_eq!(s[1].changes, vec![DeviceChange::LatencyMult { k: 2.0 }]);
    assert_eq!(s[2].changes.len(), 2);
    assert_eq!(s[1].eval, (7.5, 10.0));
}
