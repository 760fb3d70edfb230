//! The latency guard: the ceiling, the baseline guard, recovery after a
//! spike, and the stall-tail rule (a device stall's tail is not queueing).

use super::*;
use crate::aimd::guard::is_stall_tail;
use crate::histogram::HistogramSnapshot;

#[test]
fn ceiling_violation_backs_off_at_once_holds_then_never_settles_above_it() {
    let cfg = AimdConfig {
        p99_ceiling_us: 1_000,
        ..AimdConfig::default()
    };
    let mut d = Driver::new(cfg, Limits::new(1, 256, 50));
    // Scales forever, but latency grows with depth: 20 µs per op in
    // flight, so 1 ms at 50: every limit >= 50 violates the ceiling.
    let dev = |t, l: u32| win(t, 40 * u64::from(l), 20 * u64::from(l) + 1, l, 100);
    d.step(dev); // 1001 µs > 1000 µs: violation on the very first tick
    assert_eq!(d.c.phase(), AimdPhase::Backoff);
    assert_eq!(d.c.current().in_flight_limit, 40);
    assert_eq!(d.c.cap(), Some(40));
    assert!(d.c.state().reason.contains("ceiling"), "{:?}", d.c.state());
    d.step(dev);
    assert_eq!(d.c.phase(), AimdPhase::Settling);
    // No baseline yet: warm up again after settling, then probe; the cap
    // (2 s) keeps every probe at or below 40.
    d.until(AimdPhase::Baseline, 20, dev);
    let t0 = d.t;
    while d.t < t0 + 1_500 {
        d.step(dev);
        assert!(d.c.current().in_flight_limit <= 40, "{:?}", d.c.state());
    }
    // Later re-probes try above it and are cut back: one cut per re-probe
    // (not a burst), and the controller never settles at a violating limit.
    let (mut cuts, mut was_backoff) = (0, false);
    while d.t < t0 + 15_000 {
        d.step(dev);
        let backoff = d.c.phase() == AimdPhase::Backoff;
        cuts += u32::from(backoff && !was_backoff);
        was_backoff = backoff;
        if matches!(d.c.phase(), AimdPhase::Steady | AimdPhase::Converged) {
            assert!(d.c.current().in_flight_limit < 50, "{:?}", d.c.state());
        }
    }
    assert!(cuts <= 8, "{cuts} cuts in 13.5 s: a burst after a re-probe");
}

#[test]
fn the_limit_recovers_its_pre_spike_level_after_a_latency_spike() {
    // Issue 7: inject a sustained latency spike (every op 20 ms: above the
    // 10 ms ceiling) for 1 s, then the device is back to normal. The
    // guard cuts during the spike; the cap expires `cap_ms` after the last
    // violation and a re-probe climbs back to the knee.
    let cfg = AimdConfig {
        cap_ms: 1_000,
        reprobe_ms: 500,
        ..AimdConfig::default()
    };
    let mut d = Driver::new(cfg, Limits::new(1, 256, 16));
    d.until_settled(2000, knee64);
    d.until(AimdPhase::Steady, 20, knee64);
    let before = d.c.current().in_flight_limit;
    assert!(before >= 64, "{:?}", d.c.state());
    let t0 = d.t;
    let spike = |t: u64, l: u32| {
        if t < t0 + 1000 {
            win(t, 200, 20_000, l, 100)
        } else {
            knee64(t, l)
        }
    };
    let (mut lowest, mut cut) = (before, false);
    while d.t < t0 + 1000 {
        d.step(spike);
        lowest = lowest.min(d.c.current().in_flight_limit);
        cut |= d.c.phase() == AimdPhase::Backoff;
    }
    // The spike's latency does not follow depth: one cut, then hold (see
    // latency_that_does_not_follow_depth_is_cut_once).
    assert!(cut, "the spike must cut: {:?}", d.c.state());
    assert!(lowest >= before / 2, "collapsed to {lowest}");
    // Within 8 s of the spike's end the limit is back near the knee.
    let mut back = None;
    while d.t < t0 + 9000 {
        d.step(spike);
        if d.c.current().in_flight_limit >= before * 9 / 10
            && matches!(d.c.phase(), AimdPhase::Steady | AimdPhase::Converged)
        {
            back = Some(d.t - t0);
            break;
        }
    }
    assert!(
        back.is_some(),
        "never recovered from {lowest} to {before}: {:?}",
        d.c.state()
    );
}

