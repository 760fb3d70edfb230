//! A fallback backend with the same API as [`Ring`](crate::Ring) that runs
//! every op as a blocking syscall on a pool of worker threads.
//!
//! Use it where io_uring is unavailable: Docker's default seccomp profile
//! blocks `io_uring_setup`, some kernels set `kernel.io_uring_disabled`, old
//! kernels lack it. [`AnyRing`](crate::AnyRing) picks it automatically.
//!
//! # Model
//!
//! - [`BlockingRing::submit`] takes a slot (same slot table, same
//!   [`SlotId`]s as the io_uring ring) and queues the op locally; once
//!   [`queued`](BlockingRing::queued) reaches the batch threshold (or on
//!   `flush`/`poll`/`wait`) the queued ops are handed to the pool in one go.
//!   A hand-off counts as one `enter_calls`/`submit_calls` in [`RingStats`],
//!   its ops as `sqes_submitted`, so batching statistics read the same.
//! - Workers are started lazily, one per op waiting, up to
//!   [`max_workers`](BlockingRing::max_workers) (default
//!   `min(capacity, 256)`), and exit after 10 s idle. Since at most
//!   [`capacity`](BlockingRing::capacity) ops are in flight and a caller's
//!   in-flight limit bounds that further, the limit governs how many
//!   syscalls run at once.
//! - Every op produces exactly one [`Completion`] with the io_uring result
//!   convention (`>= 0`, or `-errno`), its resources handed back (reads with
//!   the init length set).
//!
//! # Differences from io_uring
//!
//! - `latency_ns` runs from the hand-off of the op to the pool (as with
//!   io_uring: one timestamp per hand-off, shared by every op in it; time
//!   spent queued locally waiting for the batch is excluded) to the moment
//!   the worker's syscall returned (io_uring: to the reap), so the reaper's
//!   own delay is excluded too. An op cancelled before its hand-off reports
//!   0.
//! - [`cancel`](BlockingRing::cancel) of an op that has not started
//!   completes it with `-ECANCELED` at once; an op whose syscall is already
//!   running cannot be interrupted and completes with its own result.
//! - A link timeout cancels the op with `-ECANCELED` only if it has not
//!   started by the deadline; a syscall already running completes with its
//!   result, however long it takes (io_uring would interrupt it).
//! - [`Fd::Fixed`] and the fixed buffer of
//!   `ReadFixed`/`WriteFixed` are resolved when the op is submitted (io_uring:
//!   when the kernel issues it). Registered files are duplicates of the
//!   caller's fds, so (as with io_uring) closing the original does not
//!   invalidate the table entry; an op keeps its entry's file open until it
//!   completes. `Close` of a fixed file clears the entry at submit.
//! - Offsets: `u64::MAX` means the file position (as io_uring's -1); on a
//!   pipe or socket the offset is ignored (as io_uring does); an offset above
//!   `i64::MAX` fails with `-EINVAL`.
//! - [`kind`](BlockingRing::kind) reports [`RingKind::Normal`]; SQPOLL is
//!   ignored. Use [`AnyRing::backend`](crate::AnyRing::backend) to tell the
//!   backends apart.
//! - Dropping the ring cancels the ops that have not started and waits (up to
//!   [`DRAIN_TIMEOUT`]) for running syscalls, so none
//!   starts or runs after the caller closes its files. Workers own the
//!   buffers of running ops, so even past that bound nothing is freed under
//!   a syscall.

mod exec;
mod register;
mod shared;
pub(crate) mod state;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use shared::Shared;

use crate::completion::{Completion, SubmitError, SubmitErrorKind};
use crate::config::{RingConfig, RingKind};
use crate::gaps::CompletionGaps;
use crate::op::{Fd, Op, OpKind};
use crate::ring::DRAIN_TIMEOUT;
use crate::slots::{SlotId, SlotTable};
use crate::stats::RingStats;
use crate::waiter::Waiter;
use state::{Done, Job, State, Target};

/// Default cap on worker threads per ring (also bounded by the capacity).
pub const MAX_WORKERS: u32 = 256;

/// The caller's side of an op in flight.
struct Entry<T> {
    token: T,
    /// When the op was handed to the pool; `u64::MAX` before (a completion
    /// from that state reports a latency of 0).
    submit_ns: u64,
}

