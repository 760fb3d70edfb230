//! [`Aimd`]: the default policy — additive increase of the in-flight limit
//! while throughput still grows with it, multiplicative decrease on latency.
//!
//! Phases: `baseline → probing → (plateau, refined by probing down)
//! settling → steady → converged`, `backoff → settling → probing` on a
//! latency violation (judged over a short window of recent ticks), and a
//! periodic `+10 %` re-probe from steady/converged that returns where it left
//! when it finds nothing. See `docs/controllers.md` for the full description,
//! the reasoning behind each rule, the constants and the known failure modes.

use crate::controller::{clamp_batch, Controller, Limits};
use crate::histogram::{percentile_of, HistogramSnapshot, NUM_BUCKETS};
use crate::sample::{ControllerState, Decision, Sample};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Every constant of [`Aimd`]. `Default` gives the documented defaults;
/// missing fields in serialized form take their defaults too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AimdConfig {
    /// Tick period the engine should use (ms). The controller itself only
    /// uses the intervals inside the samples.
    pub tick_ms: u64,
    /// BASELINE: judged windows at the initial limit before probing (10 × 10 ms).
    pub baseline_ticks: u32,
    /// A window is judged only once it holds at least this many completions;
    /// fewer and the next tick is accumulated into it (low-IOPS devices).
    pub min_window_completions: u64,
    /// …and at least this many ticks.
    pub min_window_ticks: u32,
    /// PROBING compares windows with each other, so its windows hold at
    /// least this many completions (±1/√n counting noise: 7 % at 200).
    /// Only slow devices wait longer for it.
    pub probe_window_completions: u64,
    /// PROBING: limit increase per judged window once past slow start.
    pub additive_increase: u32,
    /// PROBING starts with multiplicative steps (like TCP slow start) until
    /// throughput stops scaling with the limit.
    pub slow_start: bool,
    /// Slow-start growth factor per judged window.
    pub slow_start_factor: f64,
    /// Slow start ends when the efficiency of its last step
    /// (Δln throughput / Δln in-flight) falls below this.
    pub slow_start_exit_efficiency: f64,
    /// PROBING stops (plateau) when the efficiency (log-log slope of
    /// throughput against measured in-flight over the recent windows) falls
    /// below this. 1 = throughput scales with depth, 0 = flat.
    pub efficiency_epsilon: f64,
    /// Minimum number of judged windows the efficiency slope is fitted on.
    pub efficiency_window: u32,
    /// Minimum spread of measured in-flight (ln max/min) the slope is fitted
    /// on; more windows are used until it is reached.
    pub efficiency_min_span: f64,
    /// BACKOFF: multiply the limit by this on a latency violation.
    pub backoff_factor: f64,
    /// Latency violation: P99 above this many times the baseline P99…
    pub latency_guard_mult: f64,
    /// …or above this ceiling (µs). Settable at run time.
    pub p99_ceiling_us: u64,
    /// SETTLING: hold time after a change (ms).
    pub settle_ms: u64,
    /// STEADY → CONVERGED after this long without a material change (ms).
    pub converge_ms: u64,
    /// The app is not using the limit when the window's peak in-flight is
    /// below `limit × this` and nothing waited in the backlog: no growth then.
    pub app_limited_fraction: f64,
    /// STEADY/CONVERGED: a material throughput move (fraction of the
    /// reference) that sends the controller back to work.
    pub change_throughput: f64,
    /// STEADY/CONVERGED: a throughput rise (fraction of the reference) that
    /// sends the controller back to probing (the device or a neighbour
    /// freed capacity). Both thresholds are raised automatically when the
    /// windows hold too few completions for them to be above the noise.
    pub change_rise: f64,
    /// STEADY/CONVERGED: a material P99 rise (P99 > reference × (1 + this)).
    pub change_p99: f64,
    /// Windows a material change must persist for (also the number of windows
    /// that make the reference).
    pub change_windows: u32,
    /// EWMA weight of a new window in STEADY/CONVERGED.
    pub smoothing: f64,
    /// Inner loop: aim at this many SQEs per `io_uring_enter`.
    pub target_sqes_per_enter: u32,
    /// Inner loop: the batch threshold stays ≤ `limit × this` (≥ 1).
    pub max_batch_fraction: f64,
    /// PROBING: when the plateau shows no knee inside the fitted windows
    /// (flat throughout: the knee is at or below where they start), walk the
    /// limit down by `probe_down_factor` per window while throughput holds,
    /// and keep the last level that held.
    pub probe_down: bool,
    /// Probing down: multiply the limit by this per window.
    pub probe_down_factor: f64,
    /// Probing down: throughput "holds" while within this fraction of the
    /// plateau throughput.
    pub probe_down_tolerance: f64,
    /// Latency guard: the P99 is judged over the last this-many non-empty
    /// ticks since the limit last went down (extended back until they hold
    /// `min_window_completions`), so one short device stall in a tick does
    /// not look like congestion while a sustained rise shows at once.
    pub guard_ticks: u32,
    /// STEADY/CONVERGED: probe upward again after this long without a change
    /// (ms; 0 = never), since capacity that frees up at the current depth
    /// often shows no throughput change until the limit grows. A re-probe
    /// that finds nothing returns to the phase it left.
    pub reprobe_ms: u64,
    /// A re-probe grows the limit by this fraction per window (for as long
    /// as throughput follows), keeping the excursion small.
    pub reprobe_step: f64,
    /// Noisy devices: a PROBING window is judged only once the relative
    /// standard error of its throughput, from the measured tick-to-tick
    /// noise, is at most this (more ticks are accumulated until then)…
    pub probe_window_noise: f64,
    /// …or once it spans this many ticks, whichever comes first.
    pub probe_window_max_ticks: u32,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            tick_ms: 10,
            baseline_ticks: 10,
            min_window_completions: 20,
            min_window_ticks: 1,
            probe_window_completions: 200,
            additive_increase: 1,
            slow_start: true,
            slow_start_factor: 1.25,
            slow_start_exit_efficiency: 0.5,
            efficiency_epsilon: 0.2,
            efficiency_window: 8,
            efficiency_min_span: 0.08,
            backoff_factor: 0.8,
            latency_guard_mult: 10.0,
            p99_ceiling_us: 10_000,
            settle_ms: 100,
            converge_ms: 5_000,
            app_limited_fraction: 0.75,
            change_throughput: 0.25,
            change_rise: 0.10,
            change_p99: 1.0,
            change_windows: 3,
            smoothing: 0.3,
            target_sqes_per_enter: 8,
            max_batch_fraction: 0.25,
            probe_down: true,
            probe_down_factor: 0.95,
            probe_down_tolerance: 0.04,
            guard_ticks: 10,
            reprobe_ms: 2_000,
            reprobe_step: 0.10,
            probe_window_noise: 0.02,
            probe_window_max_ticks: 10,
        }
    }
}

