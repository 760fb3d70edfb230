//! One handler per scheduled event ([`Ev`]): a device completion, a stall,
//! the reaping thread waking or finishing a round, the controller's tick,
//! an application arrival or flush, a neighbour's op, a scenario step.

use std::time::Duration;

use auraio_controller::Sample;

use super::spec::{LoadKind, Step};
use super::state::{HostState, Runner};
use crate::device::{DevOp, DeviceChange};
use crate::sched::Ev;

impl Runner {
    /// The device finished `op`: a ring op goes to the CQ and wakes the
    /// reaping thread if it sleeps (a neighbour's op just leaves).
    pub(super) fn on_dev_done(&mut self, op: DevOp) {
        if let Some(op) = self.device.on_done(op, &mut self.sched, &mut self.rng_dev) {
            if !op.neighbour {
                self.cq.push(op);
                if self.host_state == HostState::Idle {
                    self.host_state = HostState::WakePending;
                    let t = self.sched.now() + self.host.wake_ns;
                    self.sched.push(t, Ev::HostWake);
                }
            }
        }
    }

    /// The reaping thread finished a round: another one if there is work
    /// (completions, or backlog the limit lets in), else it sleeps.
    pub(super) fn on_host_done(&mut self) {
        if !self.cq.is_empty() || (self.backlog > 0 && self.in_flight < self.limit) {
            self.round();
        } else {
            self.host_state = HostState::Idle;
        }
    }

    /// The controller's tick: the meter's sample (with the stalled time the
    /// completion gaps show) goes to the controller, whose decision takes
    /// effect at once. Returns the sample.
    pub(super) fn on_tick(&mut self) -> Sample {
        let now = self.sched.now();
        self.report_backlog();
        let mut sample = self
            .meter
            .take_sample(Duration::from_nanos(now), self.in_flight);
        sample.stalled = self.stalled_since_last_tick(sample.latency.p50_ns());
        let d = self.ctrl.tick(&sample);
        self.limit = d.in_flight_limit.max(1);
        self.batch = d.batch_threshold.max(1);
        sample
    }

    /// After a tick: schedules the next, and lets a sleeping thread push
    /// backlog a raised limit admits.
    pub(super) fn after_tick(&mut self, tick_ns: u64) {
        let now = self.sched.now();
        self.sched.push(now + tick_ns, Ev::Tick);
        if self.host_state == HostState::Idle && self.backlog > 0 && self.in_flight < self.limit {
            self.round();
        }
    }

    /// Open loop: the application's next op arrives.
    pub(super) fn on_arrival(&mut self) {
        if let LoadKind::Open { iops } = self.workload.load {
            let t = self.sched.now() + self.exp_gap(iops, false);
            self.sched.push(t, Ev::Arrival);
            self.app_submit();
        }
    }

    /// The application's poll flushes the SQEs it queued.
    pub(super) fn on_app_flush(&mut self) {
        self.app_flush_armed = false;
        if !self.queued.is_empty() {
            let mut t = self.sched.now();
            self.enter(&mut t);
        }
    }

    /// A neighbour's op reaches the device (bypassing the ring), and the
    /// next one is scheduled.
    pub(super) fn on_neighbour_arrival(&mut self) {
        self.nb_scheduled = false;
        if self.nb_rate > 0.0 {
            self.next_nb_id += 1;
            let op = DevOp {
                id: self.next_nb_id,
                bytes: 4096,
                write: false,
                neighbour: true,
            };
            let now = self.sched.now();
            self.device
                .submit(op, now, &mut self.sched, &mut self.rng_dev);
            self.schedule_neighbour();
        }
    }

    /// A scenario step: a neighbour's share changes, or the device does.
    pub(super) fn on_step(&mut self, step: &Step) {
        match step.change {
            DeviceChange::Neighbour { share } => {
                self.nb_rate = (share.max(0.0)) * self.nominal_iops;
                self.schedule_neighbour();
            }
            c => self.device.apply(c, &mut self.sched, &mut self.rng_dev),
        }
    }
}
