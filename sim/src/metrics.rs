//! Metrics math on a run's tick series: convergence time, oscillation,
//! overshoot, backoffs. Pure functions, unit-tested on hand-made series.

use crate::runner::TickPoint;

/// True when `limit` is within `±tol` (fraction) of `best`, with at least
/// ±1 of slack so small depths are not held to sub-integer precision.
pub fn within(limit: f64, best: f64, tol: f64) -> bool {
    within_band(limit, best, (tol, tol))
}

/// True when `limit` is within `best × [1 − below, 1 + above]`, with at
/// least ±1 of slack.
pub fn within_band(limit: f64, best: f64, (below, above): (f64, f64)) -> bool {
    limit >= best - (below * best).max(1.0) && limit <= best + (above * best).max(1.0)
}

/// Time (s, measured from `from_s`) of the first tick from which the limit
/// stays within `band` of `best` (see [`within_band`]) for `hold_s` seconds (or until `to_s`,
/// whichever is first, but at least one tick). `None` if it never does.
pub fn converge_time(
    ticks: &[TickPoint],
    from_s: f64,
    to_s: f64,
    best: f64,
    band: (f64, f64),
    hold_s: f64,
) -> Option<f64> {
    let seg: Vec<&TickPoint> = ticks
        .iter()
        .filter(|p| p.t_s > from_s + 1e-9 && p.t_s <= to_s + 1e-9)
        .collect();
    let mut start: Option<f64> = None;
    for p in &seg {
        if within_band(f64::from(p.limit), best, band) {
            let s = *start.get_or_insert(p.t_s);
            if p.t_s - s >= hold_s - 1e-9 {
                return Some((s - from_s).max(0.0));
            }
        } else {
            start = None;
        }
    }
    // In band since `s` up to the end of the segment (shorter than hold_s).
    start.map(|s| (s - from_s).max(0.0))
}

/// The levels the controller *held*: every run of equal limits shorter than
/// `min_ticks` ticks takes the last level held before it (the first tick's
/// limit at the start). AIMD's paired trials toggle the limit in legs of
/// 20–40 ms; those legs are measurements, not where the controller sits, and
/// their cost shows in throughput and P99, which are measured on every op.
/// Convergence, reaction, overshoot and backoffs are judged on held levels.
pub fn held(ticks: &[TickPoint], min_ticks: usize) -> Vec<TickPoint> {
    let mut out: Vec<TickPoint> = ticks.to_vec();
    let mut level = ticks.first().map_or(0, |p| p.limit);
    let mut i = 0;
    while i < ticks.len() {
        let mut j = i;
        while j < ticks.len() && ticks[j].limit == ticks[i].limit {
            j += 1;
        }
        if j - i >= min_ticks.max(1) {
            level = ticks[i].limit;
        }
        for p in &mut out[i..j] {
            p.limit = level;
        }
        i = j;
    }
    out
}