impl AimdConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        fn frac(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
            if v.is_finite() && v > lo && v < hi {
                Ok(())
            } else {
                Err(format!("aimd: {name} = {v} must be in ({lo}, {hi})"))
            }
        }
        if self.tick_ms == 0 {
            return Err("aimd: tick_ms must be > 0".into());
        }
        if self.additive_increase == 0 {
            return Err("aimd: additive_increase must be > 0".into());
        }
        if self.efficiency_window < 2 {
            return Err("aimd: efficiency_window must be >= 2".into());
        }
        frac("slow_start_factor", self.slow_start_factor, 1.0, 100.0)?;
        frac(
            "slow_start_exit_efficiency",
            self.slow_start_exit_efficiency,
            0.0,
            1.0,
        )?;
        frac("efficiency_epsilon", self.efficiency_epsilon, 0.0, 1.0)?;
        frac("efficiency_min_span", self.efficiency_min_span, 0.0, 10.0)?;
        frac("backoff_factor", self.backoff_factor, 0.0, 1.0)?;
        frac("latency_guard_mult", self.latency_guard_mult, 1.0, f64::MAX)?;
        frac(
            "app_limited_fraction",
            self.app_limited_fraction,
            0.0,
            1.0 + 1e-9,
        )?;
        frac("change_throughput", self.change_throughput, 0.0, 1.0)?;
        frac("change_rise", self.change_rise, 0.0, f64::MAX)?;
        frac("reprobe_step", self.reprobe_step, 0.0, 100.0)?;
        frac("change_p99", self.change_p99, 0.0, f64::MAX)?;
        frac("smoothing", self.smoothing, 0.0, 1.0 + 1e-9)?;
        frac(
            "max_batch_fraction",
            self.max_batch_fraction,
            0.0,
            1.0 + 1e-9,
        )?;
        frac("probe_down_factor", self.probe_down_factor, 0.0, 1.0)?;
        frac("probe_down_tolerance", self.probe_down_tolerance, 0.0, 1.0)?;
        if self.guard_ticks == 0 {
            return Err("aimd: guard_ticks must be >= 1".into());
        }
        frac("probe_window_noise", self.probe_window_noise, 0.0, f64::MAX)?;
        if self.probe_window_max_ticks == 0 {
            return Err("aimd: probe_window_max_ticks must be >= 1".into());
        }
        Ok(())
    }

    /// A copy with unusable values replaced by the defaults (so
    /// [`Aimd::new`] never panics on bad input; `validate` reports them).
    fn sanitized(&self) -> AimdConfig {
        let d = AimdConfig::default();
        let mut c = self.clone();
        let ok = |v: f64, lo: f64, hi: f64| v.is_finite() && v > lo && v < hi;
        if c.tick_ms == 0 {
            c.tick_ms = d.tick_ms;
        }
        if c.additive_increase == 0 {
            c.additive_increase = d.additive_increase;
        }
        if c.efficiency_window < 2 {
            c.efficiency_window = d.efficiency_window;
        }
        macro_rules! fix {
            ($f:ident, $lo:expr, $hi:expr) => {
                if !ok(c.$f, $lo, $hi) {
                    c.$f = d.$f;
                }
            };
        }
        fix!(slow_start_factor, 1.0, 100.0);
        fix!(slow_start_exit_efficiency, 0.0, 1.0);
        fix!(efficiency_epsilon, 0.0, 1.0);
        fix!(efficiency_min_span, 0.0, 10.0);
        fix!(backoff_factor, 0.0, 1.0);
        fix!(latency_guard_mult, 1.0, f64::MAX);
        fix!(app_limited_fraction, 0.0, 1.0 + 1e-9);
        fix!(change_throughput, 0.0, 1.0);
        fix!(change_rise, 0.0, f64::MAX);
        fix!(reprobe_step, 0.0, 100.0);
        fix!(change_p99, 0.0, f64::MAX);
        fix!(smoothing, 0.0, 1.0 + 1e-9);
        fix!(max_batch_fraction, 0.0, 1.0 + 1e-9);
        fix!(probe_down_factor, 0.0, 1.0);
        fix!(probe_down_tolerance, 0.0, 1.0);
        if c.guard_ticks == 0 {
            c.guard_ticks = d.guard_ticks;
        }
        fix!(probe_window_noise, 0.0, f64::MAX);
        if c.probe_window_max_ticks == 0 {
            c.probe_window_max_ticks = d.probe_window_max_ticks;
        }
        c
    }
}

/// The phases of [`Aimd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AimdPhase {
    /// Warm-up at the initial limit: measures the baseline P99.
    Baseline,
    /// Growing the limit while throughput still grows with it.
    Probing,
    /// The limit was just cut (reported for one tick).
    Backoff,
    /// Holding after a change while the device settles.
    Settling,
    /// Holding; watching for material changes.
    Steady,
    /// Steady for `converge_ms`.
    Converged,
}

impl AimdPhase {
    /// The lower-case name used in states and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            AimdPhase::Baseline => "baseline",
            AimdPhase::Probing => "probing",
            AimdPhase::Backoff => "backoff",
            AimdPhase::Settling => "settling",
            AimdPhase::Steady => "steady",
            AimdPhase::Converged => "converged",
        }
    }
}

/// One judged window at one limit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    limit: u32,
    /// Completions in the window.
    c: u64,
    /// Measured in-flight (Little's law), > 0.
    n: f64,
    /// Throughput (completions/s), > 0.
    x: f64,
    /// Relative standard error of `x` (measured tick noise, at least the
    /// counting noise 1/√c).
    se: f64,
}

/// State of probing down.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Drain {
    /// Plateau throughput to hold.
    x_ref: f64,
    /// Last limit that held it: where the walk ends when throughput falls.
    last_good: u32,
    /// Throughput of a first window that dipped below the tolerance at the
    /// current limit (a second window confirms or clears it).
    doubt: Option<f64>,
}

/// Most points kept for the efficiency fit.
const MAX_POINTS: usize = 64;

/// Most ticks the latency guard's window may span (when ticks are sparse).
pub const MAX_GUARD_TICKS: usize = 256;

/// The latency guard's window: the histograms of the last `keep` non-empty
/// ticks, extended back until they hold `min` completions (at most
/// [`MAX_GUARD_TICKS`]). Cleared whenever the limit goes down.
#[derive(Clone, Debug, Default)]
struct Guard {
    /// Set when the limit went down: judge again only once the window
    /// holds `guard_ticks` ticks at the new limit (one cut per window of
    /// evidence, so a device stall does not cut the limit tick after tick).
    after_cut: bool,
    ticks: VecDeque<HistogramSnapshot>,
    /// Running bucket sums of `ticks` (empty or `NUM_BUCKETS` long).
    counts: Vec<u64>,
    completions: u64,
}

impl Guard {
    fn push(&mut self, h: &HistogramSnapshot, keep: usize, min: u64) {
        if h.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; NUM_BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(h.counts()) {
            *a += *b;
        }
        self.ticks.push_back(h.clone());
        self.completions += h.count();
        while self.ticks.len() > keep.max(1) {
            let front = self.ticks.front().map_or(0, |f| f.count());
            if self.completions - front < min && self.ticks.len() <= MAX_GUARD_TICKS {
                break;
            }
            if let Some(f) = self.ticks.pop_front() {
                for (a, b) in self.counts.iter_mut().zip(f.counts()) {
                    *a -= *b;
                }
                self.completions -= f.count();
            }
        }
    }

    /// The P99 of every tick in the window (the same value as merging them).
    fn p99(&self, min: u64) -> Option<u64> {
        self.percentile(min, 0.99)
    }

    fn percentile(&self, min: u64, q: f64) -> Option<u64> {
        if self.completions < min.max(1) {
            return None;
        }
        let lo = self.ticks.iter().map(|t| t.min_ns()).min().unwrap_or(0);
        let hi = self.ticks.iter().map(|t| t.max_ns()).max().unwrap_or(0);
        Some(percentile_of(&self.counts, self.completions, lo, hi, q))
    }

    fn clear(&mut self) {
        self.ticks.clear();
        self.counts.clear();
        self.completions = 0;
    }
}

/// The AIMD controller. See the module docs and `docs/controllers.md`.
#[derive(Clone, Debug)]
pub struct Aimd {
    cfg: AimdConfig,
    limits: Limits,
    ceiling_ns: u64,
    limit: u32,
    batch: u32,
    phase: AimdPhase,
    reason: String,
    /// Ticks accumulated into the window being built.
    pending: Option<Sample>,
    pending_ticks: u32,
    // BASELINE
    baseline_windows: u32,
    baseline_acc: Sample,
    baseline_p99: Option<u64>,
    // PROBING
    slow_start: bool,
    prev_point: Option<Point>,
    points: VecDeque<Point>,
    /// Highest limit probing may reach (set by a latency backoff).
    cap: Option<u32>,
    /// The latency guard's window (histograms of recent non-empty ticks).
    guard: Guard,
    /// Its P99 as of the last non-empty tick.
    guard_p99: Option<u64>,
    /// Probing down, when active.
    drain: Option<Drain>,
    /// Time in STEADY/CONVERGED since the last change or re-probe.
    hold_elapsed: Duration,
    /// A periodic re-probe's origin: (phase, limit, time in that phase).
    resume: Option<(AimdPhase, u32, Duration)>,
    // SETTLING / STEADY / CONVERGED
    phase_elapsed: Duration,
    after_settle: AimdPhase,
    windows_in_phase: u32,
    ewma_x: f64,
    ewma_p99: f64,
    reference: Option<(f64, f64)>,
    down_count: u32,
    up_count: u32,
    /// Measured relative variance of one tick's throughput (EWMA over pairs
    /// of consecutive ticks at the same limit) and how many pairs fed it.
    tick_noise: f64,
    noise_pairs: u32,
    /// The previous non-idle tick: (limit in force during it, its rate).
    last_tick: Option<(u32, f64)>,
    /// Ticks in the window being judged.
    judged_ticks: u32,
}

