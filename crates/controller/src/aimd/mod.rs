//! [`Aimd`]: the default policy — increase the in-flight limit while
//! throughput still grows with it, multiplicative decrease on latency.
//!
//! Phases: `baseline → probing → settling → steady → converged`;
//! `backoff → settling → probing` on a latency violation; a periodic
//! re-probe from steady/converged that returns where it left when it finds
//! nothing. PROBING is a sequence of paired trials ([`trial`]): climb by
//! `climb_factor` while the higher limit wins, then walk down by
//! `descend_factor` while the lower limit holds the throughput. See
//! `docs/controllers.md` for every rule, its constants and the reasoning.

mod baseline;
mod batch;
mod config;
mod guard;
mod phase;
mod probe;
mod timers;
mod trial;
mod watch;

#[cfg(test)]
mod tests;

pub use config::AimdConfig;

use crate::controller::{clamp_batch, Controller, Limits};
use crate::sample::{ControllerState, Decision, Sample};
use guard::Guard;
use probe::Probe;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The phases of [`Aimd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AimdPhase {
    /// Warm-up at the initial limit: measures the baseline P99.
    Baseline,
    /// Paired trials between two limits decide where to go.
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
    /// Ticks accumulated into the window being built (BASELINE, batch
    /// tuning and the steady watch judge windows of `min_window_*`).
    pending: Option<Sample>,
    pending_ticks: u32,
    // BASELINE
    baseline_windows: u32,
    baseline_acc: Sample,
    baseline_p99: Option<u64>,
    /// The limit the baseline P99 was measured at.
    baseline_limit: u32,
    // PROBING
    probe: Option<Probe>,
    /// Highest limit probing may reach (set by a latency backoff) and the
    /// time left before it expires.
    cap: Option<(u32, Duration)>,
    /// The latency guard's window (histograms of recent non-empty ticks).
    guard: Guard,
    /// Its P99 as of the last non-empty tick.
    guard_p99: Option<u64>,
    /// The guard P99 that caused the last cut, while every judged window
    /// since has violated too: a further cut needs the P99 to have fallen
    /// after it (latency that does not follow depth is not ours to cut).
    last_cut_p99: Option<u64>,
    // SETTLING / STEADY / CONVERGED
    /// Time in STEADY/CONVERGED since the last change or re-probe.
    hold_elapsed: Duration,
    /// Time since the current probe started.
    probe_elapsed: Duration,
    /// Hold before the next periodic re-probe: `reprobe_ms`, or twice as
    /// long as the last probe took (slow devices make long trials, and
    /// re-probing must stay a small share of the time).
    reprobe_every: Duration,
    phase_elapsed: Duration,
    after_settle: AimdPhase,
    windows_in_phase: u32,
    ewma_x: f64,
    ewma_lat: f64,
    /// The device's own window-to-window noise: EWMAs of the squared log
    /// deviation of a window's throughput and body latency from the smoothed values
    /// (never reset: a property of the device, not of a limit).
    noise_lx: f64,
    noise_ll: f64,
    /// Windows behind `noise_lx`/`noise_ll` (their first ones average
    /// evenly, then the EWMA takes over).
    noise_n: u32,
    reference: Option<(f64, f64)>,
    down_count: u32,
    up_count: u32,
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
            baseline_limit: limit,
            probe: None,
            cap: None,
            guard: Guard::default(),
            guard_p99: None,
            last_cut_p99: None,
            hold_elapsed: Duration::ZERO,
            probe_elapsed: Duration::ZERO,
            reprobe_every: Duration::from_millis(cfg.reprobe_ms),
            phase_elapsed: Duration::ZERO,
            after_settle: AimdPhase::Steady,
            windows_in_phase: 0,
            ewma_x: 0.0,
            ewma_lat: 0.0,
            noise_lx: 0.0,
            noise_ll: 0.0,
            noise_n: 0,
            reference: None,
            down_count: 0,
            up_count: 0,
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
    /// non-empty ticks since the last backoff; `None` while they hold fewer
    /// than `min_window_completions`.
    pub fn guard_p99_ns(&self) -> Option<u64> {
        self.guard_p99
    }

    /// The highest limit probing may currently reach after a latency
    /// backoff, while that cap lasts.
    pub fn cap(&self) -> Option<u32> {
        self.cap.map(|(c, _)| c)
    }

    /// The latency (ns) above which the guard's P99 is a violation: the
    /// ceiling, or `latency_guard_mult ×` the baseline P99 scaled by how
    /// far the limit (during a trial: its higher limit) is above the
    /// baseline's limit, whichever is lower.
    pub fn latency_threshold_ns(&self) -> u64 {
        let mut t = self.ceiling_ns.max(1);
        if let Some(b) = self.baseline_p99 {
            // During a trial the guard window mixes both levels' ops: judge
            // them by the higher one.
            let deepest = self
                .probe
                .as_ref()
                .map_or(self.limit, |p| p.hi().max(self.limit));
            let depth = (f64::from(deepest) / f64::from(self.baseline_limit.max(1))).max(1.0);
            let g = b.max(1_000) as f64 * self.cfg.latency_guard_mult * depth;
            t = t.min(g.min(u64::MAX as f64) as u64);
        }
        t
    }

    fn decision(&self) -> Decision {
        Decision {
            in_flight_limit: self.limit,
            batch_threshold: clamp_batch(self.batch.min(self.max_batch()), self.limit),
        }
    }

    fn set_limit(&mut self, v: u32) {
        self.limit = self.limits.clamp(v);
        self.batch = self.batch.clamp(1, self.max_batch());
    }

    fn app_limited(&self, w: &Sample) -> bool {
        w.backlog == 0
            && (w.in_flight_peak as f64) < self.limit as f64 * self.cfg.app_limited_fraction
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
        if !idle {
            match &mut self.pending {
                Some(p) => p.accumulate(sample),
                None => self.pending = Some(sample.clone()),
            }
            self.pending_ticks += 1;
        }
        if sample.completions == 0 {
            // An empty window never changes the limit; a stall's time
            // still counts in the trial leg it fell into.
            if let (false, Some(p)) = (idle, self.probe.as_mut()) {
                p.feed_empty(sample.interval.as_secs_f64());
            }
            self.advance_time(sample.interval);
            return self.decision();
        }
        if self.guard_tick(sample) {
            return self.decision();
        }
        if self.phase == AimdPhase::Probing {
            self.probe_tick(sample);
        }
        let min = self.cfg.min_window_completions.max(1);
        let judged = self.pending.as_ref().is_some_and(|p| p.completions >= min)
            && self.pending_ticks >= self.cfg.min_window_ticks.max(1);
        if judged {
            let w = self.pending.take().unwrap_or_default();
            self.pending_ticks = 0;
            self.tune_batch(&w);
            match self.phase {
                AimdPhase::Baseline if phase_at_start == AimdPhase::Baseline => self.baseline(&w),
                AimdPhase::Settling | AimdPhase::Steady | AimdPhase::Converged
                    if phase_at_start == self.phase =>
                {
                    self.watch(&w)
                }
                _ => {}
            }
        } else if self.phase == AimdPhase::Baseline && phase_at_start == AimdPhase::Baseline {
            self.reason = format!(
                "accumulating a window: {} completions in {} ticks so far (need {min})",
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
        let before = self.limit;
        self.limits = limits.normalized();
        self.set_limit(self.limit);
        if self.limit < before {
            // Latency evidence from a higher limit is stale; this is not a
            // cut of the controller's own, so it judges again at once.
            self.guard.clear();
        }
        self.guard.after_cut = false;
        self.batch = self.batch.clamp(1, self.max_batch());
        if let Some((c, left)) = self.cap {
            self.cap = Some((self.limits.clamp(c), left));
        }
        if self.probe.is_some() {
            let l = self.limit;
            self.settle(
                AimdPhase::Steady,
                format!(
                    "limits changed to {}..{} during probing; holding at {l}",
                    self.limits.min_in_flight, self.limits.max_in_flight
                ),
            );
        }
    }

    fn set_p99_ceiling(&mut self, ceiling: Duration) {
        self.ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX).max(1);
    }
}
