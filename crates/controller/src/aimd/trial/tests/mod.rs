//! Unit tests of [`Trial`]: the test rules and the verdict tests here;
//! the legs and the level shifts by concept below.

mod legs;
mod shift;

use super::*;

fn rules() -> TrialRules {
    TrialRules {
        leg_ticks: 2,
        leg_completions: 50,
        min_pairs: 3,
        max_pairs: 12,
        z: 1.5,
        epsilon: 0.05,
        early_floor: 0.05,
    }
}

/// Runs a trial against `rate(limit, tick)` (completions per 10 ms tick).
fn run(t: &mut Trial, rate: impl Fn(u32, u32) -> u64) -> (Verdict, u32) {
    for tick in 0..10_000 {
        let l = t.limit();
        t.feed(rate(l, tick), 0.01);
        if let Some(v) = t.verdict() {
            return (v, tick + 1);
        }
    }
    panic!("no verdict: {}", t.describe());
}

#[test]
fn a_scaling_device_makes_hi_win_quickly_and_a_flat_one_makes_lo_hold() {
    let mut t = Trial::new(16, 32, false, rules());
    let (v, ticks) = run(&mut t, |l, _| u64::from(l) * 10);
    assert_eq!(v, Verdict::HiWins);
    assert!(ticks <= 12, "3 pairs of 2-tick legs: {ticks}");
    let (e, _) = t.elasticity().unwrap();
    assert!((e - 1.0).abs() < 0.01, "{e}");
    let mut t = Trial::new(64, 128, false, rules());
    assert_eq!(run(&mut t, |_, _| 1000).0, Verdict::LoHolds);
}

#[test]
fn a_strong_drift_does_not_fool_the_pairs() {
    // Throughput doubles over the trial whatever the limit: sequential
    // windows would read a big gain; the pairs read (almost) none.
    let mut t = Trial::new(64, 128, false, rules());
    let (v, _) = run(&mut t, |_, tick| 1000 + 20 * u64::from(tick));
    assert_eq!(v, Verdict::LoHolds, "{}", t.describe());
    let (e, _) = t.elasticity().unwrap();
    assert!(e.abs() < 0.05, "{e}");
}

/// Feeds `t` ticks of 1000 completions at `lo` and `1000 × gain` at
/// `hi`, each times a uniform ±20 % noise drawn from `seed`, until it
/// has a verdict (at most 1000 ticks).
fn run_noisy(t: &mut Trial, gain: f64, seed: u64) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..1000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let u = (rng >> 11) as f64 / (1u64 << 53) as f64;
        let base = if t.limit() == t.hi {
            1000.0 * gain
        } else {
            1000.0
        };
        t.feed((base * (0.8 + 0.4 * u)) as u64, 0.01);
        if t.outcome().is_some() {
            return;
        }
    }
}

#[test]
fn noise_makes_the_trial_longer_and_the_mean_decides_at_the_end() {
    // A gain of 4 % per doubling (elasticity 0.057, just above the
    // threshold) under ±20 % tick noise: over many seeds the trials
    // run longer than the minimum and mostly decide for hi.
    let (mut long, mut hi_wins) = (0, 0);
    for seed in 1..=40u64 {
        let mut t = Trial::new(64, 128, false, rules());
        run_noisy(&mut t, 1.04, seed);
        let v = t.verdict().expect("max_pairs forces a verdict");
        long += u32::from(t.pairs() > 3);
        hi_wins += u32::from(v == Verdict::HiWins);
    }
    assert!(
        long >= 30,
        "only {long}/40 trials went past the minimum pairs"
    );
    assert!(hi_wins >= 20, "hi won only {hi_wins}/40");
}

#[test]
fn a_verdict_says_whether_the_pairs_showed_it_or_the_mean_guessed_it() {
    // 64 -> 128 under ±20 % tick noise: a 40 % gain is clear within
    // a few pairs; a 4 % gain (elasticity 0.057, just above epsilon)
    // cannot be told from the threshold, and the mean decides at
    // max_pairs, saying so.
    let outcome = |gain: f64, seed: u64| {
        let mut t = Trial::new(64, 128, false, rules());
        run_noisy(&mut t, gain, seed);
        let o = t.outcome().expect("max_pairs forces a verdict");
        (o, t.pairs())
    };
    for seed in 1..=10 {
        let ((v, how), pairs) = outcome(1.4, seed);
        assert_eq!((v, how), (Verdict::HiWins, Evidence::Clear), "seed {seed}");
        assert!(pairs < rules().max_pairs, "seed {seed}: {pairs} pairs");
    }
    let guessed = (1..=10)
        .filter(|&seed| {
            let ((_, how), pairs) = outcome(1.04, seed);
            how == Evidence::OnAverage && pairs == rules().max_pairs
        })
        .count();
    assert!(guessed >= 7, "only {guessed}/10 ran out of pairs");
}

#[test]
fn an_eager_trial_takes_a_plain_gain_without_resolving_it_against_epsilon() {
    // 64 -> 128 gains 9 % (elasticity 0.12: above epsilon 0.05, but
    // by less than ±10 % leg noise resolves in a few pairs). Over 40
    // seeds an eager trial decides for hi in far fewer pairs; a flat
    // device rarely gives an eager trial an early win for hi (the test
    // against 0 is as strict as the careful one against epsilon).
    let noise = |seed: u64| {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            0.9 + 0.2 * ((rng >> 11) as f64 / (1u64 << 53) as f64)
        }
    };
    let pairs_to_verdict = |eager: bool, gain: f64, seed: u64| {
        let mut t = Trial::new(64, 128, false, rules());
        if eager {
            t.make_eager();
            assert!(t.is_eager());
        }
        let mut u = noise(seed);
        for _ in 0..1000 {
            let base = if t.limit() == 128 {
                1000.0 * gain
            } else {
                1000.0
            };
            t.feed((base * u()) as u64, 0.01);
            if let Some(v) = t.verdict() {
                return (v, t.pairs());
            }
        }
        panic!("no verdict");
    };
    let (mut eager_pairs, mut careful_pairs, mut eager_wins) = (0, 0, 0);
    let mut flat_early = 0;
    for seed in 1..=40 {
        let (v, n) = pairs_to_verdict(true, 1.09, seed);
        eager_pairs += n;
        eager_wins += u32::from(v == Verdict::HiWins);
        careful_pairs += pairs_to_verdict(false, 1.09, seed).1;
        let (v, n) = pairs_to_verdict(true, 1.0, seed);
        flat_early += u32::from(v == Verdict::HiWins && n < rules().max_pairs);
    }
    assert!(
        flat_early <= 3,
        "{flat_early}/40 early wins on a flat device"
    );
    assert!(eager_wins >= 36, "hi won only {eager_wins}/40");
    assert!(
        eager_pairs * 3 < careful_pairs * 2,
        "eager {eager_pairs} vs careful {careful_pairs} pairs"
    );
}
