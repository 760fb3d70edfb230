//! PROBING: the baseline, the climb, descending to the knee on clean, soft,
//! flat, drifting and noisy devices, and the descent after a latency cut.

use super::*;

#[test]
fn baseline_holds_then_starts_a_climb_trial() {
    let mut d = Driver::new(AimdConfig::default(), limits());
    assert_eq!(d.c.phase(), AimdPhase::Baseline);
    for _ in 0..9 {
        assert_eq!(d.step(knee64).in_flight_limit, 4);
        assert_eq!(d.c.phase(), AimdPhase::Baseline);
    }
    assert!(d.c.baseline_p99_ns().is_none());
    let dec = d.step(knee64);
    assert_eq!(d.c.phase(), AimdPhase::Probing);
    assert_eq!(d.c.baseline_p99_ns(), Some(100_000));
    // The first trial's first leg runs at the current limit, then at
    // `first_climb_factor` (x4) times it.
    assert_eq!(dec.in_flight_limit, 4, "{:?}", d.c.state());
    assert!(d.c.state().reason.contains("4 vs 16"), "{:?}", d.c.state());
    d.step(knee64);
    assert_eq!(d.step(knee64).in_flight_limit, 16);
}

#[test]
fn low_iops_windows_accumulate() {
    // 5 completions per tick: a window needs 4 ticks (20 completions).
    let mut d = Driver::new(AimdConfig::default(), limits());
    let slow = |t, l| win(t, 5, 10_000, l, 10);
    for i in 0..39 {
        d.step(slow);
        assert_eq!(d.c.phase(), AimdPhase::Baseline, "tick {i}");
    }
    d.step(slow);
    assert_eq!(d.c.phase(), AimdPhase::Probing, "10 windows of 4 ticks");
}

#[test]
fn climbs_by_doubling_then_descends_to_the_knee_then_steady_and_converged() {
    let mut d = Driver::new(no_reprobe(), limits());
    let mut seen = vec![];
    d.until(AimdPhase::Probing, 20, knee64);
    for _ in 0..2000 {
        d.step(knee64);
        seen.push(d.c.current().in_flight_limit);
        if d.c.phase() != AimdPhase::Probing {
            break;
        }
    }
    assert_eq!(d.c.phase(), AimdPhase::Settling, "{:?}", d.c.state());
    // x4 from the start limit, then doubling while the gain holds.
    for l in [16, 32, 64, 128] {
        assert!(seen.contains(&l), "climb never tried {l}: {seen:?}");
    }
    assert!(!seen.contains(&8), "the first step is x4: {seen:?}");
    let knee = d.c.current().in_flight_limit;
    assert!((64..=80).contains(&knee), "knee {knee}: {:?}", d.c.state());
    assert!(
        d.c.state().reason.contains("lost throughput"),
        "{:?}",
        d.c.state()
    );
    // On a clean device each trial needs only its minimum pairs.
    assert!(seen.len() < 200, "{} ticks of probing", seen.len());
    for _ in 0..9 {
        d.step(knee64);
        assert_eq!(d.c.phase(), AimdPhase::Settling);
    }
    d.step(knee64);
    assert_eq!(d.c.phase(), AimdPhase::Steady, "{:?}", d.c.state());
    for _ in 0..499 {
        d.step(knee64);
        assert_eq!(d.c.phase(), AimdPhase::Steady);
        assert_eq!(d.c.current().in_flight_limit, knee);
    }
    d.step(knee64);
    assert_eq!(d.c.phase(), AimdPhase::Converged, "{:?}", d.c.state());
    assert_eq!(d.c.current().in_flight_limit, knee);
}

#[test]
fn a_soft_knee_settles_within_a_few_percent_of_the_best_throughput() {
    // x = x_max · l / (l + 8): 95 % of x_max needs 152, 90 % needs 72.
    // With epsilon 0.05 the limit lands where the elasticity k/(l+k) is
    // about 5 %: throughput within ~5-10 % of the best.
    let dev = |t, l| soft(t, l, 8.0, 100_000.0);
    let mut d = Driver::new(no_reprobe(), Limits::new(1, 1024, 16));
    d.until_settled(3000, dev);
    let l = d.c.current().in_flight_limit;
    let share = f64::from(l) / (f64::from(l) + 8.0);
    assert!(
        share >= 0.88,
        "limit {l} gives {share:.3} of the best: {:?}",
        d.c.state()
    );
    assert!(l <= 400, "limit {l} far past the knee: {:?}", d.c.state());
}