impl Aimd {
    /// An AIMD controller with `cfg` (bad values fall back to defaults; use
    /// [`AimdConfig::validate`] to report them) within `limits`.
    pub fn new(cfg: AimdConfig, limits: Limits) -> Self {
        let cfg = cfg.sanitized();
        let limits = limits.normalized();
        let limit = limits.initial_in_flight;
        let mut a = Aimd {
            ceiling_ns: cfg.p99_ceiling_us.saturating_mul(1000),
            limits,
            limit,
            batch: 1,
            phase: AimdPhase::Baseline,
            reason: format!("warming up at the initial limit {limit}"),
            pending: None,
            pending_ticks: 0,
            baseline_windows: 0,
            baseline_acc: Sample::default(),
            baseline_p99: None,
            slow_start: cfg.slow_start,
            prev_point: None,
            points: VecDeque::new(),
            cap: None,
            guard: Guard::default(),
            guard_p99: None,
            drain: None,
            hold_elapsed: Duration::ZERO,
            resume: None,
            phase_elapsed: Duration::ZERO,
            after_settle: AimdPhase::Steady,
            windows_in_phase: 0,
            ewma_x: 0.0,
            ewma_p99: 0.0,
            reference: None,
            down_count: 0,
            up_count: 0,
            tick_noise: 0.0,
            noise_pairs: 0,
            last_tick: None,
            judged_ticks: 1,
            cfg,
        };
        a.batch = a.max_batch().min(a.cfg.target_sqes_per_enter.max(1));
        a
    }

    /// The configuration in use.
    pub fn config(&self) -> &AimdConfig {
        &self.cfg
    }

    /// The current phase.
    pub fn phase(&self) -> AimdPhase {
        self.phase
    }

    /// The baseline P99 (ns) once BASELINE has finished.
    pub fn baseline_p99_ns(&self) -> Option<u64> {
        self.baseline_p99
    }

    /// The latency guard's current P99 (ns): over the last `guard_ticks`
    /// non-empty ticks since the limit last went down; `None` while they
    /// hold fewer than `min_window_completions`.
    pub fn guard_p99_ns(&self) -> Option<u64> {
        self.guard_p99
    }

    /// The latency (ns) above which the guard's P99 is a violation.
    pub fn latency_threshold_ns(&self) -> u64 {
        let mut t = self.ceiling_ns.max(1);
        if let Some(b) = self.baseline_p99 {
            let g = (b.max(1_000) as f64 * self.cfg.latency_guard_mult).min(u64::MAX as f64) as u64;
            t = t.min(g);
        }
        t
    }

    fn max_batch(&self) -> u32 {
        ((self.limit as f64 * self.cfg.max_batch_fraction) as u32).max(1)
    }

    fn decision(&self) -> Decision {
        Decision {
            in_flight_limit: self.limit,
            batch_threshold: clamp_batch(self.batch.min(self.max_batch()), self.limit),
        }
    }

    fn set_limit(&mut self, v: u32) {
        let old = self.limit;
        self.limit = self.limits.clamp(v);
        if self.limit < old {
            // Latency evidence gathered at a higher limit is stale now.
            self.guard.clear();
            self.guard.after_cut = true;
        }
        self.batch = self.batch.clamp(1, self.max_batch());
    }

    fn enter(&mut self, phase: AimdPhase, reason: String) {
        self.drain = None;
        if !matches!(phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed = Duration::ZERO;
        }
        if phase == AimdPhase::Backoff {
            self.resume = None;
        }
        self.phase = phase;
        self.reason = reason;
        self.phase_elapsed = Duration::ZERO;
        self.windows_in_phase = 0;
        self.pending = None;
        self.pending_ticks = 0;
        if matches!(phase, AimdPhase::Settling) {
            self.reference = None;
            self.down_count = 0;
            self.up_count = 0;
            self.ewma_x = 0.0;
            self.ewma_p99 = 0.0;
        }
    }

    fn settle(&mut self, next: AimdPhase, reason: String) {
        self.after_settle = next;
        self.enter(AimdPhase::Settling, reason);
    }

    fn app_limited(&self, w: &Sample) -> bool {
        w.backlog == 0
            && (w.in_flight_peak as f64) < self.limit as f64 * self.cfg.app_limited_fraction
    }

    fn point(&self, w: &Sample) -> Point {
        let x = w.iops().max(1e-9);
        let n = if w.in_flight_avg.is_finite() && w.in_flight_avg > 0.0 {
            w.in_flight_avg
        } else if w.in_flight_peak > 0 {
            w.in_flight_peak as f64
        } else {
            self.limit as f64
        };
        Point {
            limit: self.limit,
            c: w.completions,
            n,
            x,
            se: self.window_se(w.completions, self.judged_ticks),
        }
    }

    /// Relative standard error of the throughput of a window of `ticks`
    /// ticks holding `c` completions: the measured tick noise averaged over
    /// the ticks, never below the counting noise.
    fn window_se(&self, c: u64, ticks: u32) -> f64 {
        let counting = 1.0 / (c.max(1) as f64);
        (self.tick_noise / f64::from(ticks.max(1)))
            .max(counting)
            .sqrt()
    }

    /// Ticks a PROBING window needs so that the measured tick noise
    /// averages down to `probe_window_noise` (at most
    /// `probe_window_max_ticks`).
    fn probe_ticks_needed(&self) -> u32 {
        let target = self.cfg.probe_window_noise * self.cfg.probe_window_noise;
        let k = (self.tick_noise / target).ceil();
        let k = if k.is_finite() { k.min(1e6) as u32 } else { 1 };
        k.clamp(
            self.cfg.min_window_ticks.max(1),
            self.cfg
                .probe_window_max_ticks
                .max(self.cfg.min_window_ticks.max(1)),
        )
    }

    /// Tick-noise estimate: the relative variance of one tick's rate, from
    /// consecutive non-idle ticks that both ran at the same limit
    /// (`E[(r₁ − r₂)²] / 2`, relative to their mean). Empty ticks count:
    /// a device that completes nothing for a tick is exactly the noise
    /// the windows must average out.
    fn observe_noise(&mut self, sample: &Sample, in_force: u32, idle: bool) {
        let secs = sample.interval.as_secs_f64();
        if idle || secs <= 0.0 || !secs.is_finite() {
            self.last_tick = None;
            return;
        }
        let r = sample.completions as f64 / secs;
        if let Some((l, r0)) = self.last_tick {
            let m = (r + r0) / 2.0;
            if l == in_force && m > 0.0 {
                let d = (r - r0) / m;
                let q = (d * d / 2.0).min(2.0);
                self.noise_pairs = self.noise_pairs.saturating_add(1);
                let a = self.cfg.smoothing.max(1.0 / f64::from(self.noise_pairs));
                self.tick_noise += a * (q - self.tick_noise);
            }
        }
        self.last_tick = Some((in_force, r));
    }

    /// Multiplicative decrease (always strictly lower unless at the minimum).
    fn backoff(&mut self, p99: u64, threshold: u64, why: &str) {
        let old = self.limit;
        self.cut();
        // Probing may come back up to just below the limit that violated.
        self.cap = Some(old.saturating_sub(1).max(self.limit));
        let next = if self.baseline_p99.is_none() {
            AimdPhase::Baseline
        } else {
            AimdPhase::Probing
        };
        self.points.clear();
        self.prev_point = None;
        self.slow_start = false;
        self.after_settle = next;
        self.enter(
            AimdPhase::Backoff,
            format!(
                "{why}: P99 {} µs > {} µs; limit {old} -> {}",
                p99 / 1000,
                threshold / 1000,
                self.limit
            ),
        );
    }

