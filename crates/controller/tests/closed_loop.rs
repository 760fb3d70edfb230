//! A small deterministic closed-loop device model driving the real
//! controllers through the real `IoMeter`.
//!
//! Device: saturates at queue depth 64. Below the knee latency is flat and
//! throughput grows linearly with depth; beyond it throughput is flat and
//! latency grows linearly:
//! `latency = base × max(1, qd/64)`, `throughput = min(qd, 64) / base`,
//! with small seeded noise on every latency and on every tick's count.
//! The application always has more work than the limit (closed loop).

use auraio_controller::{
    Aimd, AimdConfig, AimdPhase, Controller, ControllerConfig, Decision, IoMeter, Limits, Sample,
};
use std::time::Duration;

const KNEE: f64 = 64.0;
const TICK: Duration = Duration::from_millis(10);

/// xorshift64*: tiny, seeded, portable.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal(0, 1) (sum of 4 uniforms, rescaled).
    fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum();
        (s - 2.0) * (3.0f64).sqrt()
    }
}

struct Device {
    base_ns: f64,
    knee: f64,
    rng: Rng,
}

impl Device {
    /// Runs one tick at depth `qd`, feeding the meter; returns the sample.
    fn tick(&mut self, meter: &IoMeter, now: Duration, d: Decision) -> Sample {
        let qd = d.in_flight_limit as f64;
        meter.set_backlog(1000);
        meter.on_submit(d.in_flight_limit);
        let rate = qd.min(self.knee) / (self.base_ns * 1e-9);
        let expected = rate * TICK.as_secs_f64();
        let n = (expected * (1.0 + 0.01 * self.rng.normal()))
            .max(0.0)
            .round() as u64;
        let lat_mean = self.base_ns * (qd / self.knee).max(1.0);
        for _ in 0..n {
            let mut lat = lat_mean * (0.9 + 0.2 * self.rng.unit());
            if self.rng.unit() < 0.005 {
                lat *= 3.0; // a small tail
            }
            meter.on_complete(lat as u64, 4096, false);
        }
        let batch = u64::from(d.batch_threshold.max(1));
        let enters = n.div_ceil(batch);
        for i in 0..enters {
            meter.on_enter(if i + 1 == enters {
                (n - i * batch) as u32
            } else {
                batch as u32
            });
        }
        meter.take_sample(now, d.in_flight_limit)
    }
}

struct Run {
    /// (time, decision, phase) after each tick.
    log: Vec<(Duration, Decision, String)>,
    /// Completions the device reported in each tick.
    completions: Vec<u64>,
}

fn run(ctrl: &mut dyn Controller, seconds: u64, seed: u64, base_us: f64) -> Run {
    let mut dev = Device {
        base_ns: base_us * 1000.0,
        knee: KNEE,
        rng: Rng(seed | 1),
    };
    let meter = IoMeter::new();
    let mut d = ctrl.current();
    let mut now = Duration::ZERO;
    let mut log = Vec::new();
    let mut completions = Vec::new();
    while now < Duration::from_secs(seconds) {
        now += TICK;
        let s = dev.tick(&meter, now, d);
        completions.push(s.completions);
        d = ctrl.tick(&s);
        log.push((now, d, ctrl.state().phase));
    }
    Run { log, completions }
}

fn print_trajectory(name: &str, r: &Run) {
    let mut line = format!("{name}:");
    for (t, d, p) in r.log.iter().step_by(10) {
        line += &format!(" {}ms={}({})", t.as_millis(), d.in_flight_limit, &p[..3]);
    }
    println!("{line}");
}

fn limits() -> Limits {
    Limits::new(1, 256, 4)
}

#[test]
fn aimd_settles_near_the_knee_within_two_seconds() {
    for (seed, base_us) in [(1u64, 100.0), (7, 100.0), (42, 250.0), (2024, 80.0)] {
        let mut c = Aimd::new(AimdConfig::default(), limits());
        let r = run(&mut c, 8, seed, base_us);
        print_trajectory(&format!("seed {seed} base {base_us}us"), &r);
        for (t, d, p) in &r.log {
            if *t >= Duration::from_secs(2) {
                let l = d.in_flight_limit as f64;
                assert!(
                    (KNEE * 0.75..=KNEE * 1.25).contains(&l),
                    "seed {seed}: limit {l} at {t:?} ({p}) outside ±25 % of 64"
                );
            }
        }
        // It got there by settling, and it converged afterwards (a
        // periodic re-probe may be running at the very end).
        let settled_at = r
            .log
            .iter()
            .find(|(_, _, p)| p == "steady")
            .map(|(t, _, _)| *t)
            .expect("never reached steady");
        assert!(
            settled_at < Duration::from_secs(2),
            "steady only at {settled_at:?}"
        );
        assert!(
            r.log
                .iter()
                .any(|(_, _, p)| p == AimdPhase::Converged.as_str()),
            "seed {seed}: never converged: {:?}",
            c.state()
        );
    }
}