#[test]
fn a_flat_device_never_climbs_and_walks_down() {
    // Something else caps concurrency at 10: in-flight never follows the
    // limit, throughput is flat: the climb's first trial loses, and the
    // descent stops where it would cost throughput (never: down to 10-ish).
    let capped = |t, l: u32| win(t, 1000, 100, l.min(10), 50);
    let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, 40));
    d.until_settled(2000, capped);
    assert!(d.c.current().in_flight_limit < 40, "{:?}", d.c.state());
}

#[test]
fn probing_reaches_the_maximum_and_holds() {
    // A device that scales forever: limit stops at max, then steady.
    let lin = |t, l: u32| device(t, l, 10_000, 100);
    let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 40, 4));
    d.until_settled(1000, lin);
    assert_eq!(d.c.current().in_flight_limit, 40);
    assert!(d.c.state().reason.contains("top"), "{:?}", d.c.state());
    d.until(AimdPhase::Steady, 20, lin);
}

#[test]
fn from_above_the_knee_it_walks_down_to_it() {
    let knee8 = |t, l| device(t, l, 8, 100);
    let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, 64));
    let mut saw_descend = false;
    d.until(AimdPhase::Probing, 20, knee8);
    for _ in 0..2000 {
        d.step(knee8);
        saw_descend |= d.c.state().reason.contains("descend trial");
        if d.c.phase() != AimdPhase::Probing {
            break;
        }
    }
    assert!(saw_descend);
    let l = d.c.current().in_flight_limit;
    assert!((8..=10).contains(&l), "limit {l}: {:?}", d.c.state());
}

#[test]
fn drift_is_not_mistaken_for_gain() {
    // Throughput at any depth swings ±30 % in slow waves (a shared disk):
    // paired legs cancel it, and probing still lands near the knee.
    let wave = |t: u64, l: u32| {
        let f = 1.0 + 0.3 * ((t as f64) / 700.0).sin();
        let mut s = device(t, l, 32, 100);
        s.completions = (s.completions as f64 * f).round() as u64;
        s
    };
    for initial in [4, 100] {
        let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, initial));
        d.until_settled(3000, wave);
        let l = d.c.current().in_flight_limit;
        assert!(
            (28..=48).contains(&l),
            "from {initial}: limit {l}: {:?}",
            d.c.state()
        );
    }
}

#[test]
fn noisy_throughput_still_finds_the_knee() {
    for seed in 1..=4u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, 16));
        d.until_settled(5000, |t, l| {
            let clean = device(t, l, 64, 500);
            noisy(&mut rng, 0.5, clean, l)
        });
        let l = d.c.current().in_flight_limit;
        assert!(
            (48..=128).contains(&l),
            "seed {seed}: limit {l}: {:?}",
            d.c.state()
        );
    }
}

#[test]
fn a_wide_first_step_still_walks_down_to_a_knee_below_the_start() {
    // Knee 8 under a start of 16: the first trial (16 vs 64) shows no gain,
    // and probing descends from the start limit, never above it for long.
    let knee8 = |t, l| device(t, l, 8, 100);
    let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, 16));
    d.until(AimdPhase::Probing, 20, knee8);
    assert!(d.c.state().reason.contains("16 vs 64"), "{:?}", d.c.state());
    d.until_settled(2000, knee8);
    let l = d.c.current().in_flight_limit;
    assert!((8..=10).contains(&l), "limit {l}: {:?}", d.c.state());
}

#[test]
fn after_a_latency_cut_the_limit_descends_to_where_throughput_stops_growing() {
    // A device whose throughput grows up to 256 in flight: AIMD climbs to
    // the top. Then it turns into a knee-64 device with 3 ms ops: at 256
    // in flight an op takes 12 ms, over the 10 ms ceiling. The guard cuts
    // once (204: 9.6 ms); throughput is the same anywhere above 64, so
    // descend trials take the limit down toward the knee rather than
    // holding 204 (and its 9.6 ms) until a re-probe.
    let mut d = Driver::new(no_reprobe(), limits());
    d.until_settled(3000, |t, l| device(t, l, 256, 200));
    let top = d.c.current().in_flight_limit;
    assert!(top >= 200, "climbed to {top}: {:?}", d.c.state());
    let slow = |t, l| device(t, l, 64, 3000);
    let mut cuts = 0;
    for _ in 0..1000 {
        d.step(slow);
        cuts += u32::from(d.c.phase() == AimdPhase::Backoff);
    }
    assert!(cuts >= 1, "no cut: {:?}", d.c.state());
    let l = d.c.current().in_flight_limit;
    assert!((64..=100).contains(&l), "limit {l}: {:?}", d.c.state());
}
