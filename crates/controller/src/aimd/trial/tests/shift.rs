//! Level shifts: a device that changes during a trial, or between two
//! trials, voids it; noise never does.

use super::*;

/// Feeds `pairs` pairs at `lo_rate`/`hi_rate` completions per tick,
/// times a ±`spread` uniform noise from `rng` per tick.
fn feed_pairs(t: &mut Trial, pairs: u32, lo_rate: f64, hi_rate: f64, spread: f64, rng: &mut u64) {
    let target = t.pairs() + pairs;
    while t.pairs() < target {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let u = (*rng >> 11) as f64 / (1u64 << 53) as f64;
        let base = if t.limit() == t.hi { hi_rate } else { lo_rate };
        t.feed((base * (1.0 - spread + 2.0 * spread * u)) as u64, 0.01);
    }
}

#[test]
fn a_device_that_halves_mid_trial_voids_it_and_noise_never_does() {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut t = Trial::new(64, 80, false, rules());
    feed_pairs(&mut t, 5, 1000.0, 1010.0, 0.0, &mut rng);
    assert!(!t.shifted());
    feed_pairs(&mut t, 1, 500.0, 505.0, 0.0, &mut rng);
    assert!(!t.shifted(), "one pair is not a shift (a stall)");
    feed_pairs(&mut t, 1, 500.0, 505.0, 0.0, &mut rng);
    assert!(t.shifted(), "{}", t.describe());
    // Up as well as down.
    let mut t = Trial::new(64, 80, false, rules());
    feed_pairs(&mut t, 4, 1000.0, 1000.0, 0.0, &mut rng);
    feed_pairs(&mut t, 2, 1700.0, 1700.0, 0.0, &mut rng);
    assert!(t.shifted());
    // ±20 % per tick (more than this machine's disk) over 40 pairs, 100
    // seeds: never a shift.
    for seed in 1..=100u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut t = Trial::new(64, 128, false, rules());
        for _ in 0..40 {
            feed_pairs(&mut t, 1, 1000.0, 1040.0, 0.2, &mut rng);
            assert!(!t.shifted(), "seed {seed}: {}", t.describe());
        }
    }
}

#[test]
fn a_level_carried_from_the_previous_trial_shows_a_change_between_trials() {
    let mut rng = 7u64;
    let mut before = Trial::new(60, 76, true, rules());
    feed_pairs(&mut before, 3, 1000.0, 1000.0, 0.0, &mut rng);
    let level = before.recent_level(76).expect("legs ran at 76");
    // Two ticks of 1000 completions per leg: (2000 + 0.5) / 0.02 s.
    assert!((level - (2000.5f64 / 0.02).ln()).abs() < 1e-6, "{level}");
    assert_eq!(before.recent_level(50), None);
    // The next trial shares 76; the device is now half as fast.
    let mut t = Trial::new(68, 76, true, rules());
    t.carry_level(76, level);
    feed_pairs(&mut t, 1, 500.0, 500.0, 0.0, &mut rng);
    assert!(!t.shifted(), "one leg at 76 so far");
    feed_pairs(&mut t, 1, 500.0, 500.0, 0.0, &mut rng);
    assert!(t.shifted(), "{}", t.describe());
    // The same device: no shift, however long the trial runs.
    let mut t = Trial::new(68, 76, true, rules());
    t.carry_level(76, level);
    for _ in 0..20 {
        feed_pairs(&mut t, 1, 990.0, 1000.0, 0.2, &mut rng);
        assert!(!t.shifted(), "{}", t.describe());
    }
    // A limit the trial does not run carries nothing.
    let mut t = Trial::new(68, 85, true, rules());
    t.carry_level(76, level);
    feed_pairs(&mut t, 3, 100.0, 100.0, 0.0, &mut rng);
    assert!(!t.shifted());
}
