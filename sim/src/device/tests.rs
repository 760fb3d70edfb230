//! Device tests: the presets against their calibration, stalls, steps and
//! reproducibility; `fixed_depth` is shared with other modules' tests.

use super::*;
use crate::sched::Ev;
use rand::SeedableRng;

/// Closed loop at a fixed depth straight on the device (no host costs):
/// every completion as (time, latency) in ns, for `secs` seconds.
fn closed_loop(p: &DeviceParams, depth: u32, secs: f64, seed: u64) -> Vec<(u64, u64)> {
    let mut dev = Device::new(&DeviceSpec::Model(p.clone()));
    let mut sched = Sched::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stall_rng = ChaCha8Rng::seed_from_u64(seed + 1);
    dev.start(&mut sched, &mut stall_rng);
    let mut start = vec![0u64; depth as usize];
    for i in 0..depth {
        let op = DevOp {
            id: u64::from(i),
            bytes: 4096,
            write: false,
            neighbour: false,
        };
        dev.submit(op, 0, &mut sched, &mut rng);
    }
    let end = (secs * 1e9) as u64;
    let mut done = Vec::new();
    while let Some(ev) = sched.pop_until(end) {
        match ev {
            Ev::DevDone(op) => {
                if let Some(op) = dev.on_done(op, &mut sched, &mut rng) {
                    let now = sched.now();
                    done.push((now, now - start[op.id as usize]));
                    start[op.id as usize] = now;
                    dev.submit(op, now, &mut sched, &mut rng);
                }
            }
            Ev::Stall => dev.on_stall(&mut sched, &mut stall_rng),
            _ => {}
        }
    }
    done
}

/// [`closed_loop`] summed up after a warm-up of the first fifth:
/// (IOPS, mean latency µs, P99 latency µs).
pub(crate) fn fixed_depth(p: &DeviceParams, depth: u32, secs: f64, seed: u64) -> (f64, f64, f64) {
    let end = (secs * 1e9) as u64;
    let warm = end / 5;
    let mut lats: Vec<u64> = closed_loop(p, depth, secs, seed)
        .into_iter()
        .filter(|&(t, _)| t >= warm)
        .map(|(_, l)| l)
        .collect();
    lats.sort_unstable();
    let n = lats.len().max(1);
    let iops = lats.len() as f64 / ((end - warm) as f64 * 1e-9);
    let mean = lats.iter().sum::<u64>() as f64 / n as f64 / 1e3;
    let p99 = lats.get(n * 99 / 100).copied().unwrap_or(0) as f64 / 1e3;
    (iops, mean, p99)
}

/// Coefficient of variation of the throughput over windows of `win_ms`
/// (completions per window, after 0.5 s of warm-up).
fn window_cv(done: &[(u64, u64)], win_ms: u64) -> f64 {
    let w = win_ms * 1_000_000;
    let first = 500_000_000 / w;
    let mut counts = std::collections::BTreeMap::<u64, f64>::new();
    for &(t, _) in done {
        if t / w >= first {
            *counts.entry(t / w).or_default() += 1.0;
        }
    }
    // The last window may be cut short by the end of the run.
    counts.pop_last();
    let n = counts.len() as f64;
    let mean = counts.values().sum::<f64>() / n;
    let var = counts
        .values()
        .map(|c| (c - mean) * (c - mean))
        .sum::<f64>()
        / (n - 1.0);
    var.sqrt() / mean
}

#[test]
fn virtio_busy_gains_slowly_up_to_128_and_not_beyond() {
    let mut p = DeviceParams::preset("virtio-busy").unwrap();
    p.drift.clear();
    let at = |d| fixed_depth(&p, d, 1.0, 7);
    let (x16, ..) = at(16);
    let (x64, _, p99_64) = at(64);
    let (x128, _, p99_128) = at(128);
    let (x192, ..) = at(192);
    assert!((65e3..80e3).contains(&x16), "QD16 {x16}");
    assert!((88e3..100e3).contains(&x128), "QD128 {x128}");
    let gain = x128 / x64 - 1.0;
    assert!((0.04..0.12).contains(&gain), "64 -> 128 gains {gain:.3}");
    assert!(x192 < x128 * 1.02, "192 {x192} vs 128 {x128}");
    assert!(p99_128 > 1.5 * p99_64, "P99 {p99_128} vs {p99_64} µs");
}

#[test]
fn virtio_stalls_puts_the_p99_in_the_stalls_tail_from_depth_64() {
    // The disk: a tight body (P99 ≈ 0.5 ms at QD 32), and from QD 64 on
    // the stalls catch more than 1 % of the reads (P99 2-5 ms).
    let p = DeviceParams::preset("virtio-stalls").unwrap();
    let (x32, _, p99_32) = fixed_depth(&p, 32, 4.0, 7);
    let (x64, _, p99_64) = fixed_depth(&p, 64, 4.0, 7);
    let (x128, _, p99_128) = fixed_depth(&p, 128, 4.0, 7);
    assert!(p99_32 < 1_000.0, "QD32 P99 {p99_32} µs");
    assert!(p99_64 > 3_000.0, "QD64 P99 {p99_64} µs");
    assert!(p99_128 > p99_64, "P99 {p99_128} vs {p99_64} µs");
    assert!(x32 < x64, "{x32} vs {x64}");
    let gain = x128 / x64 - 1.0;
    assert!((0.03..0.15).contains(&gain), "64 -> 128 gains {gain:.3}");
    let cv = window_cv(&closed_loop(&p, 96, 4.5, 3), 20);
    assert!((0.08..0.15).contains(&cv), "CV over 20 ms: {cv:.3}");
}

