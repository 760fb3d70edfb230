//! Runner, calibration, trace loading and short scenario runs. Durations are
//! short so the suite stays fast in debug builds; the full scenarios run in
//! `auraio-sim --check` (release).

use std::sync::Arc;

use auraio_controller::{ControllerConfig, IoRecord, Limits, TraceHeader, TraceWriter};
use auraio_sim::device::{DeviceChange, DeviceParams, DeviceSpec};
use auraio_sim::empirical::EmpiricalProfile;
use auraio_sim::runner::{self, HostParams, RunSpec, Step, Workload};
use auraio_sim::scenario::{self, Criteria};
use auraio_sim::{report, suite, SimError};

fn spec(device: &str, secs: f64, seed: u64) -> RunSpec {
    RunSpec {
        device: DeviceSpec::Model(DeviceParams::preset(device).unwrap()),
        workload: Workload::closed(),
        host: HostParams::default(),
        steps: vec![],
        duration_s: secs,
        tick_ms: 10,
        limits: Limits::new(1, 1024, 16),
        p99_ceiling: None,
        seed,
        windows: vec![(secs / 2.0, secs)],
    }
}

fn fixed(d: u32) -> ControllerConfig {
    ControllerConfig::Fixed {
        in_flight: d,
        batch: 8,
    }
}

/// fio on this machine (4 KiB random O_DIRECT reads): depth, IOPS, P99 µs.
const FIO: &[(u32, f64, Option<f64>)] = &[
    (1, 12_600.0, None),
    (32, 96_000.0, None),
    (64, 129_000.0, Some(1_000.0)),
    (128, 129_000.0, Some(3_800.0)),
];

#[test]
fn virtio_preset_matches_fio_on_this_machine() {
    let mut points = Vec::new();
    for &(d, fio_iops, fio_p99) in FIO {
        let mut s = spec("virtio", 0.4, 5);
        s.windows = vec![(0.1, 0.4)];
        let r = runner::run(&s, &fixed(d)).unwrap();
        let w = &r.windows[0];
        let iops = w.iops();
        let p99 = w.latency.p99_ns() as f64 / 1e3;
        assert!(
            (iops / fio_iops - 1.0).abs() < 0.20,
            "QD{d}: {iops:.0} IOPS vs fio {fio_iops}"
        );
        if let Some(f) = fio_p99 {
            assert!(
                p99 > f * 0.5 && p99 < f * 1.5,
                "QD{d}: P99 {p99:.0} µs vs fio {f}"
            );
        }
        points.push((d, iops));
    }
    // Best depth by the sweep's rule over fio's depths: the smallest reaching
    // 95 % of the best throughput. fio: QD64 (QD32 is at 74 %).
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let best = points.iter().find(|p| p.1 >= 0.95 * max).unwrap().0;
    assert_eq!(best, 64, "{points:?}");
    assert!((max / 129_000.0 - 1.0).abs() < 0.20, "peak {max}");
}

#[test]
fn same_seed_same_run_other_seed_differs() {
    let cfg = ControllerConfig::default();
    let a = runner::run(&spec("optane", 0.3, 11), &cfg).unwrap();
    let b = runner::run(&spec("optane", 0.3, 11), &cfg).unwrap();
    let c = runner::run(&spec("optane", 0.3, 12), &cfg).unwrap();
    assert_eq!(a.ticks, b.ticks);
    assert_eq!(a.completions, b.completions);
    assert_eq!(a.windows, b.windows);
    assert_ne!(a.completions, c.completions);
}

#[test]
fn runner_enforces_limit_and_batch() {
    for (d, batch) in [(4, 1), (24, 8), (64, 4)] {
        let cfg = ControllerConfig::Fixed {
            in_flight: d,
            batch,
        };
        let r = runner::run(&spec("nvme", 0.1, 3), &cfg).unwrap();
        assert!(!r.ticks.is_empty());
        for t in &r.ticks[1..] {
            assert!(
                t.in_flight_peak <= d,
                "peak {} > limit {d}",
                t.in_flight_peak
            );
            assert_eq!(t.limit, d);
            assert!(t.backlog > 0, "closed loop keeps a backlog");
        }
        // At least one full batch per enter on average is impossible to
        // exceed; flushing at idle makes it at most `batch`.
        let per_enter = r.sqes as f64 / r.enter_calls as f64;
        assert!(
            per_enter <= f64::from(batch) + 1e-9,
            "{per_enter} > {batch}"
        );
        assert!(per_enter >= 1.0);
        // Throughput follows Little's law on the device: d / ~90 µs.
        let iops = r.windows[0].iops();
        let expect = f64::from(d.min(72)) / 95e-6;
        assert!(
            (iops / expect - 1.0).abs() < 0.2,
            "QD{d}: {iops} vs {expect}"
        );
    }
}

