//! Time to converge.
//!
//! Definition: the first moment after which the in-flight limit stays within
//! ±10 % of its final value until the end of the run. For a series of
//! `(time, limit)` points this is the time of the first point of the longest
//! suffix whose every point lies in `[0.9 * final, 1.1 * final]`.
//!
//! The series is first reduced to the levels the controller *held*
//! ([`held_levels`]): AIMD's paired trials toggle the limit in legs of
//! 20–40 ms around where it sits, and a periodic re-probe is not a change
//! of mind. The simulator's `metrics::held` judges its scenarios by the
//! same rule, except that there a probe that never holds a level keeps
//! the last level held before it (here nothing is held until a level
//! lasts again; see [`held_levels`]).

use std::time::Duration;

use auraio_controller::AimdPhase;

/// Phases in which a controller reports that it holds a limit it chose
/// (AIMD's settling, steady and converged): the first tick in one is when
/// the tuning first settled, which a late re-probe does not move.
pub const HOLDING_PHASES: [AimdPhase; 3] =
    [AimdPhase::Settling, AimdPhase::Steady, AimdPhase::Converged];

/// Is `phase` (a controller state's phase name, as traces record it) one
/// of [`HOLDING_PHASES`]?
pub fn is_holding_phase(phase: &str) -> bool {
    HOLDING_PHASES.iter().any(|p| p.as_str() == phase)
}

/// When the controllers first settled: the first tick by which every ring
/// had reported a holding phase, and the limit (sum over rings) then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Time since the start of the run.
    pub at: Duration,
    /// In-flight limit (sum over rings) at that tick.
    pub limit: u32,
}

/// Relative band around the final value.
pub const BAND: f64 = 0.10;

/// A value counts as held once it lasts this long.
pub const HOLD: Duration = Duration::from_millis(100);

/// The series with every run of equal values that lasts less than `min`
/// replaced by the last value held before it (the first value at the
/// start), while the short runs are legs around that value (a trial's legs
/// alternate between the level it started from and one other). A run lasts
/// from its first point to the first point after it. Short runs that do
/// not touch the held level (a probe that climbed on without holding any
/// level) hold nothing: they become NaN, within no band, until a value
/// lasts `min` again.
pub fn held_levels(series: &[(Duration, f64)], min: Duration) -> Vec<(Duration, f64)> {
    let mut out = series.to_vec();
    let Some(&(_, first)) = series.first() else {
        return out;
    };
    // The runs of equal values: (start index, end index, value).
    let mut runs = Vec::new();
    let mut i = 0;
    for run in series.chunk_by(|a, b| a.1 == b.1) {
        runs.push((i, i + run.len(), run[0].1));
        i += run.len();
    }
    let mut level = first;
    for (k, &(i, j, v)) in runs.iter().enumerate() {
        // A run lasts until the next run starts; the last one until the
        // last point (a trial still running at the end is not held).
        let end = series.get(j).map_or(series[j - 1].0, |p| p.0);
        let lasts = end.saturating_sub(series[i].0) >= min;
        if lasts || runs.len() == 1 {
            level = v;
        } else if v != level {
            let beside = |r: Option<&(usize, usize, f64)>| r.is_some_and(|r| r.2 == level);
            let around_level =
                beside(k.checked_sub(1).and_then(|p| runs.get(p))) || beside(runs.get(k + 1));
            if !around_level {
                level = f64::NAN;
            }
        }
        for p in &mut out[i..j] {
            p.1 = level;
        }
    }
    out
}

/// Time to converge of a limit series: [`converge_time`] of its
/// [`held_levels`] (see the module docs).
pub fn converge_time_held(series: &[(Duration, f64)]) -> Option<Duration> {
    converge_time(&held_levels(series, HOLD))
}

