//! The blocking backend's shared state: jobs not yet started (by slot
//! index), the start queue, finished jobs waiting to be reaped, timers and
//! the worker bookkeeping. Pure data: the locking lives in `shared.rs`, so
//! the same code runs under loom.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::op::Op;
use crate::resources::{Held, IovecArray, Resources};
use crate::slots::SlotId;

/// The file an op will use, resolved when it was submitted.
pub(crate) enum Target {
    /// The op takes no fd (nop, statx, openat) or uses a raw fd of its own.
    Raw(RawFd),
    /// A registered file: the job keeps the table's duplicate open.
    Registered(Arc<OwnedFd>),
    /// `Fd::Fixed` with no file behind it: the op fails with `-EBADF`.
    Missing,
}

impl Target {
    /// The fd to pass to the syscall, or `-EBADF`.
    pub(crate) fn raw(&self) -> Result<RawFd, i32> {
        match self {
            Target::Raw(fd) => Ok(*fd),
            Target::Registered(fd) => Ok(fd.as_raw_fd()),
            Target::Missing => Err(-libc::EBADF),
        }
    }
}

/// One submitted op that has not started yet.
pub(crate) struct Job {
    pub(crate) id: SlotId,
    pub(crate) op: Op,
    pub(crate) target: Target,
    /// A result decided at submit time (e.g. `-EFAULT` for a fixed buffer
    /// outside its registered region); the syscall is then skipped.
    pub(crate) pre: Option<i32>,
    /// The second op of a link, started only if this one succeeds fully.
    pub(crate) link: Option<SlotId>,
    /// In the start queue (false for the second op of a link).
    pub(crate) queued: bool,
    /// Link timeout: cancelled if not started by then (ns on the ring clock).
    pub(crate) deadline_ns: Option<u64>,
}

impl Job {
    /// The op's resources handed back without running it.
    pub(crate) fn into_cancelled(self) -> Resources {
        // (A panic in a buffer's `set_init` is caught there; the op stays
        // ECANCELED.)
        held_of(self.op).into_resources(-libc::ECANCELED).1
    }
}

/// What an op owns, for an op that never ran.
pub(crate) fn held_of(op: Op) -> Held {
    match op {
        Op::Nop
        | Op::Fsync { .. }
        | Op::Fallocate { .. }
        | Op::Ftruncate { .. }
        | Op::Close { .. } => Held::None,
        Op::Read { buf, .. } | Op::ReadFixed { buf, .. } => Held::Read(buf),
        Op::Write { buf, .. } | Op::WriteFixed { buf, .. } => Held::Write(buf),
        Op::Readv { bufs, .. } => Held::Readv(Box::new((bufs, IovecArray::new(Vec::new())))),
        Op::Writev { bufs, .. } => Held::Writev(Box::new((bufs, IovecArray::new(Vec::new())))),
        Op::Statx { path, .. } => {
            // SAFETY: `libc::statx` is plain old data; all-zero is valid.
            let st: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
            Held::Statx(Box::new((st, path)))
        }
        Op::OpenAt { path, .. } => Held::Path(path),
    }
}

/// One finished op, waiting to be reaped by the ring.
pub(crate) struct Done {
    pub(crate) id: SlotId,
    pub(crate) result: i32,
    pub(crate) resources: Resources,
    /// When the op finished (ns on the ring clock).
    pub(crate) end_ns: u64,
}

/// Everything the ring, the workers, the timer and waiters share.
pub(crate) struct State {
    /// Ops not started yet, by slot index (queued ones and link seconds).
    jobs: Vec<Option<Job>>,
    /// Start order. May hold ids whose job was cancelled (skipped).
    queue: VecDeque<SlotId>,
    /// Live jobs in `queue`.
    pub(crate) waiting: u32,
    /// Finished ops not reaped yet.
    pub(crate) done: Vec<Done>,
    /// Link-timeout deadlines: (deadline ns, slot id). May hold stale ids.
    pub(crate) timers: BinaryHeap<Reverse<(u64, u64)>>,
    pub(crate) timer_running: bool,
    /// Worker threads alive (or being started).
    pub(crate) workers: u32,
    /// Workers spawned whose thread has not taken the lock yet.
    pub(crate) starting: u32,
    /// Parked workers nobody has signalled yet.
    pub(crate) idle: u32,
    /// Signals sent to parked workers and not consumed yet.
    pub(crate) signals: u32,
    pub(crate) max_workers: u32,
    /// Ops executing right now (syscall in progress or about to start).
    pub(crate) running: u32,
    pub(crate) peak_running: u32,
    /// `notify` calls not consumed by a reap (they wake waiters).
    pub(crate) notifies: u32,
    pub(crate) shutdown: bool,
}