#[test]
fn open_loop_is_served_and_steps_apply() {
    let mut s = spec("nvme", 0.6, 2);
    s.workload = Workload::open(100_000.0);
    s.windows = vec![(0.1, 0.3), (0.35, 0.6)];
    s.steps = vec![Step {
        at_s: 0.3,
        change: DeviceChange::LatencyMult { k: 3.0 },
    }];
    let r = runner::run(&s, &fixed(256)).unwrap();
    let (a, b) = (&r.windows[0], &r.windows[1]);
    assert!((a.iops() / 100_000.0 - 1.0).abs() < 0.05, "{}", a.iops());
    assert!((b.iops() / 100_000.0 - 1.0).abs() < 0.05, "{}", b.iops());
    let (pa, pb) = (a.latency.p50_ns() as f64, b.latency.p50_ns() as f64);
    assert!(pb > 2.5 * pa && pb < 3.5 * pa, "latency ×3: {pa} → {pb}");
}

#[test]
fn capacity_step_and_neighbour_cut_throughput() {
    let mut s = spec("nvme", 0.6, 4);
    s.windows = vec![(0.1, 0.3), (0.4, 0.6)];
    s.steps = vec![Step {
        at_s: 0.3,
        change: DeviceChange::CapacityMult { k: 0.5 },
    }];
    let r = runner::run(&s, &fixed(128)).unwrap();
    let ratio = r.windows[1].iops() / r.windows[0].iops();
    assert!((ratio - 0.5).abs() < 0.05, "capacity ×0.5: {ratio}");
    s.steps = vec![Step {
        at_s: 0.3,
        change: DeviceChange::Neighbour { share: 0.25 },
    }];
    let r = runner::run(&s, &fixed(128)).unwrap();
    let ratio = r.windows[1].iops() / r.windows[0].iops();
    assert!((ratio - 0.75).abs() < 0.07, "neighbour takes 25 %: {ratio}");
}

