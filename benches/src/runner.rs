//! Runs a [`Driver`] for the configured time with a live progress line and
//! turns what it reports into a [`RunResult`].

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::converge::converge_time_held;
use crate::driver::{Driver, LiveStats};
use crate::summary::{fmt_count, fmt_ns, RunResult, TimelinePoint};

/// How often the progress line and the runner's own timeline are updated.
pub const TICK: Duration = Duration::from_millis(250);

/// Runs `driver` for `runtime`. `progress` shows the live line on stderr.
/// `result` carries the workload's description (controller, rw, bs, ...);
/// the measured fields are filled in.
pub fn run(
    driver: &mut dyn Driver,
    runtime: Duration,
    progress: bool,
    mut result: RunResult,
) -> anyhow::Result<(RunResult, Vec<String>)> {
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(
            Some(runtime.as_millis() as u64),
            ProgressDrawTarget::stderr_with_hz(8),
        );
        bar.set_style(
            ProgressStyle::with_template("[{bar:16}] {elapsed:>3} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    driver.start()?;
    let start = Instant::now();
    let mut last = LiveStats::default();
    let mut last_t = Duration::ZERO;
    let mut timeline = Vec::new();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= runtime {
            break;
        }
        std::thread::sleep(TICK.min(runtime - elapsed));
        let t = start.elapsed();
        let now = driver.live();
        let dt = (t - last_t).as_secs_f64().max(1e-9);
        let iops = now.ops.saturating_sub(last.ops) as f64 / dt;
        let bw = now.bytes.saturating_sub(last.bytes) as f64 / dt;
        timeline.push(TimelinePoint {
            t,
            iops,
            limit: now.limit,
            p99_ns: now.p99_ns,
        });
        bar.set_position(t.as_millis().min(runtime.as_millis()) as u64);
        let errors = if now.errors > 0 {
            format!("  errors {}", now.errors)
        } else {
            String::new()
        };
        bar.set_message(format!(
            "IOPS {}  {:.0} MiB/s  limit {}  batch {}  P99 {}{errors}",
            fmt_count(iops),
            bw / (1 << 20) as f64,
            now.limit,
            now.batch,
            fmt_ns(now.p99_ns),
        ));
        last = now;
        last_t = t;
    }
    bar.set_message("stopping ...");
    let report = driver.stop();
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let report = report?;
    result.elapsed = report.elapsed.unwrap_or(elapsed);
    result.ops = report.ops;
    result.bytes = report.bytes;
    result.errors = report.errors;
    result.rings = report.rings;
    result.latency = report.latency;
    result.app_latency = report.app_latency;
    result.final_limit = report.final_limit;
    result.final_batch = report.final_batch;
    result.in_flight_mean = report.in_flight_mean;
    result.stalled_share = report.stalled_share;
    result.settled = report.settled;
    result.ring_lines = report.ring_lines;
    result.timeline = if report.timeline.is_empty() {
        timeline
    } else {
        report.timeline
    };
    let series: Vec<(Duration, f64)> = if report.limit_series.is_empty() {
        result
            .timeline
            .iter()
            .map(|p| (p.t, f64::from(p.limit)))
            .collect()
    } else {
        report.limit_series
    };
    result.converge = converge_time_held(&series);
    result.limit_series = series;
    Ok((result, report.notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::DriverReport;

    /// Counts up 1000 ops per call to `live`, limit ramps 1, 2, 4, 8, 8, ...
    #[derive(Default)]
    struct Fake {
        started: bool,
        calls: u64,
        stopped: bool,
    }

    impl Driver for Fake {
        fn start(&mut self) -> anyhow::Result<()> {
            self.started = true;
            Ok(())
        }
        fn live(&mut self) -> LiveStats {
            assert!(self.started);
            self.calls += 1;
            LiveStats {
                ops: self.calls * 1000,
                bytes: self.calls * 1000 * 4096,
                errors: 0,
                limit: 1 << self.calls.min(3),
                batch: 4,
                p99_ns: 500_000,
            }
        }
        fn stop(&mut self) -> anyhow::Result<DriverReport> {
            self.stopped = true;
            Ok(DriverReport {
                ops: self.calls * 1000,
                bytes: self.calls * 1000 * 4096,
                rings: 1,
                final_limit: 8,
                final_batch: 4,
                ..Default::default()
            })
        }
    }

    #[test]
    fn runs_for_the_runtime_and_builds_the_result() {
        let mut d = Fake::default();
        let (r, _) = run(
            &mut d,
            Duration::from_millis(900),
            false,
            RunResult::default(),
        )
        .unwrap();
        assert!(d.stopped);
        assert!(d.calls >= 3, "{} live samples", d.calls);
        assert!(r.elapsed >= Duration::from_millis(900));
        assert_eq!(r.ops, d.calls * 1000);
        assert_eq!(r.final_limit, 8);
        assert_eq!(r.timeline.len() as u64, d.calls);
        // Limit 2, 4, 8, 8: converged at the third sample.
        assert_eq!(r.converge, Some(r.timeline[2].t));
        assert!(r.timeline.iter().all(|p| p.iops > 0.0));
    }

    #[test]
    fn a_driver_timeline_wins_over_the_runners() {
        struct WithTicks(Fake);
        impl Driver for WithTicks {
            fn start(&mut self) -> anyhow::Result<()> {
                self.0.start()
            }
            fn live(&mut self) -> LiveStats {
                self.0.live()
            }
            fn stop(&mut self) -> anyhow::Result<DriverReport> {
                let mut r = self.0.stop()?;
                r.timeline = (0..100)
                    .map(|i| TimelinePoint {
                        t: Duration::from_millis(10 * i),
                        iops: 1.0,
                        limit: if i < 50 { 10 } else { 32 },
                        p99_ns: 1,
                    })
                    .collect();
                Ok(r)
            }
        }
        let mut d = WithTicks(Fake::default());
        let (r, _) = run(
            &mut d,
            Duration::from_millis(300),
            false,
            RunResult::default(),
        )
        .unwrap();
        assert_eq!(r.timeline.len(), 100);
        assert_eq!(r.converge, Some(Duration::from_millis(500)));
        // Without a driver series, the limit series is the timeline's.
        assert_eq!(r.limit_series.len(), 100);
    }
}