/// Time to converge of a `(time, value)` series: the start of the longest
/// suffix within the band around the final value. `None` for an empty series.
pub fn converge_time(series: &[(Duration, f64)]) -> Option<Duration> {
    let &(_, last) = series.last()?;
    let tol = BAND * last.abs();
    let within = |v: f64| (v - last).abs() <= tol + 1e-9;
    let mut first = series.len() - 1;
    while first > 0 && within(series[first - 1].1) {
        first -= 1;
    }
    Some(series[first].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(points: &[(u64, f64)]) -> Vec<(Duration, f64)> {
        points
            .iter()
            .map(|&(ms, v)| (Duration::from_millis(ms), v))
            .collect()
    }

    #[test]
    fn ramp_then_stable() {
        // 1, 10, 30, 58, 62, 64, 63, 64: final 64, band [57.6, 70.4].
        let series = s(&[
            (0, 1.0),
            (10, 10.0),
            (20, 30.0),
            (30, 58.0),
            (40, 62.0),
            (50, 64.0),
            (60, 63.0),
            (70, 64.0),
        ]);
        assert_eq!(converge_time(&series), Some(Duration::from_millis(30)));
    }

    #[test]
    fn trial_legs_are_not_held_levels() {
        // Held at 64, a trial toggling 64/128 in 20 ms legs, then 64 again:
        // converged at the start. A 300 ms stay at 40 is a held level.
        let mut pts = vec![(0, 64.0), (100, 64.0)];
        for (k, t) in (200..400).step_by(20).enumerate() {
            pts.push((t, if k % 2 == 0 { 128.0 } else { 64.0 }));
        }
        pts.push((400, 64.0));
        pts.push((500, 64.0));
        assert_eq!(converge_time_held(&s(&pts)), Some(Duration::from_millis(0)));
        assert_eq!(converge_time(&s(&pts)), Some(Duration::from_millis(380)));
        let held = held_levels(&s(&[(0, 64.0), (100, 40.0), (400, 64.0)]), HOLD);
        assert_eq!(held[1].1, 40.0);
    }

    #[test]
    fn a_trial_running_at_the_end_is_not_held() {
        // 40 held from 0, 100 held from 500 ms, then a trial toggling
        // 80/100 in 20 ms legs when the run ends: converged at 500 ms,
        // not at the last leg.
        let mut pts: Vec<(u64, f64)> = (0..50).map(|i| (i * 10, 40.0)).collect();
        pts.extend((50..150).map(|i| (i * 10, 100.0)));
        for (k, t) in (1500..1600).step_by(20).enumerate() {
            pts.push((t, if k % 2 == 0 { 80.0 } else { 100.0 }));
        }
        pts.push((1600, 80.0));
        assert_eq!(
            converge_time_held(&s(&pts)),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_probe_that_never_holds_a_level_has_not_converged() {
        // 16 held for 110 ms, a trial 16/64, then trials 64/91 and 91/137
        // that never come back to 16 and never hold a level: converged at
        // the end (it was 0.01 s when the legs counted as 16 held).
        let mut pts: Vec<(u64, f64)> = (1..=11).map(|i| (i * 10, 16.0)).collect();
        let mut t = 120;
        for (lo, hi) in [(16.0, 64.0), (64.0, 91.0), (91.0, 137.0)] {
            for k in 0..8 {
                pts.push((t, if k % 2 == 0 { hi } else { lo }));
                pts.push((t + 10, if k % 2 == 0 { hi } else { lo }));
                t += 20;
            }
        }
        let last = pts.last().unwrap().0;
        assert_eq!(
            converge_time_held(&s(&pts)),
            Some(Duration::from_millis(last))
        );
        // The legs around 16 still count as 16 held.
        let held = held_levels(&s(&pts), HOLD);
        assert_eq!(held[15].1, 16.0);
        assert!(held[pts.len() - 1].1.is_nan());
        // Once 91 is held, it converges there (from the trial's last leg,
        // already at 91).
        pts.extend((0..20).map(|i| (t + i * 10, 91.0)));
        assert_eq!(
            converge_time_held(&s(&pts)),
            Some(Duration::from_millis(t - 20))
        );
    }

    #[test]
    fn a_late_excursion_resets_the_clock() {
        let series = s(&[(0, 64.0), (10, 64.0), (20, 40.0), (30, 64.0), (40, 66.0)]);
        assert_eq!(converge_time(&series), Some(Duration::from_millis(30)));
    }

    #[test]
    fn band_edges_and_trivial_cases() {
        // Exactly 10 % off counts as within.
        let series = s(&[(0, 50.0), (10, 90.0), (20, 110.0), (30, 100.0)]);
        assert_eq!(converge_time(&series), Some(Duration::from_millis(10)));
        assert_eq!(converge_time(&[]), None);
        assert_eq!(
            converge_time(&s(&[(5, 3.0)])),
            Some(Duration::from_millis(5))
        );
        // Constant from the start converges at the first point.
        let flat = s(&[(0, 8.0), (10, 8.0), (20, 8.0)]);
        assert_eq!(converge_time(&flat), Some(Duration::ZERO));
        // Never settles: converges only at the last point.
        let saw = s(&[(0, 10.0), (10, 20.0), (20, 10.0), (30, 20.0)]);
        assert_eq!(converge_time(&saw), Some(Duration::from_millis(30)));
    }
}