fn write_trace(path: &std::path::Path, ios: &[(u32, u64)]) {
    let mut w = TraceWriter::create(path, TraceHeader::new("fixed:8", 1, 256, 10)).unwrap();
    for (i, &(depth, lat)) in ios.iter().enumerate() {
        w.io(&IoRecord {
            ring: 0,
            t_submit_ns: i as u64 * 1000,
            latency_ns: lat,
            op: "read".into(),
            len: 4096,
            in_flight_at_submit: depth,
            result: 4096,
        })
        .unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn auraio_trace_drives_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    // Depth 1..4 at 100 µs, 8 at 200 µs, 16 at 400 µs: a knee at ~4.
    let mut ios = Vec::new();
    for i in 0..400u64 {
        ios.push(((i % 4 + 1) as u32, 100_000 + i % 7));
        ios.push((8, 200_000 + i % 5));
        ios.push((16, 400_000 + i % 3));
    }
    write_trace(&path, &ios);
    let prof = EmpiricalProfile::from_auraio_trace(&path).unwrap();
    assert!(prof.levels.len() >= 3, "{:?}", prof.levels.len());
    let first = &prof.levels[0];
    assert!(first.depth >= 1.0 && first.depth <= 4.0);
    assert!((prof.latency_ns(16.0, 0.5) / 400_000.0 - 1.0).abs() < 0.01);
    // Interpolated between 8 and 16.
    let mid = prof.latency_ns(12.0, 0.5);
    assert!(mid > 250_000.0 && mid < 350_000.0, "{mid}");

    // It drives the runner: more depth, more latency, throughput ~ d / lat.
    let mut s = spec("nvme", 0.3, 1);
    s.device = DeviceSpec::Empirical(Arc::new(prof));
    s.windows = vec![(0.1, 0.3)];
    let r4 = runner::run(&s, &fixed(4)).unwrap();
    let r16 = runner::run(&s, &fixed(16)).unwrap();
    let (i4, i16) = (r4.windows[0].iops(), r16.windows[0].iops());
    assert!((i4 / 40_000.0 - 1.0).abs() < 0.15, "{i4}");
    assert!((i16 / 40_000.0 - 1.0).abs() < 0.15, "{i16}");
    assert!(r16.windows[0].latency.p50_ns() > 3 * r4.windows[0].latency.p50_ns());
}

#[test]
fn bad_traces_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Malformed line: the error names the file and line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"type\":\"header\",\"format\":\"auraio-trace\",\"version\":1,\"controller\":\"aimd\",\"rings\":1,\"ring_capacity\":8,\"tick_ms\":10}\nnot json\n",
    )
    .unwrap();
    let e = EmpiricalProfile::from_auraio_trace(&bad).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("bad.jsonl") && msg.contains('2'), "{msg}");
    // Too few io records (only a header): a clear error naming the file.
    let empty = dir.path().join("empty.jsonl");
    write_trace(&empty, &[]);
    let e = EmpiricalProfile::from_auraio_trace(&empty).unwrap_err();
    assert!(matches!(e, SimError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("empty.jsonl"), "{e}");
    // An empty file.
    let zero = dir.path().join("zero.jsonl");
    std::fs::write(&zero, "").unwrap();
    let e = EmpiricalProfile::from_auraio_trace(&zero).unwrap_err();
    assert!(e.to_string().contains("zero.jsonl"), "{e}");
    // A missing file.
    let e = EmpiricalProfile::from_auraio_trace(&dir.path().join("nope.jsonl")).unwrap_err();
    assert!(e.to_string().contains("nope.jsonl"), "{e}");
}

#[test]
fn sweep_finds_the_knee_of_a_small_device() {
    let sc = scenario::Scenario {
        sweep_measure_s: 0.1,
        ..scenario::steady_on(
            "t",
            DeviceSpec::Model(DeviceParams::preset("optane").unwrap()),
            0.5,
        )
    };
    let seg = &sc.segments()[0];
    let b = scenario::sweep(&sc, seg, 1).unwrap();
    // The device's knee is 8; the reaping thread's wake-up and syscall costs
    // (~6 µs on a 10 µs device) move the knee the ring sees to ~12.
    assert!((8..=16).contains(&b.depth), "optane knee: {}", b.depth);
    assert!(b.max_iops > 700_000.0, "{}", b.max_iops);
    assert!(b.points.windows(2).all(|w| w[0].depth < w[1].depth));
}

#[test]
fn fast_scenario_runs_are_judged() {
    // A short SATA scenario: Fixed at the knee passes the throughput and band
    // criteria; Fixed far past it fails the band and P99 criteria.
    let sc = scenario::Scenario {
        sweep_measure_s: 0.2,
        criteria: Criteria {
            min_thr_ratio: Some(0.9),
            limit_band: Some((0.75, 1.5)),
            max_p99_ratio: Some(2.0),
            ..Criteria::default()
        },
        ..scenario::steady_on(
            "sata",
            DeviceSpec::Model(DeviceParams::preset("sata-ssd").unwrap()),
            0.6,
        )
    };
    let reports = suite::run_suite(
        std::slice::from_ref(&sc),
        &[
            fixed(10).into(),
            fixed(64).into(),
            ControllerConfig::default().into(),
        ],
        1,
        2,
    )
    .unwrap();
    let r = &reports[0];
    let best = r.best[0].as_ref().unwrap().depth;
    assert!((8..=12).contains(&best), "sata knee ≈ 10: {best}");
    let at_knee = &r.runs[0].0;
    let deep = &r.runs[1].0;
    assert!(at_knee.failures.is_empty(), "{:?}", at_knee.failures);
    assert!(at_knee.thr_ratio > 0.9);
    assert!(!deep.failures.is_empty());
    assert!(
        deep.failures.iter().any(|f| f.contains("mean limit")),
        "{:?}",
        deep.failures
    );
    assert!(deep.p99_ratio.unwrap() > 2.0);
    // The default controller ran too and produced sane numbers.
    let aimd = &r.runs[2].0;
    assert!(
        aimd.thr_ratio > 0.3 && aimd.thr_ratio < 1.2,
        "{}",
        aimd.thr_ratio
    );
    let table = report::scorecard(&reports);
    assert!(
        table.contains("fixed:10") && table.contains("FAIL"),
        "{table}"
    );
    // Plots and the summary are written.
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = report::write_plots(&reports, dir.path()).unwrap();
    assert!(paths[0].exists() && dir.path().join("sata.svg").exists());
    let csv = report::write_series(&reports, dir.path()).unwrap();
    let text = std::fs::read_to_string(&csv[0]).unwrap();
    assert!(text.starts_with("controller,t_s,limit"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("fixed:10:8,") && l.contains(",10,")),
        "{}",
        &text[..300]
    );
    let s = report::summary(&reports, 1, vec!["x".into()], 0.0, true, true);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["scenarios"][0]["name"], "sata");
    assert_eq!(json["scenarios"][0]["segments"][0]["best"]["depth"], best);
}

