//! The legs: their A B B A … order, their stalled time, their length on a
//! slow device.

use super::*;

#[test]
fn legs_alternate_abba_from_the_current_limit() {
    let mut t = Trial::new(10, 20, false, rules());
    let mut seen = Vec::new();
    for _ in 0..16 {
        seen.push(t.limit());
        t.feed(100, 0.01);
    }
    assert_eq!(
        seen,
        [10, 10, 20, 20, 20, 20, 10, 10, 10, 10, 20, 20, 20, 20, 10, 10]
    );
    let mut t = Trial::new(10, 20, true, rules());
    assert_eq!(t.limit(), 20);
    t.feed(100, 0.01);
    t.feed(100, 0.01);
    assert_eq!(t.limit(), 10);
}

/// Runs one trial 64 vs 128 on a device whose throughput at 128 is
/// `gain` times that at 64, and that stops for 3-6 ms at random (12 times
/// a second, whatever the limit; every op waits). With `report` the
/// ticks carry their stalled time. Returns the verdict, the pairs it
/// took and the mean elasticity.
fn stalling_trial(gain: f64, report: bool, seed: u64) -> (Verdict, u32, f64) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut u = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut t = Trial::new(64, 128, false, rules());
    for _ in 0..10_000 {
        let rate = if t.limit() == 128 {
            100.0 * gain
        } else {
            100.0
        };
        // A stall starts in this 10 ms tick with probability 0.12.
        let stalled = if u() < 0.12 { 0.003 + 0.003 * u() } else { 0.0 };
        let c = (rate * (10.0 - stalled * 1e3) * (0.97 + 0.06 * u())) as u64;
        let s = if report { stalled } else { 0.0 };
        t.feed_stalled(c, 0.01, s);
        if let Some(v) = t.verdict() {
            let e = t.elasticity().map_or(0.0, |(e, _)| e);
            return (v, t.pairs(), e);
        }
    }
    panic!("no verdict: {}", t.describe());
}

#[test]
fn legs_without_the_device_stalls_decide_sooner_and_no_less_rightly() {
    // A flat device (lo holds) and one gaining 10 % per doubling
    // (elasticity 0.14: hi wins), 40 seeds each, with and without the
    // stalled time reported.
    let mut pairs = [0u32; 2];
    let mut right = [0u32; 2];
    let mut flat_e = [0.0f64; 2];
    for (i, report) in [false, true].into_iter().enumerate() {
        for seed in 1..=40 {
            let (v, n, e) = stalling_trial(1.0, report, seed);
            pairs[i] += n;
            right[i] += u32::from(v == Verdict::LoHolds);
            flat_e[i] += e / 40.0;
            let (v, n, _) = stalling_trial(1.1, report, seed);
            pairs[i] += n;
            right[i] += u32::from(v == Verdict::HiWins);
        }
    }
    assert!(
        pairs[1] * 4 < pairs[0] * 3,
        "pairs without stalls reported {} vs reported {}",
        pairs[0],
        pairs[1]
    );
    assert!(right[1] >= right[0], "right verdicts {right:?}");
    assert!(right[1] >= 76, "right verdicts {right:?} of 80");
    // Leaving the stalls out does not bias a flat device's elasticity.
    assert!(flat_e[1].abs() < 0.03, "mean elasticity {flat_e:?}");
}

#[test]
fn a_leg_never_counts_more_than_half_its_time_as_stalled() {
    let mut t = Trial::new(10, 20, false, rules());
    // Leg at 10: 2 ticks of 100 completions, "stalled" for 3x the time.
    t.feed_stalled(100, 0.01, 0.03);
    t.feed_stalled(100, 0.01, 0.03);
    // Leg at 20: the same completions, no stall.
    t.feed_stalled(100, 0.01, 0.0);
    t.feed_stalled(100, 0.01, 0.0);
    let (e, _) = t.elasticity().expect("one pair");
    // lo's rate is at most doubled: ln(1/2) / ln 2 = -1.
    assert!((e + 1.0).abs() < 0.01, "{e}");
}

#[test]
fn low_rate_legs_wait_for_completions() {
    let mut t = Trial::new(1, 2, false, rules());
    // 5 completions per tick: a leg needs 10 ticks for 50.
    for i in 0..9 {
        assert!(!t.feed(5, 0.01), "tick {i}");
    }
    assert!(t.feed(5, 0.01));
    // A nearly empty device still ends a leg after 16 x leg_ticks
    // ticks, but only on a tick with a completion.
    let mut t = Trial::new(1, 2, false, rules());
    for _ in 0..40 {
        assert!(!t.feed(0, 0.01));
    }
    assert!(t.feed(1, 0.01));
}
