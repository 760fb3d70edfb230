//! [`AimdConfig`]: defaults, validation, runtime setters and batch sizing.

use super::*;

#[test]
fn defaults_are_the_spec() {
    let c = AimdConfig::default();
    assert_eq!(c.tick_ms, 10);
    assert_eq!(c.baseline_ticks, 10);
    assert_eq!(c.additive_increase, 1);
    assert_eq!(c.first_climb_factor, 4.0);
    assert_eq!(c.climb_factor, 2.0);
    assert_eq!(c.descend_factor, 0.8);
    assert_eq!(c.gain_epsilon, 0.05);
    assert_eq!(c.backoff_factor, 0.8);
    assert_eq!(c.latency_guard_mult, 10.0);
    assert_eq!(c.p99_ceiling_us, 10_000);
    assert_eq!(c.settle_ms, 100);
    assert_eq!(c.converge_ms, 5_000);
    assert_eq!(c.min_window_completions, 20);
    assert_eq!(c.target_sqes_per_enter, 8);
    assert!(c.validate().is_ok());
    let j = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<AimdConfig>(&j).unwrap(), c);
    // The latency bar's old name still reads.
    let old: AimdConfig = serde_json::from_str(r#"{"change_p99":0.5}"#).unwrap();
    assert_eq!(old.change_latency, 0.5);
}

#[test]
fn bad_config_is_reported_and_sanitized() {
    let bad = AimdConfig {
        backoff_factor: f64::NAN,
        climb_factor: 0.5,
        additive_increase: 0,
        ..AimdConfig::default()
    };
    let e = bad.validate().unwrap_err();
    assert!(e.contains("additive_increase"), "{e}");
    let a = Aimd::new(bad, limits());
    assert_eq!(a.config().backoff_factor, 0.8);
    assert_eq!(a.config().climb_factor, 2.0);
    assert_eq!(a.config().additive_increase, 1);
    let e = AimdConfig {
        gain_epsilon: 1.5,
        ..AimdConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.contains("gain_epsilon"), "{e}");
}

#[test]
fn runtime_setters() {
    let mut d = Driver::new(no_reprobe(), limits());
    d.until_settled(2000, knee64);
    d.until(AimdPhase::Steady, 20, knee64);
    d.c.set_limits(Limits::new(2, 20, 4));
    assert_eq!(d.c.current().in_flight_limit, 20);
    d.c.set_limits(Limits::new(30, 40, 30));
    assert_eq!(d.c.current().in_flight_limit, 30);
    d.c.set_limits(Limits::new(1, 256, 4));
    d.c.set_p99_ceiling(Duration::from_micros(50));
    assert_eq!(d.c.latency_threshold_ns(), 50_000);
    d.step(knee64);
    assert_eq!(d.c.phase(), AimdPhase::Backoff);
    assert_eq!(d.c.current().in_flight_limit, 24);
    // Limits changed in the middle of a trial end the trial.
    let mut d = Driver::new(no_reprobe(), limits());
    d.until(AimdPhase::Probing, 20, knee64);
    d.c.set_limits(Limits::new(1, 6, 4));
    assert_eq!(d.c.phase(), AimdPhase::Settling);
    for _ in 0..100 {
        assert!(d.step(knee64).in_flight_limit <= 6);
    }
}

#[test]
fn batch_aims_at_eight_sqes_per_enter_within_a_quarter_of_the_limit() {
    let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 256, 64));
    assert_eq!(d.c.current().batch_threshold, 8);
    // only 2 SQEs per enter: the threshold grows (up to limit/4 = 16)
    let sparse = |t, l: u32| {
        let mut s = knee64(t, l);
        s.enter_calls = s.completions / 2;
        s
    };
    for _ in 0..9 {
        d.step(sparse);
    }
    let b = d.c.current();
    assert_eq!(b.in_flight_limit, 64, "still in baseline");
    assert_eq!(b.batch_threshold, 16, "{b:?}");
    // 32 per enter: it shrinks
    let dense = |t, l: u32| {
        let mut s = knee64(t, l);
        s.enter_calls = s.completions / 32;
        s
    };
    for _ in 0..40 {
        d.step(dense);
    }
    assert_eq!(d.c.current().batch_threshold, 1);
    let small = Aimd::new(AimdConfig::default(), Limits::new(1, 256, 2));
    assert_eq!(small.current().batch_threshold, 1);
}