impl State {
    pub(crate) fn new(capacity: u32, max_workers: u32) -> Self {
        State {
            jobs: (0..capacity).map(|_| None).collect(),
            queue: VecDeque::new(),
            waiting: 0,
            done: Vec::new(),
            timers: BinaryHeap::new(),
            timer_running: false,
            workers: 0,
            starting: 0,
            idle: 0,
            signals: 0,
            max_workers,
            running: 0,
            peak_running: 0,
            notifies: 0,
            shutdown: false,
        }
    }

    /// Stores a job handed off by the ring. Returns false (and gives the job
    /// back) if its slot index is out of range or still holds a job, which
    /// the ring's slot table rules out.
    pub(crate) fn enqueue(&mut self, job: Job) -> Result<(), Job> {
        let Some(entry) = self.jobs.get_mut(job.id.index() as usize) else {
            return Err(job);
        };
        if entry.is_some() {
            return Err(job);
        }
        if job.queued {
            self.queue.push_back(job.id);
            self.waiting += 1;
        }
        if let Some(d) = job.deadline_ns {
            self.timers.push(Reverse((d, job.id.as_u64())));
        }
        *entry = Some(job);
        Ok(())
    }

    /// Takes the not-yet-started job `id` out (it will not run any more).
    pub(crate) fn take_job(&mut self, id: SlotId) -> Option<Job> {
        let entry = self.jobs.get_mut(id.index() as usize)?;
        if entry.as_ref().map(|j| j.id) != Some(id) {
            return None;
        }
        let job = entry.take()?;
        if job.queued {
            self.waiting = self.waiting.saturating_sub(1);
        }
        Some(job)
    }

    /// Whether `id` is still waiting to start.
    #[cfg(test)]
    pub(crate) fn is_pending(&self, id: SlotId) -> bool {
        matches!(self.jobs.get(id.index() as usize), Some(Some(j)) if j.id == id)
    }

    /// The next job to start, in submission order.
    pub(crate) fn pop_next(&mut self) -> Option<Job> {
        while let Some(id) = self.queue.pop_front() {
            if let Some(job) = self.take_job(id) {
                return Some(job);
            }
        }
        None
    }

    /// Records a finished op.
    pub(crate) fn complete(&mut self, id: SlotId, result: i32, resources: Resources, now: u64) {
        self.done.push(Done {
            id,
            result,
            resources,
            end_ns: now,
        });
    }

    /// Completes a job that will never run with `-ECANCELED`, and the
    /// second op of its link too.
    pub(crate) fn finish_cancelled(&mut self, job: Job, now: u64) {
        let link = job.link;
        let id = job.id;
        let res = job.into_cancelled();
        self.complete(id, -libc::ECANCELED, res, now);
        if let Some(second) = link.and_then(|l| self.take_job(l)) {
            self.finish_cancelled(second, now);
        }
    }

    /// Cancels `id` if it has not started. Returns whether it did.
    pub(crate) fn cancel(&mut self, id: SlotId, now: u64) -> bool {
        match self.take_job(id) {
            Some(job) => {
                self.finish_cancelled(job, now);
                true
            }
            None => false,
        }
    }

    /// Cancels every job that has not started. Returns how many.
    pub(crate) fn cancel_all(&mut self, now: u64) -> usize {
        let ids: Vec<SlotId> = self.jobs.iter().flatten().map(|j| j.id).collect();
        ids.into_iter().filter(|id| self.cancel(*id, now)).count()
    }