/// A ring-shaped front end to a pool of threads doing blocking syscalls.
///
/// Same methods, signatures and guarantees as [`Ring`](crate::Ring) (see the
/// [module docs](self) for the differences in semantics). `Send` when
/// `T: Send`; not `Sync` (wrap it in a `Mutex` to share). Tokens never leave
/// the caller's thread: workers only see the ops.
pub struct BlockingRing<T> {
    shared: Arc<Shared>,
    slots: SlotTable<Entry<T>>,
    /// Ops submitted but not handed to the pool yet.
    pending: Vec<Job>,
    batch_threshold: u32,
    supported: u32,
    stats: RingStats,
    /// Gaps between completions while ops are handed off.
    gaps: CompletionGaps,
    waiter: Waiter,
    /// Registered files: duplicates of the caller's fds.
    files: Option<Vec<Option<Arc<OwnedFd>>>>,
    /// Registered buffers: (address, length).
    buffers: Option<Vec<(usize, usize)>>,
    /// Reused between reaps.
    reaped: Vec<Done>,
    fallback_reason: Option<String>,
}

impl<T> std::fmt::Debug for BlockingRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRing")
            .field("capacity", &self.capacity())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .field("batch_threshold", &self.batch_threshold)
            .finish_non_exhaustive()
    }
}

impl<T> BlockingRing<T> {
    /// Creates the backend: `capacity` is `cfg.sq_entries` rounded up to a
    /// power of two (as io_uring would), workers are capped at
    /// `min(capacity, MAX_WORKERS)`. Invalid configs are rejected exactly
    /// as [`Ring::new`](crate::Ring::new) rejects them. No thread is started
    /// until the first op is handed off.
    pub fn new(cfg: &RingConfig) -> io::Result<Self> {
        let (sq, _) = cfg.validate()?;
        Self::with_max_workers(cfg, sq.min(MAX_WORKERS))
    }

    /// [`new`](Self::new) with a custom cap on worker threads (clamped to
    /// `1..=capacity`).
    pub fn with_max_workers(cfg: &RingConfig, max_workers: u32) -> io::Result<Self> {
        let (sq, _) = cfg.validate()?;
        let eventfd = if cfg.eventfd {
            // SAFETY: plain syscall; returns a new fd or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh eventfd nobody else owns.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            None
        };
        let shared = Arc::new(Shared::new(
            State::new(sq, max_workers.clamp(1, sq)),
            eventfd,
        ));
        Ok(BlockingRing {
            waiter: Waiter::blocking(Arc::clone(&shared)),
            shared,
            slots: SlotTable::new(sq),
            pending: Vec::new(),
            batch_threshold: cfg.batch_threshold.clamp(1, sq),
            supported: OpKind::ALL.iter().fold(0, |acc, k| acc | k.bit()),
            stats: RingStats::default(),
            gaps: CompletionGaps::new(),
            files: None,
            buffers: None,
            reaped: Vec::new(),
            fallback_reason: None,
        })
    }

