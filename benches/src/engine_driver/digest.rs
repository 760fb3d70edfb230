//! Digesting a run's trace: the per-ring tick records summed into the
//! plot's timeline, the limit series and the run's latency and settling.

use std::collections::BTreeMap;
use std::time::Duration;

use auraio_controller::HistogramSnapshot;

use crate::converge::{is_holding_phase, Settled};
use crate::summary::TimelinePoint;

/// What the trace's tick records give the summary.
#[derive(Clone, Debug, Default)]
pub struct TickDigest {
    /// Sum of the rings' limits after every tick (full resolution).
    pub limit_series: Vec<(Duration, f64)>,
    /// The timeline in `bucket`-wide points (IOPS and P99 over each bucket,
    /// the limit in force at its end).
    pub timeline: Vec<TimelinePoint>,
    /// Completion latency over the whole run (every tick's histogram merged).
    pub latency: HistogramSnapshot,
    /// Time-averaged ops in flight, summed over rings (`None` without
    /// ticks).
    pub in_flight_mean: Option<f64>,
    /// Share of the run the device stood still with ops in flight (the
    /// samples' `stalled` over their intervals, all rings; `None` without
    /// ticks).
    pub stalled_share: Option<f64>,
    /// When every ring's controller had first reported a holding phase
    /// (see [`crate::converge::Settled`]).
    pub settled: Option<Settled>,
}