    /// Probing step on a judged window.
    fn probe(&mut self, w: &Sample) {
        if self.app_limited(w) {
            self.reason = format!(
                "app-limited: peak in-flight {} of limit {}, no backlog; holding",
                w.in_flight_peak, self.limit
            );
            return;
        }
        let p = self.point(w);
        if let Some(dr) = self.drain {
            self.probe_down_step(p, dr);
            return;
        }
        let top = self.cap.unwrap_or(u32::MAX).min(self.limits.max_in_flight);
        if self.slow_start {
            if let Some(prev) = self.prev_point {
                if prev.limit < p.limit {
                    let dn = (p.n / prev.n).ln();
                    let dx = (p.x / prev.x).ln();
                    let eff = if dn > self.cfg.efficiency_min_span / 4.0 {
                        dx / dn
                    } else {
                        0.0 // in-flight did not follow the limit: no gain
                    };
                    if eff < self.cfg.slow_start_exit_efficiency {
                        self.points.push_back(p);
                        let pts = self.points.make_contiguous();
                        let (knee, rose) = slow_start_knee(pts, prev.limit);
                        let x_ref = pts.iter().map(|p| p.x).sum::<f64>() / pts.len() as f64;
                        self.slow_start = false;
                        self.set_limit(knee);
                        self.points.clear();
                        self.prev_point = None;
                        if let Some((_, l0, _)) = self.resume.filter(|_| !rose) {
                            // A periodic re-probe that found nothing: back to
                            // where it started (no probing down again).
                            self.set_limit(l0);
                            self.settle(
                                AimdPhase::Steady,
                                format!(
                                    "re-probe: no gain from {} to {} (efficiency {eff:.2}); back to {}",
                                    prev.limit, p.limit, self.limit
                                ),
                            );
                            return;
                        }
                        if !rose && self.cfg.probe_down {
                            self.start_probe_down(
                                x_ref,
                                format!("flat from the first step ({} to {})", prev.limit, p.limit),
                            );
                            return;
                        }
                        self.reason = format!(
                            "slow start ended: efficiency {eff:.2} from {} to {}; knee estimate {knee}, probing +{} from {}",
                            prev.limit, p.limit, self.cfg.additive_increase, self.limit
                        );
                        return;
                    }
                }
            }
            self.prev_point = Some(p);
            self.points.push_back(p);
            while self.points.len() > MAX_POINTS {
                self.points.pop_front();
            }
            if self.limit >= top {
                self.reached_top(top);
                return;
            }
            let factor = if self.resume.is_some() {
                1.0 + self.cfg.reprobe_step
            } else {
                // On a noisy device a ×1.25 step is lost in the windows'
                // noise: step far enough that a scaling device shows a
                // throughput change of two standard errors of the
                // difference above the exit efficiency; at most three
                // ordinary steps at once.
                let need = 2.0 * std::f64::consts::SQRT_2 * p.se
                    / (1.0 - self.cfg.slow_start_exit_efficiency).max(0.1);
                let f = self.cfg.slow_start_factor;
                f.max(need.exp()).min(f.powi(3))
            };
            let grown = ((self.limit as f64) * factor).ceil() as u32;
            let next = grown
                .max(self.limit.saturating_add(self.cfg.additive_increase))
                .min(top);
            let old = self.limit;
            self.set_limit(next);
            self.reason = format!("slow start: {old} -> {}", self.limit);
            return;
        }

        if self.points.back().is_some_and(|b| b.limit == p.limit) {
            self.points.pop_back();
        }
        self.points.push_back(p);
        while self.points.len() > MAX_POINTS {
            self.points.pop_front();
        }
        if let Some((eff, from)) = self.efficiency() {
            if eff < self.cfg.efficiency_epsilon {
                let pts: Vec<Point> = self.points.iter().skip(from).copied().collect();
                let knee = hinge_knee(&pts).min(self.limit);
                let old = self.limit;
                self.set_limit(knee);
                self.points.clear();
                if self.cfg.probe_down {
                    // Refine downwards: on a soft knee the plateau creeps up
                    // and the fitted knee sits late.
                    let flat: Vec<f64> = pts
                        .iter()
                        .filter(|p| p.limit >= knee)
                        .map(|p| p.x)
                        .collect();
                    let x_ref = flat.iter().sum::<f64>() / flat.len().max(1) as f64;
                    self.start_probe_down(
                        x_ref,
                        format!(
                            "plateau: efficiency {eff:.2} over limits {}..{}, knee at {knee}",
                            pts.first().map_or(0, |p| p.limit),
                            pts.last().map_or(0, |p| p.limit),
                        ),
                    );
                    return;
                }
                self.settle(
                    AimdPhase::Steady,
                    format!(
                        "plateau: efficiency {eff:.2} over limits {}..{}; knee at {knee}, limit {old} -> {}",
                        pts.first().map_or(0, |p| p.limit),
                        pts.last().map_or(0, |p| p.limit),
                        self.limit
                    ),
                );
                return;
            }
        }
        if self.limit >= top {
            self.reached_top(top);
            return;
        }
        let old = self.limit;
        self.set_limit(
            self.limit
                .saturating_add(self.cfg.additive_increase)
                .min(top),
        );
        self.reason = format!("probing: {old} -> {}", self.limit);
    }

    /// Throughput was flat from the first probe: the knee may be lower.
    fn start_probe_down(&mut self, x_ref: f64, why: String) {
        let old = self.limit;
        if old <= self.limits.min_in_flight {
            self.settle(AimdPhase::Steady, format!("{why}; at the minimum {old}"));
            return;
        }
        self.cut_by(self.cfg.probe_down_factor);
        self.drain = Some(Drain {
            x_ref,
            last_good: old,
            doubt: None,
        });
        self.reason = format!("{why}; probing down: {old} -> {}", self.limit);
    }

    /// One probing-down window at the current limit. A window below the
    /// tolerance is confirmed by a second one (their mean decides), so one
    /// noisy window neither stops the walk nor lets it run on.
    fn probe_down_step(&mut self, p: Point, dr: Drain) {
        let old = self.limit;
        let floor = dr.x_ref * (1.0 - self.cfg.probe_down_tolerance);
        let x = match dr.doubt {
            Some(first) => (first + p.x) / 2.0,
            None if p.x < floor => {
                self.drain = Some(Drain {
                    doubt: Some(p.x),
                    ..dr
                });
                self.reason = format!(
                    "probing down: throughput dipped {:.1} % at {old}; confirming",
                    (1.0 - p.x / dr.x_ref) * 100.0
                );
                return;
            }
            None => p.x,
        };
        // When the counting noise (±1/√n) exceeds the tolerance, a window
        // cannot tell "held" from "fell a little": going lower needs that
        // much more margin, else the walk stops here.
        let sigma = p.se;
        let margin = dr.x_ref * (sigma - self.cfg.probe_down_tolerance).max(0.0);
        if x >= floor && x < floor + margin {
            self.settle(
                AimdPhase::Steady,
                format!(
                    "probing down: throughput at {old} within {:.1} % of the plateau, too close to the noise to go lower",
                    (1.0 - x / dr.x_ref) * 100.0
                ),
            );
        } else if x >= floor {
            if old <= self.limits.min_in_flight {
                self.settle(
                    AimdPhase::Steady,
                    format!("probing down: throughput held down to the minimum {old}"),
                );
                return;
            }
            self.cut_by(self.cfg.probe_down_factor);
            self.drain = Some(Drain {
                x_ref: dr.x_ref,
                last_good: old,
                doubt: None,
            });
            self.reason = format!(
                "probing down: throughput held at {old}; {old} -> {}",
                self.limit
            );
        } else {
            self.set_limit(dr.last_good);
            self.settle(
                AimdPhase::Steady,
                format!(
                    "probing down: throughput fell {:.1} % at {old}; back to {}",
                    (1.0 - x / dr.x_ref) * 100.0,
                    self.limit
                ),
            );
        }
    }

    /// Multiplicative decrease by `backoff_factor`: strictly lower unless
    /// at the minimum.
    fn cut(&mut self) {
        self.cut_by(self.cfg.backoff_factor);
    }

    /// Multiplicative decrease by `f` (< 1): strictly lower unless at the minimum.
    fn cut_by(&mut self, f: f64) {
        let old = self.limit;
        let cut = ((old as f64) * f).floor() as u32;
        self.set_limit(cut.min(old.saturating_sub(1)));
    }

    fn reached_top(&mut self, top: u32) {
        let what = if Some(top) == self.cap && top < self.limits.max_in_flight {
            "the limit that last violated the latency target, minus one"
        } else {
            "the maximum in-flight limit"
        };
        self.points.clear();
        self.settle(
            AimdPhase::Steady,
            format!("probing reached {what} ({top}); holding"),
        );
    }

    /// Log-log slope of throughput against measured in-flight over the most
    /// recent points: at least `efficiency_window` of them and enough to span
    /// `efficiency_min_span`. Returns the slope and the index of the first
    /// point used; `None` while there is not enough data.
    fn efficiency(&self) -> Option<(f64, usize)> {
        let need = self.cfg.efficiency_window as usize;
        let len = self.points.len();
        if len < need {
            return None;
        }
        let mut from = len - need;
        loop {
            let (mut lo, mut hi) = (f64::MAX, f64::MIN);
            let (mut llo, mut lhi) = (u32::MAX, 0u32);
            for p in self.points.iter().skip(from) {
                lo = lo.min(p.n);
                hi = hi.max(p.n);
                llo = llo.min(p.limit);
                lhi = lhi.max(p.limit);
            }
            let span = (hi / lo).ln();
            let limit_span = (lhi as f64 / llo.max(1) as f64).ln();
            if span >= self.cfg.efficiency_min_span {
                return Some((log_log_slope(self.points.iter().skip(from)), from));
            }
            if limit_span >= self.cfg.efficiency_min_span
                && span < self.cfg.efficiency_min_span / 4.0
            {
                // The limit grew but measured in-flight did not follow:
                // more limit buys nothing.
                return Some((0.0, from));
            }
            if from == 0 {
                return None;
            }
            from -= 1;
        }
    }