    /// Why [`AnyRing::new`](crate::AnyRing::new) chose this backend (the
    /// io_uring setup error), when it fell back to it.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    pub(crate) fn set_fallback_reason(&mut self, reason: String) {
        self.fallback_reason = Some(reason);
    }

    /// Always [`RingKind::Normal`] (there is no SQ polling to fall back from).
    pub fn kind(&self) -> RingKind {
        RingKind::Normal
    }

    /// Every [`OpKind`] is supported (emulated), unless disabled with
    /// [`disable_op`](Self::disable_op).
    pub fn supports(&self, op: OpKind) -> bool {
        self.supported & op.bit() != 0
    }

    /// Treats `op` as unsupported from now on (as
    /// [`Ring::disable_op`](crate::Ring::disable_op)).
    pub fn disable_op(&mut self, op: OpKind) {
        self.supported &= !op.bit();
    }

    /// See [`Ring::token`](crate::Ring::token).
    pub fn token(&self, slot: SlotId) -> Option<&T> {
        self.slots.get(slot).map(|e| &e.token)
    }

    /// Most ops that can be in flight at once (slots).
    pub fn capacity(&self) -> u32 {
        self.slots.capacity()
    }

    /// Slots taken: ops submitted whose completion was not reaped yet.
    pub fn in_flight(&self) -> u32 {
        self.slots.len()
    }

    /// Ops submitted but not handed to the worker pool yet.
    pub fn queued(&self) -> u32 {
        self.pending.len() as u32
    }

    /// Always 0: finished ops wait in the shared completion queue (their
    /// slots stay taken until reaped), never in a side queue.
    pub fn ready_len(&self) -> usize {
        0
    }

    /// The capacity (the "SQ" of this backend).
    pub fn sq_entries(&self) -> u32 {
        self.capacity()
    }

    /// Twice the capacity, as a ring of the same config would have.
    pub fn cq_entries(&self) -> u32 {
        self.capacity().saturating_mul(2)
    }

    /// Hand off to the pool once this many ops are queued.
    pub fn batch_threshold(&self) -> u32 {
        self.batch_threshold
    }

    /// Sets the batch threshold, clamped to `1..=capacity`. Does not hand
    /// off by itself: the next submit, `flush`, `poll` or `wait` does.
    pub fn set_batch_threshold(&mut self, n: u32) {
        self.batch_threshold = n.clamp(1, self.capacity());
    }

    /// Cap on worker threads.
    pub fn max_workers(&self) -> u32 {
        self.shared.lock().max_workers
    }

    /// Changes the cap on worker threads (clamped to `1..=capacity`).
    /// Existing workers above a lowered cap finish their op and stay until
    /// they idle out.
    pub fn set_max_workers(&mut self, n: u32) {
        let cap = self.capacity();
        self.shared.lock().max_workers = n.clamp(1, cap);
    }

    /// Worker threads alive now.
    pub fn workers(&self) -> u32 {
        self.shared.lock().workers
    }

    /// Ops whose syscall is running now (started by a worker, not finished).
    pub fn running(&self) -> u32 {
        self.shared.lock().running
    }

    /// Most ops that ever ran at the same time (never above
    /// [`max_workers`](Self::max_workers) or the capacity).
    pub fn peak_running(&self) -> u32 {
        self.shared.lock().peak_running
    }

    /// A handle that blocks until completions are waiting, without `&self`.
    pub fn waiter(&self) -> Waiter {
        self.waiter.clone()
    }

    /// Cumulative counters (`enter_calls`: hand-offs plus blocking waits in
    /// [`wait`](Self::wait); `submit_calls`: hand-offs; `sqes_submitted`:
    /// ops handed off).
    pub fn stats(&self) -> RingStats {
        let mut s = self.stats;
        s.waiter_enter_calls = self.waiter.enters();
        s.gaps = self.gaps.stats();
        s
    }

    /// See [`Ring::set_long_gap_ns`](crate::Ring::set_long_gap_ns). A
    /// gap here ends at the latest finish time of the jobs reaped together.
    pub fn set_long_gap_ns(&mut self, ns: u64) {
        self.gaps.set_long_ns(ns);
    }

    /// The eventfd (when [`RingConfig::eventfd`] was set): workers signal it
    /// after every completion, as the kernel does for a ring.
    pub fn eventfd(&self) -> Option<RawFd> {
        self.shared.eventfd()
    }

    /// Nanoseconds since the ring was created (the clock latencies use).
    pub fn now_ns(&self) -> u64 {
        self.shared.now_ns()
    }

    // ----- submission -------------------------------------------------

    /// Queues `op`; hands queued ops to the pool when
    /// [`queued`](Self::queued) reaches the batch threshold. Refused (op and
    /// token handed back) when no slot is free, the op is disabled or
    /// malformed.
    pub fn submit(&mut self, op: Op, token: T) -> Result<SlotId, SubmitError<T>> {
        if let Err(kind) = self.check(&op, 1) {
            return Err(SubmitError::new(kind, op, token));
        }
        let id = match self.take_slot(token) {
            Ok(id) => id,
            Err(token) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let job = self.make_job(id, op, true, None);
        self.pending.push(job);
        self.after_push();
        Ok(id)
    }

    /// Queues two linked ops: `second` starts only after `first` succeeded
    /// fully (a short read or write counts as failure); otherwise `second`
    /// completes with `-ECANCELED`. Both run on the same worker, in order.
    pub fn submit_linked(
        &mut self,
        first: (Op, T),
        second: (Op, T),
    ) -> Result<(SlotId, SlotId), SubmitError<T>> {
        let (op1, t1) = first;
        let (op2, t2) = second;
        let checked = self.check(&op1, 2).and_then(|()| self.check(&op2, 2));
        if let Err(kind) = checked {
            let mut e = SubmitError::new(kind, op1, t1);
            e.second = Some((op2, t2));
            return Err(e);
        }
        let (id1, id2) = match (self.take_slot(t1), ()) {
            (Ok(id1), ()) => match self.take_slot(t2) {
                Ok(id2) => (id1, id2),
                Err(t2) => {
                    let t1 = self.untake_slot(id1);
                    let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                    e.second = Some((op2, t2));
                    return Err(e);
                }
            },
            (Err(t1), ()) => {
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let mut j1 = self.make_job(id1, op1, true, None);
        j1.link = Some(id2);
        let j2 = self.make_job(id2, op2, false, None);
        self.pending.push(j1);
        self.pending.push(j2);
        self.after_push();
        Ok((id1, id2))
    }

    /// Queues `op` with a timeout: if it has not *started* after `timeout`
    /// it completes with `-ECANCELED`. A syscall already running when the
    /// timeout expires is not interrupted and completes with its result.
    pub fn submit_with_timeout(
        &mut self,
        op: Op,
        token: T,
        timeout: Duration,
    ) -> Result<SlotId, SubmitError<T>> {
        let checked = self.check(&op, 1).and_then(|()| {
            if self.supports(OpKind::LinkTimeout) {
                Ok(())
            } else {
                Err(SubmitErrorKind::Unsupported(OpKind::LinkTimeout))
            }
        });
        if let Err(kind) = checked {
            return Err(SubmitError::new(kind, op, token));
        }
        let id = match self.take_slot(token) {
            Ok(id) => id,
            Err(token) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let deadline = self.now_ns().saturating_add(ns);
        let job = self.make_job(id, op, true, Some(deadline));
        self.pending.push(job);
        self.after_push();
        Ok(id)
    }

    /// Cancels the op in `slot`. If it has not started it completes with
    /// `-ECANCELED` (at once: the completion is ready for the next
    /// `poll`); if its syscall is running it completes with its own result.
    /// Either way exactly one completion. Cancelling twice is a no-op;
    /// `NotFound` if the slot holds no op (already reaped, or stale).
    pub fn cancel(&mut self, slot: SlotId) -> io::Result<()> {
        if !self.supports(OpKind::AsyncCancel) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "cancellation is disabled on this ring",
            ));
        }
        if self.slots.get(slot).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{slot:?} has no operation in flight"),
            ));
        }
        let now = self.now_ns();
        if let Some(pos) = self.pending.iter().position(|j| j.id == slot) {
            // Not handed off yet: complete it (and its link second) here.
            let job = self.pending.remove(pos);
            let second = job
                .link
                .and_then(|l| self.pending.iter().position(|j| j.id == l))
                .map(|p| self.pending.remove(p));
            let mut st = self.shared.lock();
            st.finish_cancelled(job, now);
            if let Some(s) = second {
                st.finish_cancelled(s, now);
            }
            drop(st);
            self.shared.signal_completion();
            return Ok(());
        }
        let cancelled = self.shared.lock().cancel(slot, now);
        if cancelled {
            self.shared.signal_completion();
        }
        Ok(())
    }

    /// Wakes threads blocked in [`Waiter::wait`] (counts as one completion
    /// for their `min` until the next reap). Never fails.
    pub fn notify(&mut self) -> io::Result<()> {
        self.shared.lock().notifies += 1;
        self.shared.signal_completion();
        Ok(())
    }

    /// Hands every queued op to the pool. Returns how many.
    pub fn flush(&mut self) -> io::Result<u32> {
        Ok(self.hand_off())
    }

    // ----- completion -------------------------------------------------

    /// Non-blocking: hands queued ops off, then moves every finished op's
    /// completion into `out` and returns how many.
    pub fn poll(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<usize> {
        self.hand_off();
        Ok(self.reap(None, out))
    }

    /// Hands queued ops off, then blocks until at least `min` completions
    /// were moved into `out` or `timeout` passed (`None` = no timeout).
    /// `min` is capped at what can still complete. A timeout is not an
    /// error.
    pub fn wait(
        &mut self,
        min: u32,
        timeout: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> io::Result<usize> {
        if min == 0 || timeout == Some(Duration::ZERO) {
            return self.poll(out);
        }
        self.hand_off();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut got = self.reap(None, out) as u32;
        loop {
            let target = min.min(got + self.slots.len());
            if got >= target {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.stats.enter_calls += 1;
            got += self.reap(Some(deadline), out) as u32;
        }
        Ok(got as usize)
    }

    /// Cancels every op that has not started, waits for running ones and
    /// reaps until each op in flight has produced its one completion (into
    /// `out`). Gives up after [`DRAIN_TIMEOUT`] with `TimedOut` (a syscall
    /// that never returns, e.g. a read from an idle pipe).
    pub fn drain_for_shutdown(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        self.drain_with_timeout(out, DRAIN_TIMEOUT)
    }

    /// [`drain_for_shutdown`](Self::drain_for_shutdown) with a custom bound.
    pub fn drain_with_timeout(
        &mut self,
        out: &mut Vec<Completion<T>>,
        timeout: Duration,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 86_400));
        self.cancel_everything();
        loop {
            self.reap(None, out);
            if self.slots.len() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} ops still running after {:?}", self.slots.len(), timeout),
                ));
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            self.reap(Some(Some(now + slice)), out);
        }
    }

    // ----- internals --------------------------------------------------

    fn check(&self, op: &Op, slots: u32) -> Result<(), SubmitErrorKind> {
        let kind = op.kind();
        if !self.supports(kind) {
            return Err(SubmitErrorKind::Unsupported(kind));
        }
        op.validate().map_err(SubmitErrorKind::InvalidInput)?;
        if self.slots.available() < slots {
            return Err(SubmitErrorKind::Full);
        }
        Ok(())
    }

    fn take_slot(&mut self, token: T) -> Result<SlotId, T> {
        self.slots
            .insert(Entry {
                token,
                submit_ns: u64::MAX,
            })
            .map_err(|e| e.token)
    }

    fn untake_slot(&mut self, id: SlotId) -> T {
        match self.slots.remove(id) {
            Some(e) => e.token,
            // `id` was returned by `take_slot` just before; nothing else ran.
            None => unreachable!("slot taken a moment ago vanished"),
        }
    }

    /// Resolves registered files/buffers now, as the job will run later.
    fn make_job(&mut self, id: SlotId, op: Op, queued: bool, deadline_ns: Option<u64>) -> Job {
        let fd = match &op {
            Op::Read { fd, .. }
            | Op::Write { fd, .. }
            | Op::Readv { fd, .. }
            | Op::Writev { fd, .. }
            | Op::Fsync { fd, .. }
            | Op::Fallocate { fd, .. }
            | Op::Ftruncate { fd, .. }
            | Op::ReadFixed { fd, .. }
            | Op::WriteFixed { fd, .. } => Some(*fd),
            Op::Close { fd } => Some(*fd),
            Op::Nop | Op::Statx { .. } | Op::OpenAt { .. } => None,
        };
        let closing = matches!(op, Op::Close { .. });
        let target = match fd {
            None => Target::Raw(-1),
            Some(Fd::Raw(raw)) => Target::Raw(raw),
            Some(Fd::Fixed(i)) => self.resolve_file(i, closing),
        };
        let pre = match &op {
            Op::ReadFixed { buf, buf_index, .. } => {
                self.check_fixed_buf(*buf_index, buf.stable_ptr() as usize, buf.bytes_total())
            }
            Op::WriteFixed { buf, buf_index, .. } => {
                self.check_fixed_buf(*buf_index, buf.stable_ptr() as usize, buf.bytes_init())
            }
            _ => None,
        };
        Job {
            id,
            op,
            target,
            pre,
            link: None,
            queued,
            deadline_ns,
        }
    }

    fn after_push(&mut self) {
        if self.pending.len() as u32 >= self.batch_threshold {
            self.hand_off();
        }
    }

    /// Hands every pending op to the pool in one go (one "enter") and wakes
    /// or starts workers for them. Returns how many ops were handed off.
    fn hand_off(&mut self) -> u32 {
        if self.pending.is_empty() {
            return 0;
        }
        let n = self.pending.len() as u32;
        let now = self.now_ns();
        let mut timers = false;
        let (wake, spawn, start_timer) = {
            let mut st = self.shared.lock();
            for job in self.pending.drain(..) {
                if let Some(e) = self.slots.get_mut(job.id) {
                    e.submit_ns = now;
                }
                timers |= job.deadline_ns.is_some();
                if let Err(job) = st.enqueue(job) {
                    // Unreachable (the slot table hands out each index
                    // once), but never lose an op: fail it.
                    let id = job.id;
                    let res = job.into_cancelled();
                    st.complete(id, -libc::EAGAIN, res, now);
                }
            }
            let (wake, spawn) = st.plan_workers();
            let start_timer = timers && !st.timer_running;
            if start_timer {
                st.timer_running = true;
            }
            (wake, spawn, start_timer)
        };
        self.stats.enter_calls += 1;
        self.stats.submit_calls += 1;
        self.stats.sqes_submitted += u64::from(n);
        self.gaps.on_handoff(now);
        self.shared.wake_workers(wake);
        if timers && !start_timer {
            self.shared.wake_timer();
        }
        if start_timer && shared::spawn_timer(&self.shared).is_err() {
            // Workers still drop ops whose deadline passed before they start.
            self.shared.lock().timer_running = false;
        }
        let mut failed = 0;
        for _ in 0..spawn {
            if shared::spawn_worker(&self.shared).is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            let mut st = self.shared.lock();
            st.workers = st.workers.saturating_sub(failed);
            st.starting = st.starting.saturating_sub(failed);
            if st.workers == 0 {
                // No thread to run anything: fail what is queued rather
                // than leave it hanging.
                while let Some(job) = st.pop_next() {
                    let id = job.id;
                    let res = job.into_cancelled();
                    st.complete(id, -libc::EAGAIN, res, now);
                }
                drop(st);
                self.shared.signal_completion();
            }
        }
        n
    }

    /// Moves finished ops from the shared queue into `out`, freeing their
    /// slots, after blocking for one until the deadline when `wait` is
    /// `Some` (`Some(None)`: no deadline). Consumes pending notifies.
    fn reap(&mut self, wait: Option<Option<Instant>>, out: &mut Vec<Completion<T>>) -> usize {
        {
            let mut st = self.shared.lock();
            if let Some(deadline) = wait {
                st = self.shared.wait_done(st, deadline);
            }
            st.notifies = 0;
            std::mem::swap(&mut st.done, &mut self.reaped);
        }
        let mut n = 0;
        let mut last_end = 0;
        for d in self.reaped.drain(..) {
            last_end = last_end.max(d.end_ns);
            match self.slots.remove(d.id) {
                Some(e) => {
                    out.push(Completion {
                        token: e.token,
                        slot: d.id,
                        result: d.result,
                        resources: d.resources,
                        latency_ns: d.end_ns.saturating_sub(e.submit_ns),
                    });
                    n += 1;
                }
                None => self.stats.stale_cqes += 1,
            }
        }
        self.stats.completions += n as u64;
        if n > 0 {
            let busy = self.slots.len() as usize > self.pending.len();
            self.gaps.on_reap(last_end, busy);
        }
        n
    }

    /// Cancels the ops not handed off and those not started.
    fn cancel_everything(&mut self) {
        let now = self.now_ns();
        let mut st = self.shared.lock();
        for job in self.pending.drain(..) {
            st.finish_cancelled(job, now);
        }
        st.cancel_all(now);
        drop(st);
        self.shared.signal_completion();
    }
}

impl<T> Drop for BlockingRing<T> {
    fn drop(&mut self) {
        let now = self.now_ns();
        let mut st = self.shared.lock();
        self.pending.clear();
        st.cancel_all(now);
        st.shutdown = true;
        drop(st);
        self.shared.wake_all();
        // No syscall of ours may start or still run once the caller goes
        // on to close its files.
        let _ = self.shared.wait_idle(Instant::now() + DRAIN_TIMEOUT);
        // Hand the finished ops' resources back (drop them) now rather than
        // when the last worker thread lets go of the shared state.
        let done = std::mem::take(&mut self.shared.lock().done);
        drop(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_batch_follow_the_config() {
        let r: BlockingRing<()> = BlockingRing::new(&RingConfig {
            sq_entries: 100,
            batch_threshold: 1000,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.capacity(), 128);
        assert_eq!(r.batch_threshold(), 128);
        assert_eq!(r.max_workers(), 128);
        assert_eq!(r.workers(), 0, "workers start lazily");
        assert!(OpKind::ALL.iter().all(|k| r.supports(*k)));
    }
}