#[test]
fn latency_that_does_not_follow_depth_is_cut_once() {
    // Every op takes 20 ms at any depth (a slow device, a starved CPU):
    // above the 10 ms ceiling, but cutting cannot help. One cut, then
    // hold; never the collapse to the minimum that cutting on every
    // window of evidence gave (seen on the real disk under CPU load).
    let mut d = Driver::new(no_reprobe(), Limits::new(1, 256, 64));
    let slow = |t, l| win(t, 300, 20_000, l, 100);
    let mut cuts = 0;
    for _ in 0..500 {
        d.step(slow);
        cuts += u32::from(d.c.phase() == AimdPhase::Backoff);
    }
    assert_eq!(cuts, 1, "{:?}", d.c.state());
    // After the one cut (64 -> 51) descend trials may go lower where the
    // throughput holds (this device's is the same at any depth), but
    // never by cuts and never to the minimum.
    let l = d.c.current().in_flight_limit;
    assert!((2..=51).contains(&l), "limit {l}: {:?}", d.c.state());
    assert!(
        d.c.state().reason.contains("did not fall"),
        "{:?}",
        d.c.state()
    );
    // Latency that does follow depth is cut until it fits (the binding
    // ceiling test): 20 µs per op in flight, 1 ms ceiling.
    let cfg = AimdConfig {
        p99_ceiling_us: 1_000,
        reprobe_ms: 0,
        ..AimdConfig::default()
    };
    let mut d = Driver::new(cfg, Limits::new(1, 256, 100));
    let dev = |t, l: u32| win(t, 40 * u64::from(l), 20 * u64::from(l) + 1, l, 100);
    for _ in 0..500 {
        d.step(dev);
    }
    assert!(d.c.current().in_flight_limit < 50, "{:?}", d.c.state());
}

#[test]
fn the_latency_guard_scales_with_depth_over_the_baseline() {
    let mut d = Driver::new(no_reprobe(), limits());
    d.until(AimdPhase::Probing, 20, knee64);
    assert_eq!(d.c.baseline_p99_ns(), Some(100_000));
    // The first trial is 4 vs 16: its ops are judged by the higher limit,
    // 10 x 100 µs x 16/4.
    assert_eq!(d.c.current().in_flight_limit, 4);
    assert_eq!(d.c.latency_threshold_ns(), 4_000_000);
    let before = d.c.current().in_flight_limit;
    d.step(|t, l| win(t, 500, 4_001, l, 10));
    assert_eq!(d.c.phase(), AimdPhase::Backoff);
    assert!(d.c.current().in_flight_limit < before);
    assert!(
        d.c.state().reason.contains("baseline guard"),
        "{:?}",
        d.c.state()
    );
    // Settled at 64 (16 x the baseline's limit): the guard allows 16 x
    // as much (Little's law), but never more than the ceiling (10 ms).
    let mut d = Driver::new(no_reprobe(), limits());
    d.until_settled(2000, knee64);
    d.until(AimdPhase::Steady, 20, knee64);
    let l = d.c.current().in_flight_limit;
    let expect = (1_000_000 * u64::from(l) / 4).min(10_000_000);
    assert!(
        d.c.latency_threshold_ns().abs_diff(expect) <= 1,
        "{} vs {expect} at {l}",
        d.c.latency_threshold_ns()
    );
}