    /// STEADY / CONVERGED / SETTLING bookkeeping on a judged window.
    fn watch(&mut self, w: &Sample) {
        let x = w.iops();
        // The guard window's P99: robust to a single stalled tick.
        let p99 = self.guard_p99.unwrap_or_else(|| w.latency.p99_ns()) as f64;
        self.windows_in_phase += 1;
        if self.phase == AimdPhase::Settling && self.windows_in_phase == 1 {
            return; // the first window after a change is a transient
        }
        let a = self.cfg.smoothing;
        if self.ewma_x <= 0.0 {
            self.ewma_x = x;
            self.ewma_p99 = p99;
        } else {
            self.ewma_x = a * x + (1.0 - a) * self.ewma_x;
            self.ewma_p99 = a * p99 + (1.0 - a) * self.ewma_p99;
        }
        let Some((rx, rp)) = self.reference else {
            let need =
                self.cfg.change_windows.max(1) + u32::from(self.phase == AimdPhase::Settling);
            if self.windows_in_phase >= need {
                self.reference = Some((self.ewma_x, self.ewma_p99));
            }
            return;
        };
        if self.phase == AimdPhase::Settling || self.app_limited(w) {
            self.down_count = 0;
            self.up_count = 0;
            return;
        }
        // Counting noise of the smoothed throughput: a window of c
        // completions is ±1/√c; the EWMA shrinks that by √(a/(2-a)). Demand
        // four of those before calling a move material.
        let noise = 4.0 * (a / (2.0 - a)).sqrt() / (w.completions.max(1) as f64).sqrt();
        let fell = self.ewma_x < rx * (1.0 - self.cfg.change_throughput.max(noise));
        let slower = self.ewma_p99 > rp * (1.0 + self.cfg.change_p99);
        let rose = self.ewma_x > rx * (1.0 + self.cfg.change_rise.max(noise));
        self.down_count = if fell || slower {
            self.down_count + 1
        } else {
            0
        };
        self.up_count = if rose { self.up_count + 1 } else { 0 };
        let n = self.cfg.change_windows.max(1);
        if self.down_count >= n {
            let what = if fell {
                format!(
                    "throughput fell {:.0} % below the steady reference",
                    (1.0 - self.ewma_x / rx) * 100.0
                )
            } else {
                format!(
                    "P99 rose to {:.1}x the steady reference",
                    self.ewma_p99 / rp.max(1.0)
                )
            };
            let old = self.limit;
            self.cut();
            self.cap = None;
            self.points.clear();
            self.prev_point = None;
            self.slow_start = false;
            self.after_settle = AimdPhase::Probing;
            self.enter(
                AimdPhase::Backoff,
                format!("{what}; limit {old} -> {}, re-probing", self.limit),
            );
        } else if self.up_count >= n {
            let gain = (self.ewma_x / rx - 1.0) * 100.0;
            self.cap = None;
            self.resume = None;
            self.points.clear();
            self.prev_point = None;
            self.slow_start = self.cfg.slow_start;
            self.enter(
                AimdPhase::Probing,
                format!("throughput rose {gain:.0} % above the steady reference; re-probing"),
            );
        }
    }

    /// Inner loop: nudge the batch threshold toward the target SQEs/enter.
    fn tune_batch(&mut self, w: &Sample) {
        let max = self.max_batch();
        if w.enter_calls > 0 {
            let spe = w.sqes_per_enter();
            let target = self.cfg.target_sqes_per_enter.max(1) as f64;
            if spe < target * 0.75 && !self.app_limited(w) {
                self.batch = self.batch.saturating_add(1);
            } else if spe > target * 1.25 {
                self.batch = self.batch.saturating_sub(1);
            }
        }
        self.batch = self.batch.clamp(1, max);
    }

    /// Phase timers (any tick, empty or not: they never change the limit).
    fn advance_time(&mut self, interval: Duration) {
        self.phase_elapsed += interval;
        match self.phase {
            AimdPhase::Settling
                if self.phase_elapsed >= Duration::from_millis(self.cfg.settle_ms) =>
            {
                let next = self.after_settle;
                let reason = match next {
                    AimdPhase::Steady => format!("settled at {}", self.limit),
                    AimdPhase::Baseline => {
                        format!("settled; warming up again at {}", self.limit)
                    }
                    _ => format!(
                        "settled at {}; probing +{}",
                        self.limit, self.cfg.additive_increase
                    ),
                };
                let (reference, ewx, ewp) = (self.reference, self.ewma_x, self.ewma_p99);
                let mut next = next;
                let mut reason = reason;
                let mut restore = None;
                if let Some((ph, l0, el)) = self.resume.take() {
                    if next == AimdPhase::Steady && self.limit.abs_diff(l0) <= (l0 / 10).max(1) {
                        next = ph;
                        restore = Some(el);
                        reason = format!(
                            "re-probe found no better limit; {} at {}",
                            ph.as_str(),
                            self.limit
                        );
                    }
                }
                self.enter(next, reason);
                if let Some(el) = restore {
                    self.phase_elapsed = el;
                }
                if matches!(next, AimdPhase::Steady | AimdPhase::Converged) {
                    // Keep what settling measured as the steady reference.
                    self.reference = reference;
                    self.ewma_x = ewx;
                    self.ewma_p99 = ewp;
                    self.windows_in_phase = self.cfg.change_windows;
                }
                if next == AimdPhase::Baseline {
                    self.baseline_windows = 0;
                    self.baseline_acc = Sample::default();
                }
            }
            AimdPhase::Steady
                if self.phase_elapsed >= Duration::from_millis(self.cfg.converge_ms) =>
            {
                let (reference, ewx, ewp, w) = (
                    self.reference,
                    self.ewma_x,
                    self.ewma_p99,
                    self.windows_in_phase,
                );
                self.enter(
                    AimdPhase::Converged,
                    format!("stable at {} for {} ms", self.limit, self.cfg.converge_ms),
                );
                self.reference = reference;
                self.ewma_x = ewx;
                self.ewma_p99 = ewp;
                self.windows_in_phase = w;
            }
            _ => {}
        }
        if matches!(self.phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed += interval;
            if self.cfg.reprobe_ms > 0
                && self.hold_elapsed >= Duration::from_millis(self.cfg.reprobe_ms)
            {
                self.resume = Some((self.phase, self.limit, self.phase_elapsed));
                self.hold_elapsed = Duration::ZERO;
                self.points.clear();
                self.prev_point = None;
                self.slow_start = self.cfg.slow_start;
                let from = self.phase.as_str();
                self.enter(
                    AimdPhase::Probing,
                    format!(
                        "periodic re-probe from {from} at {} after {} ms",
                        self.limit, self.cfg.reprobe_ms
                    ),
                );
            }
        }
    }
}

/// Least-squares slope of ln x against ln n.
fn log_log_slope<'a>(pts: impl Iterator<Item = &'a Point> + Clone) -> f64 {
    let k = pts.clone().count() as f64;
    if k < 2.0 {
        return 0.0;
    }
    let (mut su, mut sv) = (0.0, 0.0);
    for p in pts.clone() {
        su += p.n.ln();
        sv += p.x.ln();
    }
    let (mu, mv) = (su / k, sv / k);
    let (mut cov, mut var) = (0.0, 0.0);
    for p in pts {
        let du = p.n.ln() - mu;
        cov += du * (p.x.ln() - mv);
        var += du * du;
    }
    if var > 0.0 {
        cov / var
    } else {
        0.0
    }
}

