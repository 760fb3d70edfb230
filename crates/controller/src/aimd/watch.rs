//! The STEADY/CONVERGED watch: smoothed throughput and body latency
//! against a reference, the device's measured noise, and a re-probe on a
//! material change.

use super::{Aimd, AimdPhase};
use crate::sample::Sample;

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
pub(super) struct WatchMemo {
    reference: Option<(f64, f64)>,
    ewma_x: f64,
    ewma_lat: f64,
    windows: u32,
}

impl Aimd {
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
    pub(super) fn watch(&mut self, w: &Sample) {
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
        let risen = self.down_count < n && self.up_count >= n;
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
        // After a rise the limit still delivers what it did: that re-probe
        // moves it only on clear evidence, as a periodic one does, and
        // comes back with a new reference when nothing pays. (Moving on
        // the trials' means walked the limit 108 → 61 on this machine's
        // disk, whose throughput at a fixed depth swings 60–100k from one
        // 100 ms to the next: every trial ended within its noise.) A fall
        // or a slower body decides on the means: the old limit may now be
        // far past the knee.
        let origin = risen.then(|| self.origin_here(true));
        self.start_probe(
            self.cfg.reprobe_step + 1.0,
            origin,
            false,
            format!("{what}; re-probing"),
        );
        self.reason = format!("{what}; re-probing: {}", self.reason);
    }

    /// What the steady watch has measured (its reference, EWMAs and window
    /// count), kept across a phase change that is not a change of limit.
    pub(super) fn watch_memo(&self) -> WatchMemo {
        WatchMemo {
            reference: self.reference,
            ewma_x: self.ewma_x,
            ewma_lat: self.ewma_lat,
            windows: self.windows_in_phase,
        }
    }

    pub(super) fn restore_watch(&mut self, m: WatchMemo) {
        self.reference = m.reference;
        self.ewma_x = m.ewma_x;
        self.ewma_lat = m.ewma_lat;
        self.windows_in_phase = m.windows;
    }
}
