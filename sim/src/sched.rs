//! The discrete-event queue: events ordered by time, ties broken by the order
//! they were pushed, so a run is deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::device::DevOp;

/// Everything that can happen in a simulation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ev {
    /// The device finished an op (unless a stall defers it).
    DevDone(DevOp),
    /// A device-wide stall starts.
    Stall,
    /// The sleeping reaper thread wakes up to reap completions.
    HostWake,
    /// The reaper thread finished a round of reaping and submitting.
    HostDone,
    /// The controller's tick.
    Tick,
    /// Open-loop workload: the application issues one op.
    Arrival,
    /// Open loop: the application's next poll flushes its queued SQEs.
    AppFlush,
    /// The noisy neighbour issues one op.
    NeighbourArrival,
    /// Scenario step event number `n`.
    Step(usize),
}

#[derive(Debug)]
struct Entry {
    t: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.t == o.t && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest pops first.
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// Time-ordered event queue with the simulation clock (ns).
#[derive(Debug, Default)]
pub struct Sched {
    heap: BinaryHeap<Entry>,
    seq: u64,
    now: u64,
}

impl Sched {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current simulated time, ns.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedule `ev` at `t` (clamped to now: no event goes back in time).
    pub fn push(&mut self, t: u64, ev: Ev) {
        let t = t.max(self.now);
        self.heap.push(Entry {
            t,
            seq: self.seq,
            ev,
        });
        self.seq += 1;
    }

    /// Pop the next event at or before `until`, advancing the clock.
    pub fn pop_until(&mut self, until: u64) -> Option<Ev> {
        if self.heap.peek().is_some_and(|e| e.t <= until) {
            let e = self.heap.pop()?;
            self.now = e.t;
            Some(e.ev)
        } else {
            None
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// No events waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_push_order() {
        let mut s = Sched::new();
        s.push(20, Ev::Tick);
        s.push(10, Ev::Stall);
        s.push(10, Ev::HostWake);
        assert_eq!(s.pop_until(100), Some(Ev::Stall));
        assert_eq!(s.now(), 10);
        assert_eq!(s.pop_until(100), Some(Ev::HostWake));
        assert_eq!(s.pop_until(15), None);
        assert_eq!(s.pop_until(100), Some(Ev::Tick));
        assert_eq!(s.now(), 20);
        assert!(s.is_empty());
        // Pushing into the past lands at "now".
        s.push(5, Ev::Arrival);
        assert_eq!(s.pop_until(100), Some(Ev::Arrival));
        assert_eq!(s.now(), 20);
    }
}