/// Mean of the values (0 when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Coefficient of variation (population standard deviation / mean); 0 when
/// empty or the mean is 0.
pub fn cov(v: &[f64]) -> f64 {
    let m = mean(v);
    if v.is_empty() || m == 0.0 {
        return 0.0;
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    var.sqrt() / m
}

/// Limits of the ticks whose end lies in `(from_s, to_s]`.
pub fn limits_in(ticks: &[TickPoint], from_s: f64, to_s: f64) -> Vec<f64> {
    ticks
        .iter()
        .filter(|p| p.t_s > from_s + 1e-9 && p.t_s <= to_s + 1e-9)
        .map(|p| f64::from(p.limit))
        .collect()
}

/// Overshoot: how far the highest limit in `(from_s, to_s]` went above
/// `best`, as a fraction (0 if never above).
pub fn overshoot(ticks: &[TickPoint], from_s: f64, to_s: f64, best: f64) -> f64 {
    let max = limits_in(ticks, from_s, to_s)
        .into_iter()
        .fold(0.0, f64::max);
    if best > 0.0 {
        (max / best - 1.0).max(0.0)
    } else {
        0.0
    }
}

/// Backoffs: ticks in `(from_s, to_s]` whose limit is at least `min_drop`
/// (fraction) below the limits of both previous ticks. A one-tick probe
/// that returns to where it was (`77 → 97 → 77`) is not a backoff.
pub fn backoffs(ticks: &[TickPoint], from_s: f64, to_s: f64, min_drop: f64) -> u32 {
    let mut n = 0;
    for (i, b) in ticks.iter().enumerate().skip(1) {
        let prev = ticks[i - 1]
            .limit
            .min(if i >= 2 { ticks[i - 2].limit } else { u32::MAX });
        if b.t_s > from_s + 1e-9
            && b.t_s <= to_s + 1e-9
            && f64::from(b.limit) < f64::from(prev) * (1.0 - min_drop)
        {
            n += 1;
        }
    }
    n
}

/// Ticks in `(from_s, to_s]` whose P99 exceeded `ceiling_us`.
pub fn ticks_over(ticks: &[TickPoint], from_s: f64, to_s: f64, ceiling_us: f64) -> u32 {
    ticks
        .iter()
        .filter(|p| p.t_s > from_s + 1e-9 && p.t_s <= to_s + 1e-9 && p.p99_us > ceiling_us)
        .count() as u32
}

/// Highest in-flight peak in `(from_s, to_s]`.
pub fn peak_in_flight(ticks: &[TickPoint], from_s: f64, to_s: f64) -> u32 {
    ticks
        .iter()
        .filter(|p| p.t_s > from_s + 1e-9 && p.t_s <= to_s + 1e-9)
        .map(|p| p.in_flight_peak)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(limits: &[u32], dt: f64) -> Vec<TickPoint> {
        limits
            .iter()
            .enumerate()
            .map(|(i, &l)| TickPoint {
                t_s: (i + 1) as f64 * dt,
                limit: l,
                batch: 8,
                iops: 0.0,
                p50_us: 0.0,
                p99_us: if l > 50 { 2000.0 } else { 100.0 },
                p99_plot_us: 0.0,
                in_flight_avg: 0.0,
                in_flight_peak: l / 2,
                backlog: 0,
                stalled_ms: 0.0,
                phase: String::new(),
                reason: String::new(),
            })
            .collect()
    }

    #[test]
    fn within_has_one_unit_of_slack() {
        assert!(within(11.0, 10.0, 0.1));
        assert!(within(9.0, 10.0, 0.05));
        assert!(!within(12.0, 10.0, 0.1));
        assert!(within(66.0, 72.0, 0.1));
        assert!(!within(64.0, 72.0, 0.1));
        assert!(within_band(88.0, 72.0, (0.1, 0.25)));
        assert!(!within_band(91.0, 72.0, (0.1, 0.25)));
        assert!(!within_band(64.0, 72.0, (0.1, 0.25)));
    }

    #[test]
    fn convergence_needs_to_stay() {
        // 0.1 s ticks: 40 at 0.1..0.3, 70 from 0.4 to 0.6, 30 at 0.7,
        // 71 from 0.8 to 2.0.
        let mut l = vec![40, 40, 40, 70, 70, 70, 30];
        l.extend(std::iter::repeat_n(71, 13));
        let s = series(&l, 0.1);
        let t = converge_time(&s, 0.0, 2.0, 72.0, (0.1, 0.1), 1.0).unwrap();
        assert!((t - 0.8).abs() < 1e-9, "{t}");
        // Measured from a later segment start.
        let t = converge_time(&s, 0.5, 2.0, 72.0, (0.1, 0.1), 1.0).unwrap();
        assert!((t - 0.3).abs() < 1e-9, "{t}");
        // Never in band.
        assert_eq!(converge_time(&s, 0.0, 2.0, 20.0, (0.1, 0.1), 1.0), None);
        // In band at the end for less than hold_s: counts from its start.
        let t = converge_time(&s, 0.0, 1.0, 72.0, (0.1, 0.1), 1.0).unwrap();
        assert!((t - 0.8).abs() < 1e-9, "{t}");
    }

    #[test]
    fn cov_mean_overshoot_backoffs() {
        assert_eq!(cov(&[]), 0.0);
        assert_eq!(cov(&[5.0, 5.0]), 0.0);
        assert!((cov(&[1.0, 3.0]) - 0.5).abs() < 1e-12);
        assert!((mean(&[1.0, 2.0, 3.0]) - 2.0).abs() < 1e-12);
        let s = series(&[10, 20, 90, 72, 57, 56, 72, 50], 0.1);
        assert!((overshoot(&s, 0.0, 1.0, 72.0) - 0.25).abs() < 1e-12);
        assert_eq!(overshoot(&s, 0.0, 0.2, 72.0), 0.0);
        // 72→57 and 56,72→50 fall > 5 % below both previous ticks; 90→72
        // does not (20 two ticks before), nor 57→56 (-2 %).
        assert_eq!(backoffs(&s, 0.0, 1.0, 0.05), 2);
        assert_eq!(backoffs(&s, 0.55, 1.0, 0.05), 1);
        // A one-tick probe up and back is not a backoff.
        let p = series(&[77, 77, 97, 77, 77, 61], 0.1);
        assert_eq!(backoffs(&p, 0.0, 1.0, 0.05), 1);
        assert_eq!(ticks_over(&s, 0.0, 1.0, 1000.0), 5);
        assert_eq!(peak_in_flight(&s, 0.0, 1.0), 45);
        assert_eq!(limits_in(&s, 0.15, 0.45), vec![20.0, 90.0, 72.0]);
    }

    #[test]
    fn held_levels_ignore_short_legs() {
        // 64 held, a trial toggling 64/128 in 2-tick legs, then 80 held.
        let s = series(
            &[64, 64, 64, 128, 128, 64, 64, 128, 128, 80, 80, 80, 80],
            0.01,
        );
        let h: Vec<u32> = held(&s, 3).iter().map(|p| p.limit).collect();
        assert_eq!(h, [64, 64, 64, 64, 64, 64, 64, 64, 64, 80, 80, 80, 80]);
        assert_eq!(overshoot(&held(&s, 3), 0.0, 1.0, 64.0), 0.25);
        assert_eq!(overshoot(&s, 0.0, 1.0, 64.0), 1.0);
        // A short first run is held as it is (nothing before it).
        let s = series(&[10, 20, 20, 20], 0.01);
        let h: Vec<u32> = held(&s, 3).iter().map(|p| p.limit).collect();
        assert_eq!(h, [10, 20, 20, 20]);
    }
}