#[test]
fn aimd_from_a_high_initial_limit_ends_within_range() {
    // Starting above the knee: slow start exits at once, additive probing
    // finds the plateau; the limit must not run away to the maximum.
    let mut c = Aimd::new(AimdConfig::default(), Limits::new(1, 256, 48));
    let r = run(&mut c, 6, 5, 100.0);
    print_trajectory("initial 48", &r);
    let (_, d, _) = r.log.last().unwrap();
    let l = d.in_flight_limit as f64;
    assert!((KNEE * 0.75..=KNEE * 1.25).contains(&l), "final limit {l}");
}

#[test]
fn closed_loop_is_deterministic() {
    let a = run(
        &mut *ControllerConfig::default().build(limits()).unwrap(),
        3,
        9,
        100.0,
    );
    let b = run(
        &mut *ControllerConfig::default().build(limits()).unwrap(),
        3,
        9,
        100.0,
    );
    assert_eq!(a.log, b.log);
    assert_eq!(a.completions, b.completions);
    // and a different seed gives a (slightly) different device run
    let c = run(
        &mut *ControllerConfig::default().build(limits()).unwrap(),
        3,
        10,
        100.0,
    );
    assert_ne!(a.completions, c.completions);
}

#[test]
fn fixed_holds_its_depth_in_the_loop() {
    let mut f = ControllerConfig::Fixed {
        in_flight: 32,
        batch: 4,
    }
    .build(limits())
    .unwrap();
    let r = run(&mut *f, 1, 3, 100.0);
    assert!(r
        .log
        .iter()
        .all(|(_, d, _)| d.in_flight_limit == 32 && d.batch_threshold == 4));
}

#[test]
fn aimd_from_above_the_knee_probes_down() {
    // Starting at twice the knee: throughput is flat from the first probe,
    // so AIMD walks the limit down while throughput holds.
    for initial in [128u32, 200] {
        let mut c = Aimd::new(AimdConfig::default(), Limits::new(1, 256, initial));
        let r = run(&mut c, 3, 11, 100.0);
        print_trajectory(&format!("initial {initial}"), &r);
        for (t, d, p) in &r.log {
            if *t >= Duration::from_secs(2) {
                let l = d.in_flight_limit as f64;
                assert!(
                    (KNEE * 0.75..=KNEE * 1.25).contains(&l),
                    "initial {initial}: limit {l} at {t:?} ({p})"
                );
            }
        }
    }
}

#[test]
fn aimd_follows_a_capacity_drop() {
    // Knee 64 for 3 s, then the device loses half its units (knee 32,
    // same per-op latency): AIMD must come down to within ±25 % of 32.
    let mut c = Aimd::new(AimdConfig::default(), limits());
    let mut dev = Device {
        base_ns: 100_000.0,
        knee: KNEE,
        rng: Rng(77),
    };
    let meter = IoMeter::new();
    let mut d = c.current();
    let mut now = Duration::ZERO;
    let mut log = Vec::new();
    while now < Duration::from_secs(8) {
        now += TICK;
        if now == Duration::from_secs(3) {
            dev.knee = 32.0;
        }
        let s = dev.tick(&meter, now, d);
        d = c.tick(&s);
        log.push((now, d, c.state().phase));
    }
    let r = Run {
        log,
        completions: Vec::new(),
    };
    print_trajectory("capacity drop at 3 s", &r);
    for (t, d, p) in &r.log {
        let l = d.in_flight_limit as f64;
        if *t >= Duration::from_secs(2) && *t < Duration::from_secs(3) {
            assert!(
                (48.0..=80.0).contains(&l),
                "before the drop: {l} at {t:?} ({p})"
            );
        }
        if *t >= Duration::from_secs(5) {
            assert!(
                (24.0..=40.0).contains(&l),
                "after the drop: {l} at {t:?} ({p})"
            );
        }
    }
}

#[test]
fn aimd_app_limited_does_not_drift_up() {
    // The application never has more than 20 ops outstanding: the limit
    // must not drift above twice that.
    let mut c = Aimd::new(AimdConfig::default(), limits());
    let meter = IoMeter::new();
    let mut dev = Device {
        base_ns: 100_000.0,
        knee: KNEE,
        rng: Rng(5),
    };
    let mut now = Duration::ZERO;
    let mut d = c.current();
    let mut max_limit = 0;
    while now < Duration::from_secs(5) {
        now += TICK;
        let used = d.in_flight_limit.min(20);
        let s = dev.tick(
            &meter,
            now,
            Decision {
                in_flight_limit: used,
                ..d
            },
        );
        let s = Sample {
            backlog: 20u32.saturating_sub(d.in_flight_limit),
            ..s
        };
        d = c.tick(&s);
        max_limit = max_limit.max(d.in_flight_limit);
    }
    println!("app-limited: max limit {max_limit}, final {:?}", c.state());
    assert!(
        max_limit >= 20,
        "never gave the app what it needs: {max_limit}"
    );
    assert!(max_limit <= 40, "drifted to {max_limit}");
}
