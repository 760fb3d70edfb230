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

mod config;
mod guard;
mod probe;
mod trial;

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

/// A further cut needs the guard P99 below this share of the P99 that
/// caused the last one (a ×0.8 cut of depth-driven latency lowers it ~20 %).
pub(crate) const CUT_RESPONSE: f64 = 0.9;

/// A guard window that holds a device stall (see `Guard::has_stall`) and
/// whose P99 is more than this many times its P50 is the stall's tail, not
/// queueing at this ring's depth: queueing delays the whole distribution,
/// so its P99/P50 stays small (this machine's virtio disk: 4-5.5 at depth
/// 64-128 under fio; 10-19 in the windows of its stalls). Cutting the limit
/// cannot shorten such a tail; the guard holds the limit (no climbing
/// above it for `cap_ms`) instead. See [`is_stall_tail`] for the other
/// way a window's tail is recognised as a stall's.
pub(crate) const TAIL_RATIO: f64 = 8.0;

/// Is a guard window's violating P99 the tail of a device stall rather than
/// queueing at this ring's depth? The window must hold a stall
/// (`has_stall`), and then either
/// - its P99 is over [`TAIL_RATIO`] × its P50 (queueing never spreads the
///   distribution that far), or
/// - the longest stall the ring measured in it (`stall_ns`) accounts for
///   the tail: an op the stall held completes at most its normal latency
///   (taken as 2 × P50) plus the stall, so `P99 ≤ 2·P50 + stall`; and the
///   stall is at least half of the tail's excess over the median, so a
///   short stall does not excuse a window whose body has risen with the
///   depth.
///
/// The second test covers deep limits on a slow body, where the ratio
/// misses: on this machine's disk at limit 129 (P50 ≈ 1.3 ms) an 8.6 ms
/// stall made a 10.1 ms P99, a ratio of 7.8, and the guard cut the limit
/// for a tail no depth could shorten.
fn is_stall_tail(p99: u64, p50: u64, stall_ns: u64, has_stall: bool) -> bool {
    if !has_stall {
        return false;
    }
    if p99 as f64 > TAIL_RATIO * p50 as f64 {
        return true;
    }
    stall_ns > 0
        && p99 <= p50.saturating_mul(2).saturating_add(stall_ns)
        && stall_ns.saturating_mul(2) >= p99.saturating_sub(p50)
}

/// Weight of a new window in the measured noise (slower than `smoothing`:
/// the noise level is a property of the device).
const NOISE_WEIGHT: f64 = 0.05;
/// The measured noise never raises the material-change threshold of the
/// throughput above ±50 % (a change that large is material on any device)…
const MAX_WANDER: f64 = 0.5;
/// …nor that of the latency above ×4.
const MAX_WANDER_LAT: f64 = 3.0;
/// The percentile the steady watch follows as the body's latency.
const WATCH_PERCENTILE: f64 = 0.90;