#[test]
fn one_stalled_tick_is_not_congestion_but_a_sustained_rise_is() {
    let mut d = Driver::new(no_reprobe(), limits());
    d.until_settled(2000, knee64);
    d.until(AimdPhase::Steady, 20, knee64);
    let l = d.c.current().in_flight_limit;
    for _ in 0..30 {
        d.step(knee64);
    }
    // One tick where 1.5 % of the ops took 3 ms (a device stall): that
    // tick's own P99 is 3 ms > 10 x 100 µs, the guard window's is not.
    let stalled = |t, l: u32| {
        let mut s = knee64(t, l);
        let n = s.completions;
        s.latency = HistogramSnapshot::default();
        s.latency.record_n(100_000, n - n * 3 / 200);
        s.latency.record_n(3_000_000, n * 3 / 200);
        s
    };
    assert!(stalled(0, l).latency.p99_ns() > 1_000_000);
    d.step(stalled);
    assert_ne!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
    assert!(d.c.current().in_flight_limit >= l);
    // Every op far slower from now on: backoff on the first such tick.
    let t = d.c.latency_threshold_ns() / 1000 + 1;
    d.step(|tt, l| win(tt, 6000, t, l, 100));
    assert_eq!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
}

/// A knee-16 device with 1 ms service time: settled near 16-20, its P50
/// is 1-1.25 ms, over the guard's body bound (ceiling / 10).
fn knee16(now_ms: u64, l: u32) -> Sample {
    device(now_ms, l, 16, 1000)
}

/// Settles on [`knee16`] into STEADY, then runs one tick of `pause` and one
/// that also delivers an eighth more ops at 15 ms (a stall's tail, over
/// the 10 ms ceiling). Returns the driver and the limit before the pause.
fn tail_after(pause: impl FnMut(u64, u32) -> Sample) -> (Driver, u32) {
    tail_after_on(knee16, pause, 15_000_000)
}

/// [`tail_after`] on device `dev`, with the stall's tail at `late_ns`.
fn tail_after_on(
    dev: impl Fn(u64, u32) -> Sample + Copy,
    pause: impl FnMut(u64, u32) -> Sample,
    late_ns: u64,
) -> (Driver, u32) {
    let late = |t, l: u32| {
        let mut s = dev(t, l);
        let n = s.completions / 8;
        s.latency.record_n(late_ns, n);
        s.completions += n;
        s
    };
    let mut d = Driver::new(no_reprobe(), limits());
    d.until_settled(2000, dev);
    d.until(AimdPhase::Steady, 20, dev);
    for _ in 0..10 {
        d.step(dev);
    }
    assert_eq!(d.c.phase(), AimdPhase::Steady, "{:?}", d.c.state());
    let before = d.c.current().in_flight_limit;
    d.step(pause);
    d.step(late);
    (d, before)
}

/// A tick in which `share` of [`knee16`]'s completions arrive, at 1 ms,
/// with `stalled` measured by the ring.
fn paused(share: u64, stalled: Duration) -> impl FnMut(u64, u32) -> Sample {
    move |t, l: u32| {
        let mut s = knee16(t, l);
        s.completions /= share;
        s.latency = HistogramSnapshot::default();
        s.latency.record_n(1_000_000, s.completions);
        s.stalled = stalled;
        s
    }
}

#[test]
fn a_stall_tail_over_the_ceiling_holds_the_limit_but_the_same_tail_without_a_stall_cuts() {
    // Windows like this machine's virtio disk at depth ~100: P50 1.4 ms,
    // then a stall: one tick completes almost nothing, the next delivers
    // the stalled ops at 15 ms. The guard window's P99 (15 ms) is over the
    // 10 ms ceiling and its P95 over the body bound, but cutting the depth
    // cannot shorten a stall: the guard holds (and caps the limit).
    let (d, before) = tail_after(paused(20, Duration::ZERO));
    assert_ne!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
    assert_eq!(d.c.current().in_flight_limit, before, "{:?}", d.c.state());
    assert!(
        d.c.state().reason.contains("device's tail"),
        "{:?}",
        d.c.state()
    );
    // The same tail without the stall tick is queueing: it cuts.
    let (d, before) = tail_after(knee16);
    assert_eq!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
    assert!(d.c.current().in_flight_limit < before);
}

