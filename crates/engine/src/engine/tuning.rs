//! Runtime knobs: the controllers' P99 ceiling and in-flight bounds, the
//! batch threshold, and the limit and threshold now in force.

use std::sync::atomic::Ordering;
use std::time::Duration;

#[cfg(doc)]
use crate::config::EngineBuilder;

use super::Engine;

impl Engine {
    // ----- runtime knobs --------------------------------------------------------

    /// Sets the P99 latency ceiling of every ring's controller.
    pub fn set_max_p99(&self, ceiling: Duration) {
        for shard in &self.sh().rings {
            shard.update_controller(self.sh(), |c| c.controller.set_p99_ceiling(ceiling));
        }
    }

    /// Sets the lowest in-flight limit of every ring's controller.
    pub fn set_min_in_flight(&self, n: u32) {
        let sh = self.sh();
        for shard in &sh.rings {
            shard.update_controller(sh, |c| {
                c.limits.min_in_flight = n.min(shard.capacity);
                c.limits = c.limits.normalized();
                c.controller.set_limits(c.limits);
            });
        }
    }

    /// Sets the highest in-flight limit (capped at each ring's capacity).
    pub fn set_max_in_flight(&self, n: u32) {
        let sh = self.sh();
        for shard in &sh.rings {
            shard.update_controller(sh, |c| {
                c.limits.max_in_flight = n.min(shard.capacity);
                c.limits = c.limits.normalized();
                c.controller.set_limits(c.limits);
            });
        }
    }

    /// `Some(n)`: fixed batch threshold on every ring; `None`: the
    /// controller decides again (from its next tick). A pinned batch is
    /// taken as asked (see [`EngineBuilder::batch_threshold`]): a lone op
    /// is not sent ahead of its batch.
    pub fn set_batch_threshold(&self, n: Option<u32>) {
        let sh = self.sh();
        sh.batch_override
            .store(n.map_or(0, |n| n.max(1)), Ordering::Relaxed);
        if let Some(n) = n {
            for shard in &sh.rings {
                shard
                    .batch
                    .store(n.clamp(1, shard.capacity.max(1)), Ordering::Relaxed);
                shard.apply(sh);
            }
        }
    }

    /// The in-flight limit now in force on ring `ring`.
    pub fn in_flight_limit(&self, ring: usize) -> Option<u32> {
        self.sh()
            .rings
            .get(ring)
            .map(|s| s.limit.load(Ordering::Relaxed))
    }

    /// The batch threshold now in force on ring `ring`.
    pub fn batch_threshold(&self, ring: usize) -> Option<u32> {
        self.sh()
            .rings
            .get(ring)
            .map(|s| s.batch.load(Ordering::Relaxed))
    }
}