/// Digests the trace's per-ring tick records: ticks of the same moment
/// (`tick`-wide slots) are summed over rings; the plot timeline uses
/// `bucket`-wide points so a person can read it.
pub fn digest_ticks(
    ticks: &[auraio_controller::TickRecord],
    tick: Duration,
    bucket: Duration,
) -> TickDigest {
    let tick_us = tick.as_micros().max(1) as u64;
    let slot = |d: Duration| (d.as_micros() as u64 + tick_us / 2) / tick_us;
    // slot -> (now, limit per ring)
    let mut limits: BTreeMap<u64, (Duration, BTreeMap<u32, u32>)> = BTreeMap::new();
    let bucket_us = bucket.as_micros().max(1) as u64;
    // bucket -> (end, completions, interval sum of ring 0.., histogram, last limit per ring)
    struct B {
        end: Duration,
        completions: u64,
        covered: BTreeMap<u32, Duration>,
        hist: HistogramSnapshot,
    }
    let mut buckets: BTreeMap<u64, B> = BTreeMap::new();
    let mut latency = HistogramSnapshot::default();
    let mut last_limit: BTreeMap<u32, u32> = BTreeMap::new();
    // ring -> (Σ in_flight_avg × interval, Σ interval), seconds
    let mut in_flight: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    let (mut stalled, mut covered) = (Duration::ZERO, Duration::ZERO);
    // ring -> the first tick it reported a holding phase at
    let mut first_hold: BTreeMap<u32, Option<Duration>> = BTreeMap::new();
    for t in ticks {
        let s = &t.sample;
        let hold = first_hold.entry(t.ring).or_default();
        if hold.is_none() && is_holding_phase(&t.state.phase) {
            *hold = Some(s.now);
        }
        latency.merge(&s.latency);
        stalled += s.stalled;
        covered += s.interval;
        let f = in_flight.entry(t.ring).or_default();
        f.0 += s.in_flight_avg * s.interval.as_secs_f64();
        f.1 += s.interval.as_secs_f64();
        let e = limits
            .entry(slot(s.now))
            .or_insert((s.now, BTreeMap::new()));
        e.1.insert(t.ring, t.decision.in_flight_limit);
        // Rings tick a few µs apart: align on the tick slot first.
        let bk = (slot(s.now) * tick_us).saturating_sub(1) / bucket_us;
        let b = buckets.entry(bk).or_insert_with(|| B {
            end: Duration::from_micros((bk + 1) * bucket_us),
            completions: 0,
            covered: BTreeMap::new(),
            hist: HistogramSnapshot::default(),
        });
        b.completions += s.completions;
        *b.covered.entry(t.ring).or_default() += s.interval;
        b.hist.merge(&s.latency);
    }
    let mut limit_series = Vec::with_capacity(limits.len());
    let mut slot_limits: Vec<(Duration, u32)> = Vec::with_capacity(limits.len());
    for (_, (now, per_ring)) in limits {
        for (r, l) in per_ring {
            last_limit.insert(r, l);
        }
        let sum: u32 = last_limit.values().sum();
        limit_series.push((now, f64::from(sum)));
        slot_limits.push((now, sum));
    }
    let mut timeline = Vec::with_capacity(buckets.len());
    let mut li = 0;
    let mut cur_limit = 0;
    for (_, b) in buckets {
        while li < slot_limits.len() && slot_limits[li].0 <= b.end {
            cur_limit = slot_limits[li].1;
            li += 1;
        }
        // Rings tick in parallel: the bucket's time is the longest coverage.
        let covered = b.covered.values().max().copied().unwrap_or_default();
        timeline.push(TimelinePoint {
            t: b.end,
            iops: if covered.is_zero() {
                0.0
            } else {
                b.completions as f64 / covered.as_secs_f64()
            },
            limit: cur_limit,
            p99_ns: b.hist.p99_ns(),
        });
    }
    let in_flight_mean = (!in_flight.is_empty()).then(|| {
        in_flight
            .values()
            .map(|&(w, t)| if t > 0.0 { w / t } else { 0.0 })
            .sum()
    });
    let stalled_share =
        (!covered.is_zero()).then(|| (stalled.as_secs_f64() / covered.as_secs_f64()).min(1.0));
    // Settled once the last ring did; never if one ring never did.
    let settled_at = if first_hold.values().all(Option::is_some) {
        first_hold.values().flatten().max().copied()
    } else {
        None
    };
    let settled = settled_at.map(|at| Settled {
        at,
        limit: slot_limits
            .iter()
            .take_while(|&&(t, _)| t <= at)
            .last()
            .map_or(0, |&(_, l)| l),
    });
    TickDigest {
        limit_series,
        timeline,
        latency,
        in_flight_mean,
        stalled_share,
        settled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_driver::lat_stats;
    use auraio_controller::{ControllerState, Decision, Sample, TickRecord};

    fn tick(ring: u32, now_ms: u64, completions: u64, limit: u32, lat_ns: u64) -> TickRecord {
        let mut latency = HistogramSnapshot::default();
        for _ in 0..completions {
            latency.record(lat_ns);
        }
        TickRecord {
            ring,
            sample: Sample {
                now: Duration::from_millis(now_ms),
                interval: Duration::from_millis(10),
                completions,
                latency,
                ..Default::default()
            },
            decision: Decision {
                in_flight_limit: limit,
                batch_threshold: 8,
            },
            state: ControllerState {
                name: "test".into(),
                phase: "probing".into(),
                reason: String::new(),
            },
        }
    }

    #[test]
    fn ticks_of_two_rings_are_summed_and_bucketed() {
        // Ring 1 ticks a few µs after ring 0, like the engine's tick loop.
        let mut ticks = Vec::new();
        for i in 1..=10u64 {
            let mut t = tick(0, 10 * i, 100, 4 + i as u32, 100_000);
            // Ring 0 keeps 3 in flight for the first half, 5 after, and
            // its device stands still for 1 ms in every other tick.
            t.sample.in_flight_avg = if i <= 5 { 3.0 } else { 5.0 };
            if i % 2 == 0 {
                t.sample.stalled = Duration::from_millis(1);
            }
            ticks.push(t);
            let mut t = tick(1, 10 * i, 50, 2, 1_000_000);
            t.sample.now += Duration::from_micros(30);
            t.sample.in_flight_avg = 2.0;
            ticks.push(t);
        }
        let d = digest_ticks(&ticks, Duration::from_millis(10), Duration::from_millis(50));
        // One limit point per tick, summed over rings.
        assert_eq!(d.limit_series.len(), 10);
        assert_eq!(d.limit_series[0].1, 5.0 + 2.0);
        assert_eq!(d.limit_series[9].1, 14.0 + 2.0);
        // Two 50 ms buckets of 5 ticks: 750 completions in 50 ms.
        assert_eq!(d.timeline.len(), 2, "{:?}", d.timeline);
        assert!(
            (d.timeline[0].iops - 15_000.0).abs() < 1.0,
            "{:?}",
            d.timeline[0]
        );
        assert_eq!(d.timeline[0].t, Duration::from_millis(50));
        assert_eq!(d.timeline[0].limit, 9 + 2);
        // One third of the completions are slow: P99 is ring 1's 1 ms (±3 %).
        let p99 = d.timeline[1].p99_ns as f64;
        assert!((p99 - 1e6).abs() < 0.03e6, "{p99}");
        assert_eq!(d.latency.count(), 1500);
        let s = lat_stats(&d.latency);
        assert_eq!(s.samples, 1500);
        assert!(s.min <= 103_000 && s.max >= 970_000, "{s:?}");
        // Time-averaged in flight, summed over rings: 4 + 2.
        let m = d.in_flight_mean.unwrap();
        assert!((m - 6.0).abs() < 1e-9, "{m}");
        // 5 ms stalled over 20 ring-ticks of 10 ms.
        let s = d.stalled_share.unwrap();
        assert!((s - 0.025).abs() < 1e-9, "{s}");
    }

    #[test]
    fn settled_is_when_the_last_ring_first_held_and_a_late_reprobe_does_not_move_it() {
        let phase = |mut t: TickRecord, p: &str| {
            t.state.phase = p.into();
            t
        };
        let mut ticks = Vec::new();
        for i in 1..=10u64 {
            // Ring 0 settles at 30 ms (limit 64), re-probes at 80 ms; ring 1
            // settles at 50 ms (limit 32).
            let p0 = match i {
                3..=7 => "steady",
                _ => "probing",
            };
            let p1 = if i >= 5 { "settling" } else { "baseline" };
            let l0 = if i >= 3 { 64 } else { 16 };
            let l1 = if i >= 5 { 32 } else { 16 };
            ticks.push(phase(tick(0, 10 * i, 10, l0, 100_000), p0));
            ticks.push(phase(tick(1, 10 * i, 10, l1, 100_000), p1));
        }
        let d = digest_ticks(&ticks, Duration::from_millis(10), Duration::from_millis(50));
        assert_eq!(
            d.settled,
            Some(Settled {
                at: Duration::from_millis(50),
                limit: 64 + 32,
            })
        );
        // A ring that never holds: never settled.
        let mut never: Vec<_> = ticks.iter().filter(|t| t.ring == 1).cloned().collect();
        never.push(phase(tick(2, 100, 10, 8, 100_000), "fixed"));
        let d = digest_ticks(&never, Duration::from_millis(10), Duration::from_millis(50));
        assert_eq!(d.settled, None);
    }

    #[test]
    fn no_ticks_no_points() {
        let d = digest_ticks(&[], Duration::from_millis(10), Duration::from_millis(50));
        assert!(d.limit_series.is_empty() && d.timeline.is_empty() && d.latency.is_empty());
        assert_eq!(d.settled, None);
        assert!(d.in_flight_mean.is_none() && d.stalled_share.is_none());
    }
}
