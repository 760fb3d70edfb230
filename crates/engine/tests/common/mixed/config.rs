//! The workload's public shape (`MixedConfig`) and what a run reports
//! (`MixedReport`).

use std::time::Duration;

/// Workload shape.
#[derive(Clone, Debug)]
pub struct MixedConfig {
    /// Submitting threads (each owns one region of the file).
    pub threads: usize,
    /// Shut the engine down once this many ops were submitted in total…
    pub total_ops: u64,
    /// …or, when set, once this much time has passed (soak).
    pub duration: Option<Duration>,
    /// Bytes per thread region.
    pub region: usize,
    /// Bytes per chunk (a chunk has one write, or any reads, in flight).
    pub chunk: usize,
    /// Ops (callbacks + live futures) a thread keeps outstanding at most.
    pub max_outstanding: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl MixedConfig {
    /// The CI size: a few seconds in debug on a loaded 2-core machine.
    pub fn ci(threads: usize, total_ops: u64) -> Self {
        MixedConfig {
            threads,
            total_ops,
            duration: None,
            region: 256 * 1024,
            chunk: 16 * 1024,
            max_outstanding: 48,
            seed: 0x5EED,
        }
    }
}

/// What a run did (all asserted consistent before it is returned).
#[derive(Clone, Debug, Default)]
pub struct MixedReport {
    pub accepted: u64,
    pub delivered: u64,
    pub dropped_futures: u64,
    pub refused_after_shutdown: u64,
    pub ok_reads: u64,
    pub ok_writes: u64,
    pub short_reads: u64,
    pub short_writes: u64,
    pub canceled: u64,
    pub cancels_issued: u64,
    pub timeouts_set: u64,
    pub bytes_written: u64,
    pub bytes_checked_in_reads: u64,
    pub bytes_verified_at_end: u64,
    pub bytes_unknown_at_end: u64,
}
