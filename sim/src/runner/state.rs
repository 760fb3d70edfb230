//! The simulation's state: the private [`Runner`] (scheduler, device, meter,
//! controller, random streams, ring and backlog counters) and the reaping
//! thread's [`HostState`].

use auraio_controller::{Controller, IoMeter, StallDetector};
use auraio_ring::{CompletionGaps, GapStats};
use rand_chacha::ChaCha8Rng;

use super::spec::{HostParams, Workload};
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
