//! The simulation's state: the private [`Runner`] (scheduler, device, meter,
//! controller, random streams, ring and backlog counters) and the reaping
//! thread's [`HostState`].

use auraio_controller::{Controller, IoMeter, StallDetector};
use auraio_ring::{CompletionGaps, GapStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::spec::{HostParams, RunSpec, Workload};
use crate::device::{DevOp, Device};
use crate::sched::Sched;

pub(super) struct Runner {
    pub(super) sched: Sched,
    pub(super) device: Device,
    pub(super) meter: IoMeter,
    /// Completion gaps, measured as the engine's rings do…
    pub(super) gaps: CompletionGaps,
    /// …their counts at the last tick…
    pub(super) last_gaps: GapStats,
    /// …and the stalled time they show.
    pub(super) stall: StallDetector,
    pub(super) ctrl: Box<dyn Controller>,
    pub(super) rng_dev: ChaCha8Rng,
    pub(super) rng_stall: ChaCha8Rng,
    pub(super) rng_app: ChaCha8Rng,
    pub(super) rng_nb: ChaCha8Rng,
    pub(super) workload: Workload,
    pub(super) host: HostParams,
    pub(super) limit: u32,
    pub(super) batch: u32,
    pub(super) in_flight: u32,
    pub(super) backlog: u64,
    pub(super) queued: Vec<DevOp>,
    pub(super) cq: Vec<DevOp>,
    pub(super) push_t: Vec<u64>,
    pub(super) free_slots: Vec<u32>,
    pub(super) host_state: HostState,
    pub(super) app_flush_armed: bool,
    pub(super) nb_rate: f64,
    pub(super) nb_scheduled: bool,
    pub(super) nominal_iops: f64,
    pub(super) next_nb_id: u64,
    pub(super) enter_calls: u64,
    pub(super) sqes: u64,
    pub(super) completions: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HostState {
    Idle,
    WakePending,
    Busy,
}

/// Random stream `n` of the run's seed: the device, the stalls, the
/// application and the neighbour each draw from their own.
fn stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(n);
    r
}

impl Runner {
    /// A ring at rest in front of the spec's device, driven by `ctrl`
    /// (its first decision in force).
    pub(super) fn new(spec: &RunSpec, ctrl: Box<dyn Controller>) -> Runner {
        let first = ctrl.current();
        Runner {
            sched: Sched::new(),
            device: Device::new(&spec.device),
            meter: IoMeter::new(),
            gaps: CompletionGaps::new(),
            last_gaps: GapStats::default(),
            stall: StallDetector::new(),
            ctrl,
            rng_dev: stream(spec.seed, 1),
            rng_stall: stream(spec.seed, 2),
            rng_app: stream(spec.seed, 3),
            rng_nb: stream(spec.seed, 4),
            workload: spec.workload,
            host: spec.host,
            limit: first.in_flight_limit.max(1),
            batch: first.batch_threshold.max(1),
            in_flight: 0,
            backlog: 0,
            queued: Vec::new(),
            cq: Vec::new(),
            push_t: Vec::new(),
            free_slots: Vec::new(),
            host_state: HostState::Idle,
            app_flush_armed: false,
            nb_rate: 0.0,
            nb_scheduled: false,
            nominal_iops: spec.device.nominal_peak_iops(),
            next_nb_id: 0,
            enter_calls: 0,
            sqes: 0,
            completions: 0,
        }
    }
}
