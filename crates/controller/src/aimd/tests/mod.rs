//! Unit tests of [`Aimd`]: one per phase transition and rule, on
//! noise-free and noisy synthetic devices. This file holds the shared
//! synthetic devices and the tick driver; the tests are by concept below.

mod climb;
mod config;
mod guard;
mod idle;
mod reprobe;

use super::*;

const MS10: Duration = Duration::from_millis(10);

/// A noise-free window: `completions` ops at `lat_us`, Little's-law
/// in-flight, the given peak and backlog.
fn win(now_ms: u64, completions: u64, lat_us: u64, peak: u32, backlog: u32) -> Sample {
    let mut s = Sample {
        now: Duration::from_millis(now_ms),
        interval: MS10,
        completions,
        bytes: completions * 4096,
        in_flight_peak: peak,
        backlog,
        enter_calls: completions.div_ceil(8),
        sqes_submitted: completions,
        ..Sample::default()
    };
    s.latency.record_n(lat_us * 1000, completions);
    s.in_flight_avg = s.latency.sum_ns() as f64 / 1e9 / s.interval.as_secs_f64();
    s
}

/// Knee-at-`k` device with `base_us` latency, closed loop, at limit `l`.
fn device(now_ms: u64, l: u32, k: u32, base_us: u64) -> Sample {
    let qd = l as f64;
    let lat = (base_us as f64 * (qd / k as f64).max(1.0)).round() as u64;
    let x = qd.min(k as f64) / (base_us as f64 * 1e-6);
    win(now_ms, (x * 0.01).round() as u64, lat, l, 100)
}

/// A soft knee like this machine's virtio disk: `x = x_max · l / (l + k)`,
/// latency by Little's law.
fn soft(now_ms: u64, l: u32, k: f64, x_max: f64) -> Sample {
    let qd = f64::from(l);
    let x = x_max * qd / (qd + k);
    let lat_us = (qd / x * 1e6).round().max(1.0) as u64;
    win(now_ms, (x * 0.01).round() as u64, lat_us, l, 100)
}

struct Driver {
    c: Aimd,
    t: u64,
}

impl Driver {
    fn new(cfg: AimdConfig, limits: Limits) -> Self {
        Driver {
            c: Aimd::new(cfg, limits),
            t: 0,
        }
    }
    fn step(&mut self, mut f: impl FnMut(u64, u32) -> Sample) -> Decision {
        self.t += 10;
        let s = f(self.t, self.c.current().in_flight_limit);
        self.c.tick(&s)
    }
    fn until(&mut self, phase: AimdPhase, max_ticks: u32, mut f: impl FnMut(u64, u32) -> Sample) {
        for _ in 0..max_ticks {
            if self.c.phase() == phase {
                return;
            }
            self.step(&mut f);
        }
        assert_eq!(self.c.phase(), phase, "{:?}", self.c.state());
    }
    /// Runs until probing is over (settled, steady or converged).
    fn until_settled(&mut self, max_ticks: u32, mut f: impl FnMut(u64, u32) -> Sample) {
        self.until(AimdPhase::Probing, max_ticks, &mut f);
        for _ in 0..max_ticks {
            self.step(&mut f);
            if !matches!(self.c.phase(), AimdPhase::Probing | AimdPhase::Backoff) {
                return;
            }
        }
        panic!("still probing: {:?}", self.c.state());
    }
}

fn knee64(t: u64, l: u32) -> Sample {
    device(t, l, 64, 100)
}

fn limits() -> Limits {
    Limits::new(1, 256, 4)
}

fn no_reprobe() -> AimdConfig {
    AimdConfig {
        reprobe_ms: 0,
        ..AimdConfig::default()
    }
}

/// The real virtio disk here: per-tick completions swing widely (CV ≈ 0.3,
/// some empty ticks while ops are in flight), the ring is always full.
fn noisy(rng: &mut u64, spread: f64, clean: Sample, l: u32) -> Sample {
    *rng = rng
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let u = (*rng >> 11) as f64 / (1u64 << 53) as f64;
    let f = if u < 0.03 {
        0.0
    } else {
        1.0 - spread + 2.0 * spread * (u - 0.03) / 0.97
    };
    let lat_us = clean.latency.p50_ns().div_ceil(1000).max(1);
    win(
        clean.now.as_millis() as u64,
        (clean.completions as f64 * f).round() as u64,
        lat_us,
        l,
        100,
    )
}
