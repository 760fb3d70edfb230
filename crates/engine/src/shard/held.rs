//! Completions held back by fault injection (tests only): the held queue,
//! and delivering what is due.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use auraio_ring::{Completion, Resources};

use crate::engine::Shared;
use crate::op_state::Target;

use super::{lock, Shard};

/// A completion held back by a fault hook (see the `fault` module).
pub(super) struct HeldOne {
    due: Instant,
    since: Instant,
    target: Target,
    result: i32,
    resources: Resources,
    latency_ns: u64,
}

/// Completions held back by fault injection, delivered when due.
#[derive(Default)]
pub(super) struct HeldQueue {
    items: Vec<HeldOne>,
    /// Set at shutdown: nothing is held any more, all is delivered at once.
    closed: bool,
}

impl Shard {
    /// Moves held completions out of the held queue: the due ones, or all
    /// of them (`all`, at shutdown, which also closes the queue).
    pub(super) fn take_held(&self, all: bool, out: &mut Vec<HeldOne>) {
        if !all && self.held_len.load(Relaxed) == 0 {
            return;
        }
        let mut h = lock(&self.held);
        if all {
            h.closed = true;
            out.append(&mut h.items);
        } else {
            let now = Instant::now();
            let mut i = 0;
            while i < h.items.len() {
                if h.items[i].due <= now {
                    out.push(h.items.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        self.held_len.store(h.items.len() as u32, Relaxed);
    }

    /// How long until the next held completion is due (`None`: none held).
    pub(crate) fn held_due_in(&self) -> Option<Duration> {
        if self.held_len.load(Relaxed) == 0 {
            return None;
        }
        let h = lock(&self.held);
        let now = Instant::now();
        h.items
            .iter()
            .map(|x| x.due.saturating_duration_since(now))
            .min()
    }

    /// Completions held back, delivered now; their latency includes the
    /// time they were held.
    pub(super) fn deliver_held(&self, sh: &Shared, held: Vec<HeldOne>) {
        let mut done = 0;
        for h in held {
            let extra = u64::try_from(h.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let latency = h.latency_ns.saturating_add(extra);
            self.deliver_one(sh, h.target, h.result, h.resources, latency, &mut done);
        }
        self.add_delivered(done);
    }

    /// Parks a completion in the held queue until `delay` has passed.
    /// Gives it back when the queue is closed (shutdown): deliver it now.
    pub(super) fn hold(
        &self,
        c: Completion<Target>,
        delay: Duration,
    ) -> Option<Completion<Target>> {
        let mut h = lock(&self.held);
        if h.closed {
            return Some(c);
        }
        let now = Instant::now();
        h.items.push(HeldOne {
            due: now.checked_add(delay).unwrap_or(now),
            since: now,
            target: c.token,
            result: c.result,
            resources: c.resources,
            latency_ns: c.latency_ns,
        });
        self.held_len.store(h.items.len() as u32, Relaxed);
        None
    }
}
