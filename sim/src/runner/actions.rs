//! What the runner does between events: the application's submissions, the
//! reaping thread's rounds, `io_uring_enter`, neighbour arrivals and the
//! stalled time measured at each tick.

use std::time::Duration;

use auraio_controller::IntervalGaps;
use rand::Rng;
use rand_distr::{Distribution, Exp1};

use super::spec::LoadKind;
use super::state::{HostState, Runner};
use crate::device::DevOp;
use crate::sched::Ev;

/// Open loop: queued SQEs the application pushed are flushed by its next
/// poll, this long after the push, unless a full batch flushed them first.
pub const APP_FLUSH_NS: u64 = 5_000;

impl Runner {
    /// Tells the meter how many ops wait in the backlog (saturated to
    /// `u32`, the sample's width).
    pub(super) fn report_backlog(&mut self) {
        self.meter
            .set_backlog(self.backlog.min(u64::from(u32::MAX)) as u32);
    }

    pub(super) fn exp_gap(&mut self, rate: f64, neighbour: bool) -> u64 {
        let rng = if neighbour {
            &mut self.rng_nb
        } else {
            &mut self.rng_app
        };
        let e: f64 = Exp1.sample(rng);
        ((e / rate) * 1e9).max(1.0) as u64
    }

    pub(super) fn schedule_neighbour(&mut self) {
        if self.nb_rate > 0.0 && !self.nb_scheduled {
            self.nb_scheduled = true;
            let t = self.sched.now() + self.exp_gap(self.nb_rate, true);
            self.sched.push(t, Ev::NeighbourArrival);
        }
    }

    /// The application submits one op from its own thread (open loop): it
    /// takes a slot and is pushed if the limit allows (entering the kernel
    /// once `batch` SQEs are queued, or at the application's next poll,
    /// `APP_FLUSH_NS` later), else it waits in the backlog.
    pub(super) fn app_submit(&mut self) {
        if self.in_flight >= self.limit || self.backlog > 0 {
            self.backlog += 1;
            self.report_backlog();
            return;
        }
        let mut t = self.sched.now();
        self.push_one(t);
        if self.queued.len() >= self.batch as usize {
            self.enter(&mut t);
        } else if !self.app_flush_armed {
            self.app_flush_armed = true;
            self.sched.push(t + APP_FLUSH_NS, Ev::AppFlush);
        }
    }

    /// Take a slot and queue an SQE for one op at time `t`.
    fn push_one(&mut self, t: u64) {
        let slot = match self.free_slots.pop() {
            Some(s) => s as usize,
            None => {
                self.push_t.push(0);
                self.push_t.len() - 1
            }
        };
        self.push_t[slot] = t;
        let write = self.rng_app.gen::<f64>() >= self.workload.read_fraction;
        self.queued.push(DevOp {
            id: slot as u64,
            bytes: self.workload.block_size,
            write,
            neighbour: false,
        });
        self.in_flight += 1;
        self.meter.on_submit(self.in_flight);
    }

    /// One round of the reaping/submitting thread at `now`: reap every CQE,
    /// push from the backlog up to the limit (entering the kernel whenever
    /// `batch` SQEs are queued), flush the rest, then stay busy for the CPU
    /// time all that took.
    pub(super) fn round(&mut self) {
        let now = self.sched.now();
        let mut t = now;
        let closed = matches!(self.workload.load, LoadKind::Closed { .. });
        let mut cq = std::mem::take(&mut self.cq);
        let reaped = !cq.is_empty();
        for op in cq.drain(..) {
            let slot = op.id as usize;
            let lat = t.saturating_sub(self.push_t[slot]);
            self.meter.on_complete(lat, u64::from(op.bytes), false);
            self.free_slots.push(op.id as u32);
            self.in_flight = self.in_flight.saturating_sub(1);
            self.completions += 1;
            t += self.host.per_cqe_ns;
            if closed {
                self.backlog += 1;
            }
        }
        self.cq = cq;
        if reaped {
            // Ops pushed but not entered are not the device's yet.
            let busy = self.in_flight as usize > self.queued.len();
            self.gaps.on_reap(now, busy);
        }
        while self.in_flight < self.limit && self.backlog > 0 {
            self.backlog -= 1;
            self.push_one(t);
            t += self.host.per_sqe_ns;
            if self.queued.len() >= self.batch as usize {
                self.enter(&mut t);
            }
        }
        if !self.queued.is_empty() {
            self.enter(&mut t);
        }
        self.report_backlog();
        self.host_state = HostState::Busy;
        self.sched.push(t.max(now), Ev::HostDone);
    }

    /// The device's stalled time since the last tick (see
    /// [`StallDetector`](auraio_controller::StallDetector)), and the threshold
    /// for the next interval (which also rests on the interval's median
    /// latency, `p50_ns`).
    pub(super) fn stalled_since_last_tick(&mut self, p50_ns: u64) -> Duration {
        let now = self.gaps.stats();
        let g = now.since(&self.last_gaps);
        self.last_gaps = now;
        let gaps = IntervalGaps {
            gaps: g.gaps,
            gap_ns: g.gap_ns,
            long_gaps: g.long_gaps,
            long_gap_ns: g.long_gap_ns,
        };
        let interval = self.stall.interval(gaps, p50_ns);
        self.gaps.set_long_ns(interval.next_long_gap_ns);
        interval.stalled
    }

    pub(super) fn enter(&mut self, t: &mut u64) {
        *t += self.host.enter_ns;
        let n = self.queued.len() as u32;
        self.meter.on_enter(n);
        self.gaps.on_handoff(*t);
        self.enter_calls += 1;
        self.sqes += u64::from(n);
        let mut q = std::mem::take(&mut self.queued);
        for op in q.drain(..) {
            self.device
                .submit(op, *t, &mut self.sched, &mut self.rng_dev);
        }
        self.queued = q;
    }
}