/// The steady watch's measurements, saved across a phase change.
#[derive(Clone, Copy, Debug)]
struct WatchMemo {
    reference: Option<(f64, f64)>,
    ewma_x: f64,
    ewma_lat: f64,
    windows: u32,
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
        self.limit = self.limits.clamp(v);
        self.batch = self.batch.clamp(1, self.max_batch());
    }

    fn enter(&mut self, phase: AimdPhase, reason: String) {
        if phase != AimdPhase::Probing {
            self.probe = None;
        }
        if !matches!(phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed = Duration::ZERO;
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
            self.ewma_lat = 0.0;
        }
    }

    fn settle(&mut self, next: AimdPhase, reason: String) {
        self.after_settle = next;
        self.enter(AimdPhase::Settling, reason);
    }

    /// What the steady watch has measured (its reference, EWMAs and window
    /// count), kept across a phase change that is not a change of limit.
    fn watch_memo(&self) -> WatchMemo {
        WatchMemo {
            reference: self.reference,
            ewma_x: self.ewma_x,
            ewma_lat: self.ewma_lat,
            windows: self.windows_in_phase,
        }
    }

    fn restore_watch(&mut self, m: WatchMemo) {
        self.reference = m.reference;
        self.ewma_x = m.ewma_x;
        self.ewma_lat = m.ewma_lat;
        self.windows_in_phase = m.windows;
    }

    /// [`Aimd::enter`] that keeps the steady watch's measurements.
    pub(super) fn enter_keeping_watch(&mut self, phase: AimdPhase, reason: String) {
        let m = self.watch_memo();
        self.enter(phase, reason);
        self.restore_watch(m);
    }

    fn app_limited(&self, w: &Sample) -> bool {
        w.backlog == 0
            && (w.in_flight_peak as f64) < self.limit as f64 * self.cfg.app_limited_fraction
    }

    /// Multiplicative decrease on a latency violation (always strictly
    /// lower unless at the minimum), then hold: no probe may go above the
    /// new limit until the cap expires (`cap_ms` after the last cut), so a
    /// binding ceiling costs one cut per re-probe, not a burst of them.
    fn backoff(&mut self, p99: u64, threshold: u64, why: &str) {
        let old = self.limit;
        let cut = ((old as f64) * self.cfg.backoff_factor).floor() as u32;
        self.set_limit(cut.min(old.saturating_sub(1)));
        self.guard.clear();
        self.guard.after_cut = true;
        let cap = self.limit;
        self.cap = Some((cap, Duration::from_millis(self.cfg.cap_ms)));
        // After the cut: find where throughput stops growing below the
        // cap (descend trials; none above the cap until it expires).
        self.after_settle = if self.baseline_p99.is_none() {
            AimdPhase::Baseline
        } else {
            AimdPhase::Probing
        };
        self.enter(
            AimdPhase::Backoff,
            format!(
                "{why}: P99 {} µs > {} µs; limit {old} -> {} (cap {cap})",
                p99 / 1000,
                threshold / 1000,
                self.limit
            ),
        );
    }

    /// BASELINE on a judged window.
    fn baseline(&mut self, w: &Sample) {
        self.baseline_acc.accumulate(w);
        self.baseline_windows += 1;
        if self.baseline_windows < self.cfg.baseline_ticks {
            self.reason = format!(
                "warming up at {} ({}/{} windows)",
                self.limit, self.baseline_windows, self.cfg.baseline_ticks
            );
            return;
        }
        let acc = std::mem::take(&mut self.baseline_acc);
        let p99 = acc.latency.p99_ns();
        self.baseline_p99 = Some(self.baseline_p99.map_or(p99, |b| b.min(p99)));
        self.baseline_limit = self.limit;
        if self.app_limited(&acc) {
            self.settle(
                AimdPhase::Steady,
                format!(
                    "baseline P99 {} µs at {}; app-limited (peak in-flight {}, no backlog): holding",
                    p99 / 1000,
                    self.limit,
                    acc.in_flight_peak
                ),
            );
            return;
        }
        self.start_probe(
            self.cfg.first_climb_factor,
            None,
            true,
            format!("baseline P99 {} µs at {}", p99 / 1000, self.limit),
        );
        self.reason = format!(
            "baseline P99 {} µs at {}; {}",
            p99 / 1000,
            self.baseline_limit,
            self.reason
        );
    }

    /// Updates the measured window-to-window noise with a window of
    /// throughput `x` and body latency `lat` (before they enter the EWMAs).
    fn learn_noise(&mut self, x: f64, lat: Option<f64>) {
        let lx = (x.max(1e-9) / self.ewma_x.max(1e-9)).ln();
        self.noise_n = self.noise_n.saturating_add(1);
        let b = (1.0 / f64::from(self.noise_n)).max(NOISE_WEIGHT);
        self.noise_lx = b * lx * lx + (1.0 - b) * self.noise_lx;
        if let Some(lat) = lat {
            let ll = (lat.max(1.0) / self.ewma_lat.max(1.0)).ln();
            self.noise_ll = b * ll * ll + (1.0 - b) * self.noise_ll;
        }
    }

    /// STEADY / CONVERGED / SETTLING bookkeeping on a judged window.
    fn watch(&mut self, w: &Sample) {
        let x = w.iops();
        // The body's latency: the guard window's P90. Not its P99: the
        // trials that a re-probe runs judge throughput only, which follows
        // the body (Little's law), so a tail that moves alone gives them
        // nothing to find; and on a device with micro-stalls (this
        // machine's virtio disk: ≈20 per second of a few ms, each delaying
        // every read in flight) 1-3 % of the reads are the stalls' tail, so
        // a window's P99 lands in the body or in that tail by chance, a ×3-5
        // flip that re-probed 0.1-2 s after settling. Tail protection is the
        // latency guard's job. While the guard window holds a stall long
        // enough to collapse a tick (see `Guard::has_collapsed_tick`) even
        // its P90 may be the stall's: the latency side of the watch keeps
        // its last value then. (Stalls of a few ms delay a few % of a
        // window's ops: its P90 stays the body's.)
        let stalled = self.guard.has_collapsed_tick();
        let lat = self
            .guard
            .percentile(self.cfg.min_window_completions.max(1), WATCH_PERCENTILE)
            .unwrap_or_else(|| w.latency.percentile_ns(WATCH_PERCENTILE)) as f64;
        let lat = if stalled && self.ewma_lat > 0.0 {
            self.ewma_lat
        } else {
            lat
        };
        self.windows_in_phase += 1;
        if self.phase == AimdPhase::Settling && self.windows_in_phase == 1 {
            return; // the first window after a change is a transient
        }
        let a = self.cfg.smoothing;
        if self.ewma_x <= 0.0 {
            self.ewma_x = x;
            self.ewma_lat = lat;
        } else {
            if matches!(self.phase, AimdPhase::Steady | AimdPhase::Converged) {
                // Not while settling: the guard window still spans ticks at
                // the previous limits then, a drift rather than noise.
                self.learn_noise(x, (!stalled).then_some(lat));
            }
            self.ewma_x = a * x + (1.0 - a) * self.ewma_x;
            self.ewma_lat = a * lat + (1.0 - a) * self.ewma_lat;
        }
        let Some((rx, rl)) = self.reference else {
            let need =
                self.cfg.change_windows.max(1) + u32::from(self.phase == AimdPhase::Settling);
            if self.windows_in_phase >= need {
                self.reference = Some((self.ewma_x, self.ewma_lat));
            }
            return;
        };
        if self.phase == AimdPhase::Settling || self.app_limited(w) {
            self.down_count = 0;
            self.up_count = 0;
            return;
        }
        // Noise of the smoothed throughput: a window of c completions is
        // ±1/√c from counting alone, the device's own wander is what
        // `learn_noise` measured; the EWMA shrinks either by √(a/(2-a)), and
        // the reference carries as much again. Demand four of those before
        // calling a move material (so a virtual disk whose 10 ms windows
        // vary by ±15 % does not re-probe on every slow swing of its host).
        let shrink = (2.0 * a / (2.0 - a)).sqrt();
        let counting = 4.0 * shrink / (2.0 * w.completions.max(1) as f64).sqrt();
        let wander_x = (4.0 * shrink * self.noise_lx.sqrt()).min(MAX_WANDER);
        let wander_l = ((4.0 * shrink * self.noise_ll.sqrt()).exp() - 1.0).min(MAX_WANDER_LAT);
        let noise = counting.max(wander_x);
        let fell = self.ewma_x < rx * (1.0 - self.cfg.change_throughput.max(noise));
        let slower = self.ewma_lat > rl * (1.0 + self.cfg.change_latency.max(wander_l));
        let rose = self.ewma_x > rx * (1.0 + self.cfg.change_rise.max(noise));
        self.down_count = if fell || slower {
            self.down_count + 1
        } else {
            0
        };
        self.up_count = if rose { self.up_count + 1 } else { 0 };
        let n = self.cfg.change_windows.max(1);
        let what = if self.down_count >= n {
            if fell {
                format!(
                    "throughput fell {:.0} % below the steady reference",
                    (1.0 - self.ewma_x / rx) * 100.0
                )
            } else {
                format!(
                    "latency (P90) rose to {:.1}x the steady reference",
                    self.ewma_lat / rl.max(1.0)
                )
            }
        } else if self.up_count >= n {
            format!(
                "throughput rose {:.0} % above the steady reference",
                (self.ewma_x / rx - 1.0) * 100.0
            )
        } else {
            return;
        };
        // The device changed: the trials find out where the knee went
        // (they compare depths, so the change itself does not mislead them).
        self.start_probe(
            self.cfg.reprobe_step + 1.0,
            None,
            false,
            format!("{what}; re-probing"),
        );
        self.reason = format!("{what}; re-probing: {}", self.reason);
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
        if self.phase == AimdPhase::Probing {
            self.probe_elapsed += interval;
        }
        if let Some((c, left)) = self.cap {
            // The cap's clock runs once probing has settled below it.
            if !matches!(self.phase, AimdPhase::Backoff) {
                self.cap = left.checked_sub(interval).map(|l| (c, l));
            }
        }
        match self.phase {
            AimdPhase::Settling
                if self.phase_elapsed >= Duration::from_millis(self.cfg.settle_ms) =>
            {
                let next = self.after_settle;
                match next {
                    AimdPhase::Probing => {
                        let why = format!("settled at {}", self.limit);
                        self.probe_again(why);
                    }
                    AimdPhase::Baseline => {
                        self.enter(next, format!("settled; warming up again at {}", self.limit));
                        self.baseline_windows = 0;
                        self.baseline_acc = Sample::default();
                    }
                    _ => {
                        // Keep what settling measured as the steady reference.
                        self.enter_keeping_watch(next, format!("settled at {}", self.limit));
                        self.windows_in_phase = self.cfg.change_windows;
                    }
                }
                return;
            }
            AimdPhase::Steady
                if self.phase_elapsed >= Duration::from_millis(self.cfg.converge_ms) =>
            {
                self.enter_keeping_watch(
                    AimdPhase::Converged,
                    format!("stable at {} for {} ms", self.limit, self.cfg.converge_ms),
                );
            }
            _ => {}
        }
        if matches!(self.phase, AimdPhase::Steady | AimdPhase::Converged) {
            self.hold_elapsed += interval;
            if self.cfg.reprobe_ms > 0 && self.hold_elapsed >= self.reprobe_every {
                let origin = (self.phase, self.limit, self.phase_elapsed);
                let why = format!(
                    "periodic re-probe from {} at {} after {} ms",
                    self.phase.as_str(),
                    self.limit,
                    self.reprobe_every.as_millis()
                );
                // Kept for the return to the origin's phase.
                let m = self.watch_memo();
                self.start_probe(
                    self.cfg.reprobe_step + 1.0,
                    Some(origin),
                    false,
                    why.clone(),
                );
                self.restore_watch(m);
                if self.phase == AimdPhase::Probing {
                    self.reason = format!("{why}: {}", self.reason);
                }
            }
        }
    }

    /// A violation that cutting the limit would not cure: hold the limit,
    /// and let no probe climb above it for `cap_ms`.
    fn hold_capped(&mut self, reason: String) {
        self.cap = Some((self.limit, Duration::from_millis(self.cfg.cap_ms)));
        self.reason = reason;
    }

    /// The latency guard on a non-empty tick: `true` when it backed off.
    fn guard_tick(&mut self, sample: &Sample) -> bool {
        let threshold = self.latency_threshold_ns();
        let min = self.cfg.min_window_completions.max(1);
        self.guard.push(
            &sample.latency,
            sample.stalled,
            self.cfg.guard_ticks as usize,
            min,
        );
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
        let Some(p99) = self
            .guard_p99
            .filter(|&p| p > threshold && queueing && judging)
        else {
            if judging && self.guard_p99.is_some() {
                self.last_cut_p99 = None;
            }
            return false;
        };
        let p50 = self.guard.percentile(min, 0.5).unwrap_or(p99);
        let stall = self.guard.longest_stall();
        if is_stall_tail(p99, p50, stall.as_nanos() as u64, self.guard.has_stall()) {
            // A stall's tail, not queueing.
            self.hold_capped(format!(
                "P99 {} µs > {} µs, but the P50 is {} µs and completions stalled (longest \
                 {} µs): the device's tail, not this ring's queueing; holding at {}",
                p99 / 1000,
                threshold / 1000,
                p50 / 1000,
                stall.as_micros(),
                self.limit
            ));
            return false;
        }
        if let Some(prev) = self
            .last_cut_p99
            .filter(|&prev| p99 as f64 >= prev as f64 * CUT_RESPONSE)
        {
            // The last cut did not bring the latency down: it is not
            // queueing at this ring's depth (a slow device, a starved
            // CPU). Cutting again would only lose throughput.
            self.hold_capped(format!(
                "P99 {} µs > {} µs, but it did not fall after the last cut ({} µs): not \
                 this ring's queueing; holding at {}",
                p99 / 1000,
                threshold / 1000,
                prev / 1000,
                self.limit
            ));
            return false;
        }
        let why = if p99 > self.ceiling_ns {
            "P99 above the ceiling"
        } else {
            "P99 above the baseline guard"
        };
        if self.limit > self.limits.min_in_flight {
            self.last_cut_p99 = Some(p99);
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
        true
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
