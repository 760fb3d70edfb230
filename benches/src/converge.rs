//! Time to converge.
//!
//! Definition: the first moment after which the in-flight limit stays within
//! ±10 % of its final value until the end of the run. For a series of
//! `(time, limit)` points this is the time of the first point of the longest
//! suffix whose every point lies in `[0.9 * final, 1.1 * final]`.

use std::time::Duration;

/// Relative band around the final value.
pub const BAND: f64 = 0.10;

/// Time to converge of a `(time, value)` series (see the module docs).
/// `None` for an empty series.
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
