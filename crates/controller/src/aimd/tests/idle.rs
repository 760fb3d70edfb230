//! Nothing to act on: empty windows, an app that does not use the limit,
//! a violation at the minimum.

use super::*;

#[test]
fn empty_windows_never_change_anything_but_timers() {
    let mut d = Driver::new(AimdConfig::default(), limits());
    d.until(AimdPhase::Probing, 20, knee64);
    let before = d.c.current();
    for i in 0..100 {
        let empty = Sample {
            now: Duration::from_millis(1000 + i * 10),
            interval: MS10,
            in_flight_peak: 5,
            backlog: 3,
            ..Sample::default()
        };
        assert_eq!(d.c.tick(&empty), before);
        assert_eq!(d.c.tick(&Sample::default()), before);
    }
}

#[test]
fn no_growth_when_the_app_does_not_use_the_limit() {
    let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 256, 32));
    // the app keeps at most 8 in flight (fewer if the limit is lower) and
    // never queues more than the limit leaves
    let app = |t, l: u32| {
        let n = l.min(8);
        win(t, 100 * u64::from(n), 100, n, u32::from(l < 8) * (8 - n))
    };
    let mut highest = 0;
    for _ in 0..1000 {
        highest = highest.max(d.step(app).in_flight_limit);
    }
    assert!(highest <= 40, "grew past one re-probe step: {highest}");
    let l = d.c.current().in_flight_limit;
    assert!(
        (8..=16).contains(&l),
        "a re-probe walks down toward what the app uses: {:?}",
        d.c.state()
    );
}

#[test]
fn at_the_minimum_a_violation_changes_nothing() {
    let mut d = Driver::new(AimdConfig::default(), Limits::new(4, 256, 4));
    let dev = |t, l| win(t, 100, 50_000, l, 10);
    for _ in 0..50 {
        assert_eq!(d.step(dev).in_flight_limit, 4);
    }
    assert!(d.c.state().reason.contains("minimum"), "{:?}", d.c.state());
}