#[test]
fn a_measured_stall_marks_the_tail_as_the_device_s_even_when_no_tick_collapsed() {
    // The real disk's stalls last a few ms: the tick holding one loses
    // half its completions, not two thirds, so no tick collapses; the
    // ring's gap measurement reports the stalled time. With it the guard
    // holds; the same ticks without it cut.
    let (d, before) = tail_after(paused(2, Duration::from_millis(5)));
    assert_eq!(d.c.current().in_flight_limit, before, "{:?}", d.c.state());
    assert!(
        d.c.state().reason.contains("device's tail"),
        "{:?}",
        d.c.state()
    );
    let (d, _) = tail_after(paused(2, Duration::ZERO));
    assert_eq!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
}

/// A knee at 16 like [`knee16`], with a slow body: 1.4 ms per op.
fn slow_knee16(now_ms: u64, l: u32) -> Sample {
    device(now_ms, l, 16, 1400)
}

/// [`paused`] on [`slow_knee16`].
fn slow_paused(share: u64, stalled: Duration) -> impl FnMut(u64, u32) -> Sample {
    move |t, l: u32| {
        let mut s = slow_knee16(t, l);
        s.completions /= share;
        s.latency = HistogramSnapshot::default();
        s.latency.record_n(1_400_000, s.completions);
        s.stalled = stalled;
        s
    }
}

#[test]
fn a_stall_as_long_as_the_tail_holds_the_limit_even_when_the_tail_is_under_8x_the_median() {
    // This machine's disk at limit 129: P50 ≈ 1.3 ms, and an 8.6 ms stall
    // put the guard window's P99 at 10.1 ms, 7.8 × the P50: under
    // TAIL_RATIO, so the ratio alone took it for queueing and cut. Here:
    // P50 1.4 ms, a 9 ms stall (half a tick's completions lost, so no tick
    // collapses), then an eighth of a tick's ops late at 10.5 ms (7.5 ×).
    // The stall accounts for the tail: hold.
    let stall_tail = |stalled_ms| {
        tail_after_on(
            slow_knee16,
            slow_paused(2, Duration::from_millis(stalled_ms)),
            10_500_000,
        )
    };
    let (d, before) = stall_tail(9);
    assert_eq!(d.c.current().in_flight_limit, before, "{:?}", d.c.state());
    assert!(
        d.c.state().reason.contains("device's tail"),
        "{:?}",
        d.c.state()
    );
    // A 3 ms stall cannot have made a 10.5 ms tail on a 1.4 ms body: the
    // tail is this ring's queueing, and the guard cuts.
    let (d, before) = stall_tail(3);
    assert_eq!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
    assert!(d.c.current().in_flight_limit < before);
}

#[test]
fn the_stall_tail_rule_needs_a_stall_that_accounts_for_the_tail() {
    let ms = 1_000_000;
    // The ratio, with a stall in the window.
    assert!(is_stall_tail(9 * ms, ms, 0, true));
    assert!(!is_stall_tail(9 * ms, ms, 0, false));
    // The stall's length: P99 ≤ 2·P50 + stall, and the stall at least
    // half the excess over the P50.
    assert!(is_stall_tail(10 * ms, 1_300_000, 8_600_000, true));
    assert!(!is_stall_tail(10 * ms, 1_300_000, 3 * ms, true));
    assert!(!is_stall_tail(10 * ms, 1_300_000, 8_600_000, false));
    // Queueing 5× (P50 2 ms, P99 10 ms) needs a stall of P99 − 2·P50.
    assert!(!is_stall_tail(10 * ms, 2 * ms, 5 * ms, true));
    assert!(is_stall_tail(10 * ms, 2 * ms, 6 * ms, true));
    // A body risen whole (P50 4 ms, P99 10 ms): a 2.5 ms stall covers
    // P99 − 2·P50 (2 ms) but not half the excess over the P50 (3 ms).
    assert!(!is_stall_tail(10 * ms, 4 * ms, 2_500_000, true));
    assert!(is_stall_tail(10 * ms, 4 * ms, 3 * ms, true));
}
