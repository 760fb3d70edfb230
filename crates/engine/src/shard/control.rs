//! Control of a shard: cancelling an op, shutting the ring down, the
//! controller tick and putting its decisions (in-flight limit, batch
//! threshold) in force.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use auraio_controller::{Decision, IntervalGaps};
use auraio_ring::AnyRing;

use crate::engine::Shared;
use crate::error::canceled;
use crate::op_state::{OpCtl, Phase, Target};

use super::{lock, CtlBox, Shard};

const STATS_WINDOW: Duration = Duration::from_secs(1);

impl Shard {
    /// Cancels one op: removed from the backlog (completes with ECANCELED),
    /// or an async cancel to the kernel (it completes when the kernel says).
    pub(crate) fn cancel(&self, sh: &Shared, ctl: &Arc<OpCtl>) -> io::Result<()> {
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            match ctl.phase() {
                Phase::Done => return Ok(()),
                Phase::Backlogged => {
                    if let Some(pos) = core.backlog.iter().position(|w| w.contains(ctl)) {
                        if let Some(w) = core.backlog.remove(pos) {
                            w.into_failed(canceled(), &mut failed);
                        }
                    }
                    self.mirror(&core);
                }
                Phase::InRing(slot) => {
                    if !core.closed {
                        // A slot that already completed (reaped, being
                        // delivered) reports an error here: nothing to do.
                        if core.ring.cancel(slot).is_ok() {
                            let _ = core.ring.flush();
                        }
                    }
                }
            }
        }
        self.deliver_failed(sh, failed);
        Ok(())
    }

    /// Closes the ring: fails the backlog with ECANCELED, cancels and drains
    /// every in-flight op, and delivers each completion once.
    pub(crate) fn shutdown(&self, sh: &Shared) {
        let mut out = Vec::new();
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            core.closed = true;
            let backlog = std::mem::take(&mut core.backlog);
            for w in backlog {
                w.into_failed(canceled(), &mut failed);
            }
            if let Err(e) = core.ring.drain_for_shutdown(&mut out) {
                eprintln!(
                    "auraio: ring {} could not drain its in-flight operations at shutdown: {e}",
                    self.idx
                );
            }
            *lock(&self.ring_stats) = core.ring.stats();
            self.mirror(&core);
        }
        self.deliver_failed(sh, failed);
        self.apply_faults(sh, &mut out, false);
        self.deliver_completions(sh, &mut out);
        // Completions held back by fault injection: all of them, now (the
        // queue is closed, so none is held again).
        let mut held = Vec::new();
        self.take_held(true, &mut held);
        self.deliver_held(sh, held);
    }

    /// One controller tick for this ring.
    pub(crate) fn tick(&self, sh: &Shared, now: Duration) {
        let (in_flight, backlog, d_submits, d_sqes, stalled) = {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            // Bound the batching delay: SQEs still queued at a tick (e.g.
            // below the threshold while the ops in the kernel are slow) go
            // out now, so no op waits in the SQ longer than one tick.
            if core.ring.queued() > 0 {
                let _ = core.ring.flush();
            }
            let rs = core.ring.stats();
            let d_sub = rs.submit_calls.saturating_sub(core.last_stats.submit_calls);
            let d_sqes = rs
                .sqes_submitted
                .saturating_sub(core.last_stats.sqes_submitted);
            let g = rs.gaps.since(&core.last_stats.gaps);
            let gaps = IntervalGaps {
                gaps: g.gaps,
                gap_ns: g.gap_ns,
                long_gaps: g.long_gaps,
                long_gap_ns: g.long_gap_ns,
            };
            let interval = core.stall.interval(gaps, self.last_p50_ns.load(Relaxed));
            core.ring.set_long_gap_ns(interval.next_long_gap_ns);
            let stalled = interval.stalled;
            core.last_stats = rs;
            *lock(&self.ring_stats) = rs;
            (
                core.ring.in_flight(),
                core.backlog.len() as u32,
                d_sub,
                d_sqes,
                stalled,
            )
        };
        // The meter's backlog gauge is current: `mirror` sets it (under the
        // ring lock) whenever the backlog's length changes.
        let mut sample = self.meter.take_sample(now, in_flight);
        sample.enter_calls = d_submits;
        sample.sqes_submitted = d_sqes;
        sample.stalled = stalled;
        self.last_p50_ns.store(sample.latency.p50_ns(), Relaxed);
        let (decision, state) = {
            let mut c = lock(&self.ctl);
            let d = c.controller.tick(&sample);
            (d, c.controller.state())
        };
        let (limit, batch) = self.clamp_decision(sh, decision);
        let old_limit = self.limit.swap(limit, Relaxed);
        let old_batch = self.batch.swap(batch, Relaxed);
        sh.trace_tick(self.idx, &sample, decision, &state);
        {
            let mut p = lock(&self.published);
            p.lifetime.merge(&sample.latency);
            p.window_len += sample.interval;
            p.window.push_back(sample);
            while p.window.len() > 1 {
                let front = p.window.front().map_or(Duration::ZERO, |s| s.interval);
                if p.window_len.saturating_sub(front) >= STATS_WINDOW {
                    p.window_len -= front;
                    p.window.pop_front();
                } else {
                    break;
                }
            }
            p.state = state;
            p.decision = Decision {
                in_flight_limit: limit,
                batch_threshold: batch,
            };
        }
        if batch != old_batch || (limit > old_limit && backlog > 0) {
            self.apply(sh);
        }
    }

    /// Applies the current batch threshold and refills up to the limit.
    pub(crate) fn apply(&self, sh: &Shared) {
        let mut failed = Vec::new();
        {
            let mut core = self.lock();
            if core.closed {
                return;
            }
            let batch = self.batch.load(Relaxed);
            if core.ring.batch_threshold() != batch {
                core.ring.set_batch_threshold(batch);
            }
            if !core.backlog.is_empty() {
                self.refill_locked(sh, &mut core, &mut failed);
                if core.ring.queued() > 0 {
                    let _ = core.ring.flush();
                }
            }
            self.mirror(&core);
        }
        self.deliver_failed(sh, failed);
    }

    /// Runs `f` on the ring under its lock (registration and the like).
    pub(crate) fn with_ring<R>(
        &self,
        f: impl FnOnce(&mut AnyRing<Target>) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut core = self.lock();
        if core.closed {
            return Err(crate::error::shutdown_error());
        }
        f(&mut core.ring)
    }

    /// Changes the controller (its limits, its P99 ceiling) and puts its
    /// new decision in force at once: the in-flight limit and the batch
    /// threshold (unless the user pinned the batch), then refills.
    pub(crate) fn update_controller(&self, sh: &Shared, f: impl FnOnce(&mut CtlBox)) {
        let mut c = lock(&self.ctl);
        f(&mut c);
        let d = c.controller.current();
        drop(c);
        let (limit, batch) = self.clamp_decision(sh, d);
        self.limit.store(limit, Relaxed);
        self.batch.store(batch, Relaxed);
        self.apply(sh);
    }

    /// A controller's decision as stored: both clamped to `[1, capacity]`,
    /// the batch replaced by the user's pinned one if there is one.
    fn clamp_decision(&self, sh: &Shared, d: Decision) -> (u32, u32) {
        let cap = self.capacity.max(1);
        let limit = d.in_flight_limit.clamp(1, cap);
        let batch = match sh.batch_override.load(Relaxed) {
            0 => d.batch_threshold,
            n => n,
        }
        .clamp(1, cap);
        (limit, batch)
    }
}