#[test]
fn bad_run_specs_are_errors_not_panics() {
    let cfg = ControllerConfig::default();
    let mut s = spec("nvme", 0.0, 1);
    assert!(matches!(runner::run(&s, &cfg), Err(SimError::Config(_))));
    s.duration_s = f64::NAN;
    assert!(runner::run(&s, &cfg).is_err());
    s = spec("nvme", 0.1, 1);
    s.tick_ms = 0;
    assert!(runner::run(&s, &cfg).is_err());
    s = spec("nvme", 0.1, 1);
    if let DeviceSpec::Model(p) = &mut s.device {
        p.units = 0;
    }
    assert!(runner::run(&s, &cfg).is_err());
    // An invalid controller config is reported too.
    let s = spec("nvme", 0.1, 1);
    assert!(runner::run(
        &s,
        &ControllerConfig::Fixed {
            in_flight: 0,
            batch: 1
        }
    )
    .is_err());
}

#[test]
fn the_simulated_ring_measures_the_device_stalls_as_stalled_time() {
    // 20 device-wide stalls a second of 5 ms each: ≈ 10 % of the time
    // nothing completes (a little less where two overlap). The samples'
    // stalled time, from the rings' completion gaps, finds about that much;
    // the same device without stalls, nothing.
    let stalled_share = |rate_hz: f64| {
        let mut p = DeviceParams::preset("nvme").unwrap();
        p.stall_rate_hz = rate_hz;
        p.stall_ns = 5_000_000;
        let mut s = spec("nvme", 2.0, 7);
        s.device = DeviceSpec::Model(p);
        let r = runner::run(&s, &fixed(32)).unwrap();
        let ms: f64 = r.ticks.iter().map(|t| t.stalled_ms).sum();
        ms / 2000.0
    };
    let with = stalled_share(20.0);
    assert!((0.07..0.11).contains(&with), "stalled {with}");
    let without = stalled_share(0.0);
    assert!(without < 0.002, "stalled {without} without stalls");
}

#[test]
fn irregular_completions_are_not_mistaken_for_stalls() {
    // No stall at all, but a few ops in flight each taking a lognormal
    // time: gaps of several times their mean come and go while the device
    // works. With the gap threshold alone (3x the mean gap) these read as
    // 13 %, 6 % and 19 % stalled; no op completing for twice the median
    // latency is rare here (the latency floor of the threshold).
    for (units, median_ns, sigma, depth) in [
        (8u32, 400_000.0, 1.0, 8u32),
        (4, 400_000.0, 0.5, 4),
        (16, 1_000_000.0, 1.0, 16),
    ] {
        let mut p = DeviceParams::preset("nvme").unwrap();
        p.units = units;
        p.service_median_ns = median_ns;
        p.sigma = sigma;
        p.contention = 0.0;
        p.ns_per_kib = 0.0;
        let mut s = spec("nvme", 4.0, 7);
        s.device = DeviceSpec::Model(p);
        let r = runner::run(&s, &fixed(depth)).unwrap();
        let share = r.ticks.iter().map(|t| t.stalled_ms).sum::<f64>() / 4000.0;
        assert!(
            share < 0.005,
            "{units} units, sigma {sigma}, depth {depth}: stalled {share:.3}"
        );
    }
}