#[test]
fn virtio_noisy_wanders_like_the_disk_it_models() {
    // Measured on this machine's disk (docs/simulator.md): CV 0.11 over
    // 20 ms, 0.08 over 50 ms, 0.07 over 100 ms, 0.05 over 0.5 s.
    let noisy = DeviceParams::preset("virtio-noisy").unwrap();
    let done = closed_loop(&noisy, 96, 8.5, 3);
    for (win, lo, hi) in [(20, 0.08, 0.14), (50, 0.05, 0.11), (500, 0.025, 0.08)] {
        let cv = window_cv(&done, win);
        assert!((lo..hi).contains(&cv), "CV over {win} ms: {cv:.3}");
    }
    // Without the drift the same disk is far steadier.
    let calm = DeviceParams::preset("virtio").unwrap();
    let cv = window_cv(&closed_loop(&calm, 96, 2.5, 3), 20);
    assert!(cv < 0.05, "stationary virtio, 20 ms CV {cv:.3}");
    // A drift needs a positive correlation time.
    let mut bad = noisy.clone();
    bad.drift[0].tau_ms = 0.0;
    assert!(bad.validate().is_err());
}

#[test]
fn nvme_preset_matches_its_description() {
    let p = DeviceParams::preset("nvme").unwrap();
    let (iops1, mean1, _) = fixed_depth(&p, 1, 0.05, 7);
    assert!((80.0..100.0).contains(&mean1), "QD1 mean {mean1} µs");
    assert!((10_000.0..12_500.0).contains(&iops1), "QD1 {iops1} IOPS");
    let (iops72, ..) = fixed_depth(&p, 72, 0.02, 7);
    let (iops144, mean144, _) = fixed_depth(&p, 144, 0.02, 7);
    assert!((720_000.0..880_000.0).contains(&iops72), "QD72 {iops72}");
    // Past the knee: no more throughput, only queueing.
    assert!(iops144 < iops72 * 1.03, "{iops144} vs {iops72}");
    assert!(mean144 > 1.8 * mean1, "{mean144} vs {mean1}");
}

#[test]
fn sata_hdd_optane_shapes() {
    let sata = DeviceParams::preset("sata-ssd").unwrap();
    let (s10, ..) = fixed_depth(&sata, 10, 0.05, 3);
    let (s32, ..) = fixed_depth(&sata, 32, 0.05, 3);
    assert!(s32 < s10 * 1.1, "sata saturates at c=10: {s10} {s32}");
    let hdd = DeviceParams::preset("hdd").unwrap();
    let (h1, m1, _) = fixed_depth(&hdd, 1, 5.0, 3);
    let (h32, ..) = fixed_depth(&hdd, 32, 10.0, 3);
    assert!((7_000.0..13_000.0).contains(&m1), "hdd QD1 {m1} µs");
    assert!(h32 > 1.8 * h1, "reordering gain: {h1} → {h32}");
    let opt = DeviceParams::preset("optane").unwrap();
    let (o1, om1, _) = fixed_depth(&opt, 1, 0.01, 3);
    let (o8, ..) = fixed_depth(&opt, 8, 0.01, 3);
    let (o16, ..) = fixed_depth(&opt, 16, 0.01, 3);
    assert!((8.0..12.0).contains(&om1), "optane QD1 {om1} µs");
    assert!(
        o8 > 7.0 * o1 && o16 < o8 * 1.05,
        "knee at 8: {o1} {o8} {o16}"
    );
}

#[test]
fn stalls_and_steps_change_latency() {
    let mut p = DeviceParams::preset("optane").unwrap();
    let (iops, base, _) = fixed_depth(&p, 4, 0.2, 3);
    // Stalled 10 % of the time: ≈10 % fewer IOPS, longer latencies.
    p.stall_rate_hz = 100.0;
    p.stall_ns = 1_000_000;
    let (iops_s, stalled, _) = fixed_depth(&p, 4, 0.2, 3);
    assert!(
        iops_s < iops * 0.95 && iops_s > iops * 0.8,
        "{iops} → {iops_s}"
    );
    assert!(stalled > base * 1.05, "{base} → {stalled}");
    // Op stalls: 5 % of ops take 1 ms more, so the P99 is over 1 ms.
    p.stall_rate_hz = 0.0;
    p.op_stall_prob = 0.05;
    p.op_stall_ns = 1_000_000;
    let (_, _, p99) = fixed_depth(&p, 4, 0.2, 3);
    assert!(p99 > 1000.0, "op stalls show in the tail: {p99} µs");
    assert!(p.validate().is_ok());
    p.units = 0;
    assert!(p.validate().is_err());
    let mut q = DeviceParams::preset("nvme").unwrap();
    q.sigma = f64::NAN;
    assert!(q.validate().is_err());
    assert!(DeviceParams::preset("floppy").is_none());
    for name in DeviceParams::PRESETS {
        let p = DeviceParams::preset(name).unwrap();
        assert!(p.validate().is_ok(), "{name}");
        assert!(p.nominal_peak_iops() > 0.0, "{name}");
    }
}

#[test]
fn same_seed_same_device_run() {
    let p = DeviceParams::preset("virtio").unwrap();
    assert_eq!(fixed_depth(&p, 16, 0.02, 9), fixed_depth(&p, 16, 0.02, 9));
    assert_ne!(fixed_depth(&p, 16, 0.02, 9), fixed_depth(&p, 16, 0.02, 10));
}