    /// Fires due link timeouts: not-yet-started ops complete with
    /// `-ECANCELED`. Returns how many fired.
    pub(crate) fn expire(&mut self, now: u64) -> usize {
        let mut fired = 0;
        while let Some(&Reverse((deadline, raw))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if let Some(id) = SlotId::from_u64(raw) {
                if self.cancel(id, now) {
                    fired += 1;
                }
            }
        }
        // Drop entries of ops that already started, so the heap stays small.
        if self.timers.len() > 2 * self.jobs.len() + 64 {
            let jobs = &self.jobs;
            self.timers.retain(|Reverse((_, raw))| {
                SlotId::from_u64(*raw).is_some_and(
                    |id| matches!(jobs.get(id.index() as usize), Some(Some(j)) if j.id == id),
                )
            });
        }
        fired
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((d, _))| *d)
    }

    /// How many more workers to wake or start for the queued jobs:
    /// `(wake, spawn)`. Updates the bookkeeping for both.
    pub(crate) fn plan_workers(&mut self) -> (u32, u32) {
        let mut need = self
            .waiting
            .saturating_sub(self.signals)
            .saturating_sub(self.starting);
        let wake = need.min(self.idle);
        self.idle -= wake;
        self.signals += wake;
        need -= wake;
        let spawn = need.min(self.max_workers.saturating_sub(self.workers));
        self.workers += spawn;
        self.starting += spawn;
        (wake, spawn)
    }

    /// A parked worker woke up (signalled, timed out or spuriously).
    pub(crate) fn unpark(&mut self) {
        if self.signals > 0 {
            self.signals -= 1;
        } else {
            self.idle = self.idle.saturating_sub(1);
        }
    }

    /// A job started running.
    pub(crate) fn start_running(&mut self) {
        self.running += 1;
        self.peak_running = self.peak_running.max(self.running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: SlotId, queued: bool, link: Option<SlotId>, deadline: Option<u64>) -> Job {
        Job {
            id,
            op: Op::Nop,
            target: Target::Raw(-1),
            pre: None,
            link,
            queued,
            deadline_ns: deadline,
        }
    }

    #[test]
    fn cancel_takes_a_queued_job_exactly_once() {
        let mut st = State::new(4, 2);
        let a = SlotId::new(0, 0);
        assert!(st.enqueue(job(a, true, None, None)).is_ok());
        assert!(st.enqueue(job(a, true, None, None)).is_err(), "slot busy");
        assert!(st.cancel(a, 1));
        assert!(!st.cancel(a, 2));
        assert_eq!(st.done.len(), 1);
        assert_eq!(st.done[0].result, -libc::ECANCELED);
        assert!(st.pop_next().is_none(), "the stale queue entry is skipped");
        assert_eq!(st.waiting, 0);
    }

    #[test]
    fn cancelling_a_link_head_cancels_the_second() {
        let mut st = State::new(4, 2);
        let (a, b) = (SlotId::new(0, 0), SlotId::new(1, 0));
        assert!(st.enqueue(job(a, true, Some(b), None)).is_ok());
        assert!(st.enqueue(job(b, false, None, None)).is_ok());
        assert_eq!(st.waiting, 1);
        assert!(st.cancel(a, 0));
        let mut ids: Vec<_> = st.done.iter().map(|d| d.id).collect();
        ids.sort();
        assert_eq!(ids, vec![a, b]);
    }

    #[test]
    fn stale_ids_do_not_touch_a_reused_slot() {
        let mut st = State::new(1, 1);
        let old = SlotId::new(0, 0);
        let new = SlotId::new(0, 1);
        assert!(st.enqueue(job(new, true, None, Some(5))).is_ok());
        assert!(!st.cancel(old, 0));
        assert!(st.is_pending(new));
        assert_eq!(st.expire(4), 0);
        assert_eq!(st.expire(5), 1);
        assert!(!st.is_pending(new));
    }

    #[test]
    fn worker_plan_wakes_idle_then_spawns_up_to_the_cap() {
        let mut st = State::new(8, 3);
        for i in 0..5 {
            assert!(st.enqueue(job(SlotId::new(i, 0), true, None, None)).is_ok());
        }
        st.idle = 1;
        st.workers = 1;
        assert_eq!(st.plan_workers(), (1, 2));
        // Nothing more to do until someone picks work up.
        assert_eq!(st.plan_workers(), (0, 0));
        st.unpark();
        assert_eq!((st.idle, st.signals), (0, 0));
    }
}