/// Knee of a "rise then flat" curve: the limit K minimising the squared error
/// of `x ≈ a + b·min(limit, K)` over the points (ties: the smaller K). The
/// hinge must explain the data clearly better than a flat line (F statistic
/// above 10), else the data is flat and the knee is the lowest limit.
fn hinge_knee(pts: &[Point]) -> u32 {
    let lowest = pts.iter().map(|p| p.limit).min().unwrap_or(1);
    let m = pts.len() as f64;
    if pts.len() < 4 {
        return lowest;
    }
    let mx = pts.iter().map(|p| p.x).sum::<f64>() / m;
    let sse0: f64 = pts.iter().map(|p| (p.x - mx) * (p.x - mx)).sum();
    let mut best = (sse0, lowest);
    let mut cands: Vec<u32> = pts.iter().map(|p| p.limit).collect();
    cands.sort_unstable();
    cands.dedup();
    for &k in &cands {
        let u: Vec<f64> = pts.iter().map(|p| p.limit.min(k) as f64).collect();
        let mu = u.iter().sum::<f64>() / m;
        let (mut cov, mut var) = (0.0, 0.0);
        for (ui, p) in u.iter().zip(pts) {
            cov += (ui - mu) * (p.x - mx);
            var += (ui - mu) * (ui - mu);
        }
        if var <= 0.0 {
            continue;
        }
        let b = cov / var;
        if b <= 0.0 {
            continue; // falling with depth is not a knee
        }
        let sse: f64 = u
            .iter()
            .zip(pts)
            .map(|(ui, p)| {
                let e = p.x - (mx + b * (ui - mu));
                e * e
            })
            .sum();
        if sse < best.0 * (1.0 - 1e-12) {
            best = (sse, k);
        }
    }
    let (sse1, k) = best;
    if k == lowest || sse0 <= 0.0 {
        return lowest;
    }
    let f = (sse0 - sse1) / (sse1 / (m - 3.0)).max(f64::MIN_POSITIVE);
    if f > 10.0 {
        k
    } else {
        lowest
    }
}

/// Where slow start overshot to: the knee is estimated by extending the
/// last point that was clearly below the best throughput linearly (as if
/// throughput still scaled with depth) up to the best throughput, i.e.
/// Little's law at constant latency. Bounded by that point and by `prev`,
/// the last level that still scaled well. All flat: the lowest level.
/// The flag says whether any rise was seen.
fn slow_start_knee(pts: &[Point], prev: u32) -> (u32, bool) {
    let x_max = pts.iter().map(|p| p.x).fold(0.0, f64::max);
    let below = pts
        .iter()
        .rev()
        .find(|p| p.limit < prev && p.x < 0.97 * x_max);
    match below {
        Some(a) => {
            let k = (a.limit as f64 * x_max / a.x).round();
            ((k.min(prev as f64) as u32).max(a.limit), true)
        }
        None => (
            pts.iter().map(|p| p.limit).min().unwrap_or(prev).min(prev),
            false,
        ),
    }
}

impl Controller for Aimd {
    fn tick(&mut self, sample: &Sample) -> Decision {
        if self.phase == AimdPhase::Backoff {
            let next = self.after_settle;
            let reason = std::mem::take(&mut self.reason);
            self.settle(next, reason);
        }
        let phase_at_start = self.phase;
        let idle = sample.completions == 0 && sample.in_flight_peak == 0 && sample.backlog == 0;
        self.observe_noise(sample, self.limit, idle);
        if !idle {
            match &mut self.pending {
                Some(p) => p.accumulate(sample),
                None => self.pending = Some(sample.clone()),
            }
            self.pending_ticks += 1;
        }
        if sample.completions == 0 {
            // An empty window never changes the limit.
            self.advance_time(sample.interval);
            return self.decision();
        }

        // Latency guard: the P99 of the recent ticks since the last cut.
        let threshold = self.latency_threshold_ns();
        let min = self.cfg.min_window_completions.max(1);
        self.guard
            .push(&sample.latency, self.cfg.guard_ticks as usize, min);
        if self.guard.ticks.len() >= self.cfg.guard_ticks as usize {
            self.guard.after_cut = false;
        }
        self.guard_p99 = self.guard.p99(min);
        // Queueing (our depth) slows the body of the distribution too; a
        // device stall that holds every op in flight for a while only makes
        // a tail, and cutting the limit cannot shorten it (the stalled
        // share of ops is the same at any depth).
        let body = (threshold as f64 / self.cfg.latency_guard_mult) as u64;
        let queueing = self
            .guard
            .percentile(min, 0.95)
            .is_some_and(|p95| p95 > body);
        let judging = !self.guard.after_cut;
        if let Some(p99) = self
            .guard_p99
            .filter(|&p| p > threshold && queueing && judging)
        {
            let why = if p99 > self.ceiling_ns {
                "P99 above the ceiling"
            } else {
                "P99 above the baseline guard"
            };
            if self.limit > self.limits.min_in_flight {
                self.backoff(p99, threshold, why);
            } else {
                self.reason = format!(
                    "{why} ({} µs > {} µs) but already at the minimum limit {}",
                    p99 / 1000,
                    threshold / 1000,
                    self.limit
                );
                self.pending = None;
                self.pending_ticks = 0;
            }
            return self.decision();
        }

        let need = if self.phase == AimdPhase::Probing {
            min.max(self.cfg.probe_window_completions)
        } else {
            min
        };
        // Only PROBING compares windows with each other; a periodic
        // re-probe's first step stays one window of one tick.
        let need_ticks =
            if self.phase != AimdPhase::Probing || (self.resume.is_some() && self.slow_start) {
                self.cfg.min_window_ticks.max(1)
            } else {
                self.probe_ticks_needed()
            };
        let judged = self.pending.as_ref().is_some_and(|p| p.completions >= need)
            && self.pending_ticks >= need_ticks;
        if judged {
            let w = self.pending.take().unwrap_or_default();
            self.judged_ticks = self.pending_ticks;
            self.pending_ticks = 0;
            self.tune_batch(&w);
            match self.phase {
                AimdPhase::Baseline => {
                    self.baseline_acc.accumulate(&w);
                    self.baseline_windows += 1;
                    if self.baseline_windows >= self.cfg.baseline_ticks {
                        let acc = std::mem::take(&mut self.baseline_acc);
                        let p99 = acc.latency.p99_ns();
                        self.baseline_p99 = Some(self.baseline_p99.map_or(p99, |b| b.min(p99)));
                        self.slow_start = self.cfg.slow_start;
                        self.prev_point = None;
                        self.points.clear();
                        self.enter(
                            AimdPhase::Probing,
                            format!("baseline P99 {} µs at {}", p99 / 1000, self.limit),
                        );
                        let mut acc = acc;
                        // Judge the baseline as one window at the initial limit.
                        acc.backlog = acc.backlog.max(w.backlog);
                        self.judged_ticks = self.cfg.baseline_ticks.max(1);
                        self.probe(&acc);
                    } else {
                        self.reason = format!(
                            "warming up at {} ({}/{} windows)",
                            self.limit, self.baseline_windows, self.cfg.baseline_ticks
                        );
                    }
                }
                AimdPhase::Probing => self.probe(&w),
                AimdPhase::Settling | AimdPhase::Steady | AimdPhase::Converged => self.watch(&w),
                AimdPhase::Backoff => {}
            }
        } else if self.phase != AimdPhase::Backoff {
            self.reason = format!(
                "accumulating a window: {} completions in {} ticks so far (need {need} in {need_ticks})",
                self.pending.as_ref().map_or(0, |p| p.completions),
                self.pending_ticks
            );
        }
        // A phase entered on this tick starts its clock on the next one.
        if self.phase == phase_at_start {
            self.advance_time(sample.interval);
        }
        self.decision()
    }

    fn state(&self) -> ControllerState {
        ControllerState {
            name: "aimd".into(),
            phase: self.phase.as_str().into(),
            reason: self.reason.clone(),
        }
    }

    fn current(&self) -> Decision {
        self.decision()
    }

    fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.normalized();
        self.set_limit(self.limit);
        // A limit lowered by the caller is not the controller's own cut.
        self.guard.after_cut = false;
        self.batch = self.batch.clamp(1, self.max_batch());
        if let Some(c) = self.cap {
            self.cap = Some(self.limits.clamp(c));
        }
    }

    fn set_p99_ceiling(&mut self, ceiling: Duration) {
        self.ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX).max(1);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
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
        fn step(&mut self, f: impl Fn(u64, u32) -> Sample) -> Decision {
            self.t += 10;
            let s = f(self.t, self.c.current().in_flight_limit);
            self.c.tick(&s)
        }
        fn until(&mut self, phase: AimdPhase, max_ticks: u32, f: impl Fn(u64, u32) -> Sample) {
            for _ in 0..max_ticks {
                if self.c.phase() == phase {
                    return;
                }
                self.step(&f);
            }
            assert_eq!(self.c.phase(), phase, "{:?}", self.c.state());
        }
    }

    fn knee64(t: u64, l: u32) -> Sample {
        device(t, l, 64, 100)
    }

    fn limits() -> Limits {
        Limits::new(1, 256, 4)
    }

    #[test]
    fn defaults_are_the_spec() {
        let c = AimdConfig::default();
        assert_eq!(c.tick_ms, 10);
        assert_eq!(c.baseline_ticks, 10);
        assert_eq!(c.additive_increase, 1);
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
    }

    #[test]
    fn bad_config_is_reported_and_sanitized() {
        let bad = AimdConfig {
            backoff_factor: f64::NAN,
            slow_start_factor: 0.5,
            additive_increase: 0,
            ..AimdConfig::default()
        };
        assert!(bad.validate().is_err());
        let a = Aimd::new(bad, limits());
        assert_eq!(a.config().backoff_factor, 0.8);
        assert_eq!(a.config().slow_start_factor, 1.25);
        assert_eq!(a.config().additive_increase, 1);
    }

    #[test]
    fn baseline_holds_then_probes() {
        let mut d = Driver::new(AimdConfig::default(), limits());
        assert_eq!(d.c.phase(), AimdPhase::Baseline);
        for _ in 0..9 {
            assert_eq!(d.step(knee64).in_flight_limit, 4);
            assert_eq!(d.c.phase(), AimdPhase::Baseline);
        }
        assert!(d.c.baseline_p99_ns().is_none());
        let dec = d.step(knee64);
        assert_eq!(d.c.phase(), AimdPhase::Probing);
        assert_eq!(d.c.baseline_p99_ns(), Some(100_000));
        assert_eq!(
            dec.in_flight_limit,
            5,
            "slow start x1.25: {:?}",
            d.c.state()
        );
    }

    #[test]
    fn low_iops_windows_accumulate() {
        // 5 completions per tick: a window needs 4 ticks (20 completions).
        let mut d = Driver::new(AimdConfig::default(), limits());
        let slow = |t, l| win(t, 5, 10_000, l, 10);
        for i in 0..39 {
            d.step(slow);
            assert_eq!(d.c.phase(), AimdPhase::Baseline, "tick {i}");
        }
        assert!(
            d.c.state().reason.contains("accumulating") || d.c.state().reason.contains("warming")
        );
        d.step(slow);
        assert_eq!(d.c.phase(), AimdPhase::Probing, "10 windows of 4 ticks");
    }

    #[test]
    fn probing_slow_start_then_additive_then_plateau_settle_steady_converged() {
        let cfg = AimdConfig {
            reprobe_ms: 0,
            ..AimdConfig::default()
        };
        let mut d = Driver::new(cfg, limits());
        d.until(AimdPhase::Probing, 20, knee64);
        let mut seen_additive = false;
        let mut prev = d.c.current().in_flight_limit;
        for _ in 0..200 {
            d.step(knee64);
            let l = d.c.current().in_flight_limit;
            if d.c.phase() != AimdPhase::Probing {
                break;
            }
            if l == prev + 1 {
                seen_additive = true;
            }
            prev = l;
        }
        assert!(seen_additive, "never probed additively");
        assert_eq!(d.c.phase(), AimdPhase::Settling, "{:?}", d.c.state());
        assert!(
            d.c.state().reason.contains("probing down: throughput fell"),
            "{:?}",
            d.c.state()
        );
        let knee = d.c.current().in_flight_limit;
        assert!((62..=68).contains(&knee), "knee {knee}");
        // settle 100 ms, then steady
        for _ in 0..9 {
            d.step(knee64);
            assert_eq!(d.c.phase(), AimdPhase::Settling);
        }
        d.step(knee64);
        assert_eq!(d.c.phase(), AimdPhase::Steady, "{:?}", d.c.state());
        // 5 s of steady: converged, limit unchanged throughout
        for _ in 0..499 {
            d.step(knee64);
            assert_eq!(d.c.phase(), AimdPhase::Steady);
            assert_eq!(d.c.current().in_flight_limit, knee);
        }
        d.step(knee64);
        assert_eq!(d.c.phase(), AimdPhase::Converged, "{:?}", d.c.state());
        assert_eq!(d.c.current().in_flight_limit, knee);
    }

    #[test]
    fn a_plateau_right_after_a_plateau_still_ends_probing() {
        // The original's bug: after a flat tick the ratio was undefined and
        // +1 was re-armed forever. Here in-flight does not follow the limit
        // at all (something else caps concurrency at 10): probing must stop.
        let capped = |t, _l: u32| win(t, 1000, 100, 10, 50);
        let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 256, 8));
        d.until(AimdPhase::Probing, 20, capped);
        d.until(AimdPhase::Settling, 100, capped);
        assert!(d.c.current().in_flight_limit < 40, "{:?}", d.c.state());
        d.until(AimdPhase::Steady, 20, capped);
    }

    #[test]
    fn probing_reaches_the_maximum_and_holds() {
        // A device that scales forever: limit stops at max, then steady.
        let lin = |t, l: u32| device(t, l, 10_000, 100);
        let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 40, 4));
        d.until(AimdPhase::Settling, 100, lin);
        assert_eq!(d.c.current().in_flight_limit, 40);
        assert!(d.c.state().reason.contains("maximum"), "{:?}", d.c.state());
        d.until(AimdPhase::Steady, 20, lin);
    }

    #[test]
    fn ceiling_violation_backs_off_at_once_then_settles_and_reprobes_below_the_cap() {
        let cfg = AimdConfig {
            p99_ceiling_us: 1_000,
            ..AimdConfig::default()
        };
        let mut d = Driver::new(cfg, Limits::new(1, 256, 50));
        // latency grows with depth: 20 µs per op in flight => 1 ms at 50
        let dev = |t, l: u32| win(t, 2000, 20 * u64::from(l) + 1, l, 100);
        d.step(dev); // 1001 µs > 1000 µs: violation on the very first tick
        assert_eq!(d.c.phase(), AimdPhase::Backoff);
        assert_eq!(d.c.current().in_flight_limit, 40);
        assert!(d.c.state().reason.contains("ceiling"), "{:?}", d.c.state());
        d.step(dev);
        assert_eq!(d.c.phase(), AimdPhase::Settling);
        assert_eq!(d.c.current().in_flight_limit, 40);
        // no baseline yet -> warm up again after settling
        d.until(AimdPhase::Baseline, 20, dev);
        d.until(AimdPhase::Probing, 20, dev);
        // It may overshoot once more (slow start), but then stays below 50
        // for good: probing is capped just below the last violating limit.
        for _ in 0..300 {
            d.step(dev);
        }
        for _ in 0..200 {
            d.step(dev);
            assert!(d.c.current().in_flight_limit <= 49, "{:?}", d.c.state());
        }
        assert!(
            matches!(d.c.phase(), AimdPhase::Steady | AimdPhase::Converged),
            "{:?}",
            d.c.state()
        );
    }

    #[test]
    fn latency_backoff_then_probing_stops_below_the_violating_limit() {
        let cfg = AimdConfig {
            p99_ceiling_us: 2_000,
            slow_start: false,
            ..AimdConfig::default()
        };
        let mut d = Driver::new(cfg, Limits::new(1, 256, 30));
        // scales linearly (no plateau) but latency rises past 2 ms above 40
        let dev = |t, l: u32| {
            let lat = if l > 40 {
                3_000
            } else {
                100 + 10 * u64::from(l)
            };
            win(t, 100 * u64::from(l), lat, l, 100)
        };
        d.until(AimdPhase::Probing, 20, dev);
        d.until(AimdPhase::Backoff, 40, dev);
        assert_eq!(d.c.current().in_flight_limit, 32, "41 x 0.8");
        d.until(AimdPhase::Probing, 20, dev);
        d.until(AimdPhase::Settling, 40, dev);
        assert!(d.c.state().reason.contains("violated"), "{:?}", d.c.state());
        d.until(AimdPhase::Steady, 40, dev);
        assert_eq!(d.c.current().in_flight_limit, 40, "{:?}", d.c.state());
    }

    #[test]
    fn baseline_guard_fires_at_ten_times_the_baseline() {
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Probing, 20, knee64);
        assert_eq!(d.c.latency_threshold_ns(), 1_000_000);
        let before = d.c.current().in_flight_limit;
        d.step(|t, l| win(t, 500, 1_001, l, 10));
        assert_eq!(d.c.phase(), AimdPhase::Backoff);
        assert!(d.c.current().in_flight_limit < before);
        assert!(
            d.c.state().reason.contains("baseline guard"),
            "{:?}",
            d.c.state()
        );
    }

    #[test]
    fn steady_reprobes_when_throughput_rises_and_backs_off_when_it_falls() {
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee64);
        let l = d.c.current().in_flight_limit;
        // the device gets twice as fast: throughput rises materially
        let faster = |t, l: u32| device(t, l, 64, 50);
        d.until(AimdPhase::Probing, 10, faster);
        assert!(d.c.state().reason.contains("rose"), "{:?}", d.c.state());
        assert_eq!(d.c.current().in_flight_limit, l);

        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee64);
        let l = d.c.current().in_flight_limit;
        // capacity halves: throughput falls materially
        let slower = |t, l: u32| device(t, l, 32, 200);
        d.until(AimdPhase::Backoff, 10, slower);
        assert!(d.c.state().reason.contains("fell"), "{:?}", d.c.state());
        assert!(d.c.current().in_flight_limit < l);
        d.until(AimdPhase::Settling, 2, slower);
        d.until(AimdPhase::Probing, 20, slower);
    }

    #[test]
    fn converged_leaves_when_p99_moves() {
        let cfg = AimdConfig {
            converge_ms: 200,
            ..AimdConfig::default()
        };
        let mut d = Driver::new(cfg, limits());
        d.until(AimdPhase::Converged, 300, knee64);
        // same throughput, P99 three times higher (below the guard)
        let spiky = |t, l: u32| {
            let mut s = knee64(t, l);
            let n = s.completions;
            s.latency = HistogramSnapshot::default();
            s.latency.record_n(100_000, n - n / 20);
            s.latency.record_n(300_000, n / 20);
            s
        };
        d.until(AimdPhase::Backoff, 10, spiky);
        assert!(d.c.state().reason.contains("P99 rose"), "{:?}", d.c.state());
    }

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
        // the app keeps at most 8 in flight and never queues
        let app = |t, _l: u32| win(t, 800, 100, 8, 0);
        for _ in 0..500 {
            let before = d.c.current().in_flight_limit;
            let after = d.step(app).in_flight_limit;
            assert!(after <= before);
        }
        assert!(
            d.c.state().reason.contains("app-limited"),
            "{:?}",
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

    #[test]
    fn runtime_setters() {
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee64);
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
        for _ in 0..40 {
            d.step(sparse);
        }
        let b = d.c.current();
        assert_eq!(b.batch_threshold, b.in_flight_limit / 4, "{b:?}");
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

    #[test]
    fn flat_from_the_first_probe_probes_down_then_settles() {
        // Knee at 8, starting at 32: slow start's first step is flat, so the
        // limit walks down x0.8 while throughput holds, and keeps the last
        // level that held.
        let knee8 = |t, l| device(t, l, 8, 100);
        let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 256, 32));
        d.until(AimdPhase::Probing, 20, knee8);
        let mut saw_down = false;
        for _ in 0..50 {
            d.step(knee8);
            if d.c.state().reason.contains("probing down") && d.c.phase() == AimdPhase::Probing {
                saw_down = true;
            }
            if d.c.phase() != AimdPhase::Probing {
                break;
            }
        }
        assert!(saw_down);
        assert_eq!(d.c.phase(), AimdPhase::Settling, "{:?}", d.c.state());
        assert!(d.c.state().reason.contains("fell"), "{:?}", d.c.state());
        let l = d.c.current().in_flight_limit;
        assert!((8..=10).contains(&l), "limit {l}");
        d.until(AimdPhase::Steady, 20, knee8);

        // With probing down disabled the limit stays where it started.
        let cfg = AimdConfig {
            probe_down: false,
            ..AimdConfig::default()
        };
        let mut d = Driver::new(cfg, Limits::new(1, 256, 32));
        d.until(AimdPhase::Steady, 100, knee8);
        assert_eq!(d.c.current().in_flight_limit, 32);
    }

    #[test]
    fn periodic_reprobe_returns_to_converged_or_finds_new_capacity() {
        // Nothing changes: re-probes come back to the same limit, and the
        // phase clock keeps running through them, so CONVERGED is reached
        // and kept.
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee64);
        let knee = d.c.current().in_flight_limit;
        let mut reprobes = 0;
        for _ in 0..1000 {
            let before = d.c.phase();
            d.step(knee64);
            if d.c.phase() == AimdPhase::Probing && before != AimdPhase::Probing {
                assert!(d.c.state().reason.contains("re-probe"), "{:?}", d.c.state());
                reprobes += 1;
            }
        }
        assert!(reprobes >= 3, "{reprobes} re-probes in 10 s");
        d.until(AimdPhase::Converged, 100, knee64);
        assert!(d.c.current().in_flight_limit.abs_diff(knee) <= 3);

        // Capacity frees up at the current depth without any throughput
        // change there (knee 40 -> 64 while sitting at 40): only a re-probe
        // can find it.
        let knee40 = |t, l| device(t, l, 40, 100);
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee40);
        assert!(d.c.current().in_flight_limit <= 44);
        for _ in 0..400 {
            d.step(knee64);
        }
        let l = d.c.current().in_flight_limit;
        assert!((58..=70).contains(&l), "limit {l}: {:?}", d.c.state());
    }

    #[test]
    fn one_stalled_tick_is_not_congestion_but_a_sustained_rise_is() {
        let mut d = Driver::new(AimdConfig::default(), limits());
        d.until(AimdPhase::Steady, 200, knee64);
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
        assert!(stalled(0, l).latency.p99_ns() > d.c.latency_threshold_ns());
        d.step(stalled);
        assert_ne!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
        assert!(d.c.current().in_flight_limit >= l);
        // Every op slow from now on: backoff on the first such tick.
        d.step(|t, l| win(t, 6000, 3_000, l, 100));
        assert_eq!(d.c.phase(), AimdPhase::Backoff, "{:?}", d.c.state());
    }

    /// The real virtio disk here: per-tick completions swing widely (CV
    /// ≈ 0.3, empty ticks while ops are in flight), the ring is always
    /// full. Knee at 64, 500 µs base latency (≈1280 completions per tick at
    /// the knee). Single-tick windows read that noise as a plateau (or a
    /// fall while probing down) far below the knee.
    fn noisy_knee64(rng: &mut u64, spread: f64) -> impl FnMut(u64, u32) -> Sample + '_ {
        move |t, l| {
            *rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (*rng >> 11) as f64 / (1u64 << 53) as f64;
            let f = if u < 0.03 {
                0.0
            } else {
                1.0 - spread + 2.0 * spread * (u - 0.03) / 0.97
            };
            let clean = device(t, l, 64, 500);
            let lat_us = clean.latency.p50_ns().div_ceil(1000).max(1);
            let mut s = win(
                t,
                (clean.completions as f64 * f).round() as u64,
                lat_us,
                l,
                100,
            );
            s.in_flight_avg = f64::from(l);
            s
        }
    }

    #[test]
    fn noisy_throughput_is_not_read_as_an_early_plateau() {
        for seed in 1..=4u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut d = Driver::new(AimdConfig::default(), Limits::new(1, 256, 16));
            let mut dev = noisy_knee64(&mut rng, 0.45);
            let mut sum = 0u64;
            for i in 0..1000 {
                d.t += 10;
                let s = dev(d.t, d.c.current().in_flight_limit);
                let l = d.c.tick(&s).in_flight_limit;
                if i >= 500 {
                    sum += u64::from(l);
                }
            }
            let mean = sum as f64 / 500.0;
            assert!(
                (48.0..=96.0).contains(&mean),
                "seed {seed}: mean limit {mean:.1} over the last 5 s, knee 64: {:?}",
                d.c.state()
            );
        }
    }

    #[test]
    fn hinge_finds_the_knee_and_ignores_noise() {
        let pts: Vec<Point> = (56..72)
            .map(|l| Point {
                limit: l,
                c: 1000,
                se: 0.03,
                n: l as f64,
                x: (l.min(64) as f64) * 1000.0,
            })
            .collect();
        assert_eq!(hinge_knee(&pts), 64);
        let flat: Vec<Point> = (64..72)
            .map(|l| Point {
                limit: l,
                c: 1000,
                se: 0.03,
                n: l as f64,
                x: 64_000.0 + if l % 2 == 0 { 300.0 } else { -300.0 },
            })
            .collect();
        assert_eq!(hinge_knee(&flat), 64);
        assert!(log_log_slope(flat.iter()).abs() < 0.2);
        assert!((log_log_slope(pts[..8].iter()) - 1.0).abs() < 1e-9);
    }
}
