//! [`Ring`]: one io_uring instance with its slot table and batching.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use crate::clock::Clock;
use crate::completion::{Completion, SubmitError, SubmitErrorKind};
use crate::config::{RingConfig, RingKind};
use crate::gaps::CompletionGaps;
use crate::op::{Op, OpKind};
use crate::probe;
use crate::resources::Held;
use crate::slots::{SlotId, SlotTable};
use crate::stats::RingStats;
use crate::waiter::{self, Waiter, ENTER_GETEVENTS, ENTER_SQ_WAIT, ENTER_SQ_WAKEUP};

/// `user_data` bit marking the ring's own requests; never set in a [`SlotId`].
const INTERNAL: u64 = 1 << 63;
/// `user_data` of link-timeout SQEs.
const UD_TIMEOUT: u64 = INTERNAL | 1;
/// `user_data` of async-cancel SQEs.
const UD_CANCEL: u64 = INTERNAL | 2;
/// `user_data` of wake-up NOPs ([`Ring::notify`]).
const UD_NOTIFY: u64 = INTERNAL | 3;

/// `submit_ns` of an op whose SQE has not been handed to the kernel yet
/// (a completion from that state reports a latency of 0).
const NOT_SUBMITTED: u64 = u64::MAX;

/// How long [`Ring::drain_for_shutdown`] waits for cancelled ops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries for transient conditions (EINTR, EBUSY/EAGAIN, full SQ).
const RETRIES: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelState {
    None,
    /// Asked for, but waiting for CQ budget or SQ room.
    Deferred,
    /// The cancel SQE has been pushed.
    Issued,
}

/// One op in flight: the caller's token plus everything the kernel may touch.
struct InFlight<T> {
    token: T,
    held: Held,
    /// When the op's SQE was handed to the kernel ([`NOT_SUBMITTED`] before).
    submit_ns: u64,
    /// A link timeout's timespec (read by the kernel when it preps the SQE).
    timeout: Option<Box<types::Timespec>>,
    cancel: CancelState,
}

/// One io_uring instance: a slot table, SQE batching and completion reaping.
///
/// `T` is the caller's per-op completion target (a callback, a waker slot,
/// an index...). It is returned untouched with the op's [`Completion`].
///
/// Invariants:
/// - at most [`capacity`](Self::capacity) ops are in flight, and the CQEs the
///   kernel can owe us (ops + internal link-timeout and cancel requests) never
///   exceed the CQ size, so the CQ cannot overflow;
/// - every submitted op produces exactly one [`Completion`], after which its
///   slot is reused under a new generation;
/// - buffers, iovecs, paths and statx results stay owned by the slot until
///   the op's CQE arrives (also across [`Drop`]: ops that cannot be drained
///   have their resources leaked rather than freed under the kernel).
///
/// `Send` when `T: Send`; not `Sync` (wrap it in a `Mutex` to share). The
/// ring never runs caller code: completions are returned as values, so the
/// caller can release its lock before handling them.
pub struct Ring<T> {
    pub(crate) ring: IoUring,
    slots: SlotTable<InFlight<T>>,
    kind: RingKind,
    supported: u32,
    sq_entries: u32,
    cq_entries: u32,
    /// Internal requests (link timeouts, cancels, notifies) whose CQE has not
    /// been reaped yet.
    internal: u32,
    /// SQEs pushed but not yet handed to the kernel.
    queued: u32,
    /// `user_data` of every SQE pushed but not yet consumed by the kernel,
    /// in SQ order (normal rings only; `queued` long). The enter that hands
    /// them over stamps their ops' `submit_ns` with one clock read.
    /// Allocated once with room for the whole SQ, so it never grows.
    unstamped: Vec<u64>,
    batch_threshold: u32,
    ext_arg: bool,
    /// Whether `IORING_REGISTER_SYNC_CANCEL` may work (cleared on EINVAL).
    sync_cancel_ok: bool,
    stats: RingStats,
    /// Gaps between completions while ops are in flight.
    gaps: CompletionGaps,
    /// Completions reaped while submitting (EBUSY handling); handed out first.
    ready: VecDeque<Completion<T>>,
    deferred_cancels: Vec<SlotId>,
    /// The latency clock (TSC where the kernel uses it, see `clock`).
    clock: Clock,
    waiter: Waiter,
    eventfd: Option<OwnedFd>,
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("kind", &self.kind)
            .field("capacity", &self.capacity())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued)
            .field("internal", &self.internal)
            .field("batch_threshold", &self.batch_threshold)
            .finish_non_exhaustive()
    }
}

/// Builds the kernel ring. It asks for `IORING_SETUP_NO_SQARRAY` (Linux
/// 6.6+: the kernel takes SQE `tail & mask` directly instead of reading
/// it from the SQ index array, one load and one cache line less per SQE;
/// the io-uring crate's identity-mapped array gave the same order) and
/// falls back to a ring with the array when the kernel rejects the flag
/// (`EINVAL` before 6.6).
fn build(sq: u32, cq: u32, sqpoll: Option<Duration>) -> io::Result<IoUring> {
    let make = |no_sqarray: bool| {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq);
        if let Some(idle) = sqpoll {
            b.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX));
        }
        if no_sqarray {
            b.setup_no_sqarray();
        }
        b.build(sq)
    };
    match make(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => make(false),
        r => r,
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}

impl<T> Ring<T> {
    /// Creates a ring. With `sqpoll_idle` set it first tries SQPOLL and falls
    /// back to a normal ring if that fails (e.g. `EPERM`); see [`kind`](Self::kind).
    ///
    /// Errors keep the kernel's `raw_os_error()` (`ENOSYS` without io_uring,
    /// `EPERM` when it is disabled) so callers can fall back.
    pub fn new(cfg: &RingConfig) -> io::Result<Self> {
        let (sq, cq) = cfg.validate()?;
        let (ring, kind) = match cfg.sqpoll_idle {
            Some(idle) => match build(sq, cq, Some(idle)) {
                Ok(r) => (r, RingKind::SqPoll),
                Err(_) => (build(sq, cq, None)?, RingKind::Normal),
            },
            None => (build(sq, cq, None)?, RingKind::Normal),
        };
        let params = ring.params();
        let sq_entries = params.sq_entries();
        let cq_entries = params.cq_entries();
        let ext_arg = params.is_feature_ext_arg() && cfg.timed_waits;
        let capacity = sq_entries.min(cq_entries / 2).max(1);
        let supported = probe::supported_ops(&ring);
        let waiter = Waiter::new(ring.as_raw_fd(), ext_arg)?;
        let eventfd = if cfg.eventfd {
            // SAFETY: plain syscall; returns a new fd or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh eventfd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            ring.submitter().register_eventfd(fd.as_raw_fd())?;
            Some(fd)
        } else {
            None
        };
        Ok(Ring {
            ring,
            slots: SlotTable::new(capacity),
            kind,
            supported,
            sq_entries,
            cq_entries,
            internal: 0,
            queued: 0,
            unstamped: Vec::with_capacity(sq_entries as usize),
            batch_threshold: cfg.batch_threshold.clamp(1, sq_entries),
            ext_arg,
            sync_cancel_ok: true,
            stats: RingStats::default(),
            gaps: CompletionGaps::new(),
            ready: VecDeque::new(),
            deferred_cancels: Vec::new(),
            clock: Clock::new(),
            waiter,
            eventfd,
        })
    }

    /// Which kind of ring was built (SQPOLL may have fallen back to normal).
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    /// Whether the kernel supports `op` (from `IORING_REGISTER_PROBE`).
    pub fn supports(&self, op: OpKind) -> bool {
        self.supported & op.bit() != 0
    }

    /// Treats `op` as unsupported from now on: submitting it fails with
    /// [`SubmitErrorKind::Unsupported`]. Useful to forbid an op or to test
    /// a caller's fallback path on a kernel that has it.
    pub fn disable_op(&mut self, op: OpKind) {
        self.supported &= !op.bit();
    }

    /// Most ops that can be in flight at once (slots). Never more than half
    /// the CQ, leaving room for the ring's internal CQEs.
    pub fn capacity(&self) -> u32 {
        self.slots.capacity()
    }

    /// Slots taken: ops pushed or submitted whose completion was not reaped.
    ///
    /// A completion reaped internally (while submitting) frees its slot at
    /// once and waits in a small queue for the next `poll`/`wait`; see
    /// [`ready_len`](Self::ready_len).
    pub fn in_flight(&self) -> u32 {
        self.slots.len()
    }

    /// The token of the op in `slot`, while it is in flight (`None` once
    /// its completion was reaped, or for a stale id).
    pub fn token(&self, slot: SlotId) -> Option<&T> {
        self.slots.get(slot).map(|f| &f.token)
    }

    /// SQEs pushed but not yet handed to the kernel.
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Completions already reaped from the CQ (their slots are free) that
    /// the next `poll`/`wait` will hand out.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// SQ size the kernel gave us.
    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    /// CQ size the kernel gave us.
    pub fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// Submit automatically once this many SQEs are queued.
    pub fn batch_threshold(&self) -> u32 {
        self.batch_threshold
    }

    /// Sets the batch threshold, clamped to `1..=sq_entries`. Does not
    /// submit by itself: the next push, `flush`, `poll` or `wait` does.
    pub fn set_batch_threshold(&mut self, n: u32) {
        self.batch_threshold = n.clamp(1, self.sq_entries);
    }

    /// A handle that blocks in the kernel for completions without `&self`.
    pub fn waiter(&self) -> Waiter {
        self.waiter.clone()
    }

    /// Cumulative counters.
    pub fn stats(&self) -> RingStats {
        let mut s = self.stats;
        s.waiter_enter_calls = self.waiter.enters();
        s.gaps = self.gaps.stats();
        s
    }

    /// Gaps between completions longer than `ns` (while ops are in flight)
    /// count as long in [`RingStats::gaps`] from now on.
    pub fn set_long_gap_ns(&mut self, ns: u64) {
        self.gaps.set_long_ns(ns);
    }

    /// The registered eventfd (when [`RingConfig::eventfd`] was set). It
    /// becomes readable when CQEs are posted; read 8 bytes to reset it.
    pub fn eventfd(&self) -> Option<RawFd> {
        self.eventfd.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Nanoseconds since the ring was created (the clock latencies use).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    // ----- submission -------------------------------------------------

    /// Queues `op`; submits when [`queued`](Self::queued) reaches the batch
    /// threshold. Returns the op's slot, which its [`Completion`] repeats.
    ///
    /// Refused (op and token handed back) when no slot is free
    /// ([`SubmitErrorKind::Full`]), the kernel lacks the op
    /// ([`SubmitErrorKind::Unsupported`]) or the op is malformed.
    #[inline(always)]
    pub fn submit(&mut self, op: Op, token: T) -> Result<SlotId, SubmitError<T>> {
        if let Err(kind) = self.check_op(&op).and_then(|()| self.admit(1, 1, 1)) {
            return Err(SubmitError::new(kind, op, token));
        }
        let (id, sqe) = match self.occupy(op, token, None) {
            Ok(x) => x,
            Err((op, token)) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        if self.push_or_unwind(&[sqe], &[id]) {
            self.note_pushed(&[id.as_u64()]);
        }
        self.after_push();
        Ok(id)
    }

    /// [`submit`](Self::submit) for an op left where the caller keeps it:
    /// on success the op is taken out of `op` (which is left `Op::Nop`);
    /// refused, `op` is untouched and the token comes back with the
    /// reason. The hot ops (NOP, (fixed) read/write) are read field by
    /// field from where the caller built them, never copied whole (a
    /// store-forwarding stall per op; see `Op::take_sqe`).
    #[inline(always)]
    pub fn submit_in_place(
        &mut self,
        op: &mut Op,
        token: T,
    ) -> Result<SlotId, (SubmitErrorKind, T)> {
        if let Err(kind) = self.check_op(op).and_then(|()| self.admit(1, 1, 1)) {
            return Err((kind, token));
        }
        // `admit` found a free slot, and neither its flush nor its reap
        // takes one.
        let (id, f) = self.slots.insert_free_with(|| InFlight {
            token,
            held: Held::None,
            submit_ns: NOT_SUBMITTED,
            timeout: None,
            cancel: CancelState::None,
        });
        let (sqe, held) = op.take_sqe();
        // The slot was just filled with `Held::None`: nothing to drop.
        std::mem::forget(std::mem::replace(&mut f.held, held));
        let sqe = sqe.user_data(id.as_u64());
        if self.push_or_unwind(&[sqe], &[id]) {
            self.note_pushed(&[id.as_u64()]);
        }
        self.after_push();
        Ok(id)
    }

    /// Queues two ops linked with `IOSQE_IO_LINK`: `second` starts only after
    /// `first` succeeded; if `first` fails (or is short), `second` completes
    /// with `-ECANCELED`. Each op gets its own completion.
    pub fn submit_linked(
        &mut self,
        first: (Op, T),
        second: (Op, T),
    ) -> Result<(SlotId, SlotId), SubmitError<T>> {
        let (op1, t1) = first;
        let (op2, t2) = second;
        let checked = self
            .check_op(&op1)
            .and_then(|()| self.check_op(&op2))
            .and_then(|()| self.admit(2, 2, 2));
        if let Err(kind) = checked {
            let mut e = SubmitError::new(kind, op1, t1);
            e.second = Some((op2, t2));
            return Err(e);
        }
        let id1 = match self.take_slot(t1) {
            Ok(id) => id,
            Err(t1) => {
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let id2 = match self.take_slot(t2) {
            Ok(id) => id,
            Err(t2) => {
                let t1 = self.untake_slot(id1);
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let sqe1 = self.fill_slot(id1, op1, None).flags(squeue::Flags::IO_LINK);
        let sqe2 = self.fill_slot(id2, op2, None);
        if self.push_or_unwind(&[sqe1, sqe2], &[id1, id2]) {
            self.note_pushed(&[id1.as_u64(), id2.as_u64()]);
        }
        self.after_push();
        Ok((id1, id2))
    }

    /// Queues `op` with a linked timeout: if it has not completed after
    /// `timeout`, the kernel cancels it and it completes with `-ECANCELED`
    /// (an op already running in a worker may instead finish with `-EINTR`
    /// or its own result). The timeout's own CQE is consumed internally.
    pub fn submit_with_timeout(
        &mut self,
        op: Op,
        token: T,
        timeout: Duration,
    ) -> Result<SlotId, SubmitError<T>> {
        let checked = self.check_op(&op).and_then(|()| {
            if self.supports(OpKind::LinkTimeout) {
                self.admit(1, 2, 2)
            } else {
                Err(SubmitErrorKind::Unsupported(OpKind::LinkTimeout))
            }
        });
        if let Err(kind) = checked {
            return Err(SubmitError::new(kind, op, token));
        }
        let ts = Box::new(
            types::Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos()),
        );
        // The box's heap address stays put when the box moves into the slot.
        let ts_ptr: *const types::Timespec = &*ts;
        let (id, sqe1) = match self.occupy(op, token, Some(ts)) {
            Ok(x) => x,
            Err((op, token)) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let sqe1 = sqe1.flags(squeue::Flags::IO_LINK);
        let sqe2 = opcode::LinkTimeout::new(ts_ptr)
            .build()
            .user_data(UD_TIMEOUT);
        if self.push_or_unwind(&[sqe1, sqe2], &[id]) {
            self.internal += 1;
            self.note_pushed(&[id.as_u64(), UD_TIMEOUT]);
        }
        self.after_push();
        Ok(id)
    }

    /// Asks the kernel to cancel the op in `slot`. The op still completes
    /// exactly once: with `-ECANCELED` if the cancel won, else with its own
    /// result. Cancelling twice is a no-op. `NotFound` if the slot holds no
    /// op any more (already completed, or a stale id).
    pub fn cancel(&mut self, slot: SlotId) -> io::Result<()> {
        if !self.supports(OpKind::AsyncCancel) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "IORING_OP_ASYNC_CANCEL is not supported by this kernel",
            ));
        }
        let Some(f) = self.slots.get_mut(slot) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{slot:?} has no operation in flight"),
            ));
        };
        if f.cancel != CancelState::None {
            return Ok(());
        }
        f.cancel = CancelState::Deferred;
        self.deferred_cancels.push(slot);
        if self.issue_deferred_cancels() > 0 {
            // Cancels are rare and urgent: do not wait for the batch.
            let _ = self.submit_pending(false);
        }
        Ok(())
    }

    /// Submits a NOP whose CQE is consumed internally, to wake a thread
    /// blocked in [`Waiter::wait`]. `WouldBlock` if the CQ budget is used
    /// up (then completions are due anyway).
    pub fn notify(&mut self) -> io::Result<()> {
        if !self.budget_allows(1) || !self.ensure_sq_room(1) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "no room for a wake-up request",
            ));
        }
        let sqe = opcode::Nop::new().build().user_data(UD_NOTIFY);
        if self.push(&[sqe]) {
            self.internal += 1;
            self.note_pushed(&[UD_NOTIFY]);
        }
        self.submit_pending(false).map(|_| ())
    }

    /// Hands every queued SQE to the kernel. Returns how many were submitted.
    pub fn flush(&mut self) -> io::Result<u32> {
        self.issue_deferred_cancels();
        self.submit_pending(false)
    }

    // ----- completion -------------------------------------------------

    /// Non-blocking: flushes queued SQEs, then moves every available
    /// completion into `out` and returns how many. If the CQ is empty while
    /// ops are in flight, it enters the kernel with `GETEVENTS` (min 0) so
    /// pending completion work runs, and reaps again.
    ///
    /// On an error, completions reaped before it are still in `out`.
    pub fn poll(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<usize> {
        let mut n = self.drain_ready(out);
        self.issue_deferred_cancels();
        let mut entered = false;
        let mut err = None;
        if self.queued > 0 {
            entered = true;
            if let Err(e) = self.submit_pending(true) {
                err = Some(e);
            }
        }
        n += self.reap_cq(out);
        if n == 0 && !entered && (self.slots.len() > 0 || self.internal > 0) {
            match self.enter(0, true, None) {
                Ok(()) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => err = Some(e),
            }
            n += self.reap_cq(out);
        }
        n += self.drain_ready(out);
        match err {
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    /// Flushes, then blocks until at least `min` completions were moved into
    /// `out` or `timeout` passed (`None` = no timeout). `min` is capped at
    /// what can still complete, so it never waits for ops that do not exist.
    /// Returns how many completions were added (possibly fewer than `min` on
    /// timeout; a timeout is not an error).
    pub fn wait(
        &mut self,
        min: u32,
        timeout: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> io::Result<usize> {
        if min == 0 || timeout == Some(Duration::ZERO) {
            return self.poll(out);
        }
        if timeout.is_some() && !self.ext_arg {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "waiting with a timeout needs IORING_FEAT_EXT_ARG (Linux 5.11+)",
            ));
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut got = self.drain_ready(out) as u32;
        self.issue_deferred_cancels();
        got += self.reap_cq(out) as u32;
        let mut errors = 0;
        loop {
            let target = min.min(got + self.slots.len());
            if got >= target {
                if self.queued > 0 {
                    let _ = self.submit_pending(false);
                }
                break;
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        if self.queued > 0 {
                            let _ = self.submit_pending(false);
                        }
                        break;
                    }
                    Some(d - now)
                }
                None => None,
            };
            // Deferred cancels are issued between waits as CQ budget frees
            // up, so wake on every CQE while some are pending.
            let want = if self.deferred_cancels.is_empty() {
                target - got
            } else {
                1
            };
            match self.enter(want, true, remaining) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                // A signal: wait again (the deadline still applies).
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The kernel wants the CQ reaped first (done just below).
                Err(e) if is_transient(&e) => {
                    errors += 1;
                    if errors > RETRIES {
                        got += self.reap_cq(out) as u32;
                        break;
                    }
                }
                Err(e) => {
                    got += self.reap_cq(out) as u32;
                    if got > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
            got += self.reap_cq(out) as u32;
            got += self.drain_ready(out) as u32;
            self.issue_deferred_cancels();
        }
        Ok(got as usize)
    }

    /// Cancels every op in flight and reaps until each has produced its one
    /// completion (into `out`) and no internal request is outstanding.
    /// Gives up after [`DRAIN_TIMEOUT`] with `TimedOut` (ops that ignore
    /// cancellation, e.g. a stuck device).
    pub fn drain_for_shutdown(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        self.drain_with_timeout(out, DRAIN_TIMEOUT)
    }

    /// [`drain_for_shutdown`](Self::drain_for_shutdown) with a custom bound.
    pub fn drain_with_timeout(
        &mut self,
        out: &mut Vec<Completion<T>>,
        timeout: Duration,
    ) -> io::Result<()> {
        // A year is "forever" here and cannot overflow `Instant`.
        let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 86_400));
        for id in self.slots.live_ids() {
            // Ignore errors: without async cancel we can still wait.
            let _ = self.cancel(id);
        }
        loop {
            self.drain_ready(out);
            self.issue_deferred_cancels();
            if self.queued > 0 {
                let _ = self.submit_pending(false);
            }
            self.reap_cq(out);
            self.drain_ready(out);
            if self.slots.len() == 0 && self.internal == 0 && self.queued == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} ops and {} internal requests still in flight after {:?}",
                        self.slots.len(),
                        self.internal,
                        timeout
                    ),
                ));
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            let t = if self.ext_arg { Some(slice) } else { None };
            match self.enter(1, true, t) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) || is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    // ----- internals --------------------------------------------------

    #[inline(always)]
    fn check_op(&self, op: &Op) -> Result<(), SubmitErrorKind> {
        let kind = op.kind();
        if !self.supports(kind) {
            return Err(SubmitErrorKind::Unsupported(kind));
        }
        op.validate().map_err(SubmitErrorKind::InvalidInput)
    }

    #[inline(always)]
    fn budget_allows(&self, cqes: u32) -> bool {
        self.slots.len() + self.internal + cqes <= self.cq_entries
    }

    /// Makes sure `slots` slots, `cqes` CQ budget and `sqes` SQ entries are
    /// available, flushing/reaping as needed.
    #[inline(always)]
    fn admit(&mut self, slots: u32, cqes: u32, sqes: u32) -> Result<(), SubmitErrorKind> {
        if self.slots.available() < slots {
            return Err(SubmitErrorKind::Full);
        }
        if !self.budget_allows(cqes) {
            // Internal CQEs (cancels) may be waiting in the CQ: reap them.
            let _ = self.submit_pending(false);
            self.reap_into_ready();
            if !self.budget_allows(cqes) {
                return Err(SubmitErrorKind::Full);
            }
        }
        if !self.ensure_sq_room(sqes) {
            return Err(SubmitErrorKind::Full);
        }
        Ok(())
    }

    #[inline(always)]
    fn ensure_sq_room(&mut self, n: u32) -> bool {
        // Without SQPOLL only our own `io_uring_enter` consumes SQEs, so the
        // SQ holds exactly the `queued` ones: no need to read its head.
        if self.kind == RingKind::Normal && self.sq_entries - self.queued >= n {
            return true;
        }
        self.make_sq_room(n)
    }

    /// [`ensure_sq_room`](Self::ensure_sq_room) when the SQ may be full
    /// (out of line: the submit path inlines only the check above).
    #[inline(never)]
    fn make_sq_room(&mut self, n: u32) -> bool {
        for _ in 0..RETRIES {
            {
                let sq = self.ring.submission();
                if (sq.capacity() - sq.len()) as u32 >= n {
                    return true;
                }
            }
            if self.kind == RingKind::SqPoll {
                // The poller thread has not consumed the SQ yet: wait for room.
                let mut flags = ENTER_SQ_WAIT;
                if self.ring.submission().need_wakeup() {
                    flags |= ENTER_SQ_WAKEUP;
                }
                self.stats.enter_calls += 1;
                let _ = waiter::enter(self.ring.as_raw_fd(), 0, 0, flags, None);
            } else if self.submit_pending(false).is_err() {
                self.reap_into_ready();
            }
        }
        false
    }

    fn take_slot(&mut self, token: T) -> Result<SlotId, T> {
        self.slots
            .insert(InFlight {
                token,
                held: Held::None,
                submit_ns: NOT_SUBMITTED,
                timeout: None,
                cancel: CancelState::None,
            })
            .map_err(|f| f.token)
    }

    /// Takes a slot for `op` and returns its SQE (`user_data` set): one
    /// slot-table access. Op and token come back if no slot is free.
    ///
    /// The slot's value is built only once its place is known, so it is
    /// stored straight into the table (an `InFlight` assembled on the stack
    /// and then moved in was a store-forwarding stall per op).
    #[inline(always)]
    fn occupy(
        &mut self,
        op: Op,
        token: T,
        timeout: Option<Box<types::Timespec>>,
    ) -> Result<(SlotId, squeue::Entry), (Op, T)> {
        if self.slots.available() == 0 {
            return Err((op, token));
        }
        let (id, f) = self.slots.insert_free_with(|| InFlight {
            token,
            held: Held::None,
            submit_ns: NOT_SUBMITTED,
            timeout,
            cancel: CancelState::None,
        });
        let (sqe, held) = op.into_sqe();
        // The slot was just filled with `Held::None`: nothing to drop (and
        // skipping the drop glue saves a call per op).
        std::mem::forget(std::mem::replace(&mut f.held, held));
        Ok((id, sqe.user_data(id.as_u64())))
    }

    fn untake_slot(&mut self, id: SlotId) -> T {
        match self.slots.remove(id) {
            Some(f) => f.token,
            // `id` was returned by `take_slot` just before; nothing else ran.
            None => unreachable!("slot taken a moment ago vanished"),
        }
    }

    /// Moves the op's resources into its slot and returns its SQE.
    fn fill_slot(
        &mut self,
        id: SlotId,
        op: Op,
        timeout: Option<Box<types::Timespec>>,
    ) -> squeue::Entry {
        let (sqe, held) = op.into_sqe();
        if let Some(f) = self.slots.get_mut(id) {
            f.held = held;
            f.timeout = timeout;
        }
        sqe.user_data(id.as_u64())
    }

    #[inline(always)]
    fn push(&mut self, sqes: &[squeue::Entry]) -> bool {
        let mut sq = self.ring.submission();
        // SAFETY: every pointer in these SQEs refers to memory owned by a
        // slot (buffers, iovec arrays, paths, statx boxes, timespecs) or by
        // the caller's registered buffers, and slots keep it alive until the
        // op's CQE is reaped (or leak it if the ring is dropped first).
        unsafe { sq.push_multiple(sqes).is_ok() }
    }

    /// Pushes SQEs whose room `admit` guaranteed. If that somehow fails, the
    /// slots are completed locally with `-EAGAIN` so nothing is lost.
    #[inline(always)]
    fn push_or_unwind(&mut self, sqes: &[squeue::Entry], ids: &[SlotId]) -> bool {
        if self.push(sqes) {
            return true;
        }
        debug_assert!(false, "SQ room vanished between admit and push");
        for id in ids {
            if let Some(f) = self.slots.remove(*id) {
                let (result, resources) = f.held.into_resources(-libc::EAGAIN);
                self.ready.push_back(Completion {
                    token: f.token,
                    slot: *id,
                    result,
                    resources,
                    // Never reached the kernel.
                    latency_ns: 0,
                });
            }
        }
        false
    }

    /// Books SQEs just pushed (their `user_data`s, in SQ order). Normal
    /// rings stamp their ops when an enter hands them over; with SQPOLL the
    /// poller may take them as soon as they are pushed, so they are stamped
    /// now.
    #[inline(always)]
    fn note_pushed(&mut self, uds: &[u64]) {
        self.queued += uds.len() as u32;
        if self.kind == RingKind::SqPoll {
            let now = self.now_ns();
            self.gaps.on_handoff(now);
            for &ud in uds {
                if let Some(f) = SlotId::from_u64(ud).and_then(|id| self.slots.get_mut(id)) {
                    f.submit_ns = now;
                }
            }
        } else {
            self.unstamped.extend_from_slice(uds);
        }
    }

    /// Stamps the ops of the first `consumed` unstamped SQEs (just taken by
    /// the kernel) with `now` and forgets those SQEs.
    fn stamp_handed_off(&mut self, consumed: u32, now: u64) {
        let n = (consumed as usize).min(self.unstamped.len());
        for &ud in &self.unstamped[..n] {
            if let Some(f) = SlotId::from_u64(ud).and_then(|id| self.slots.get_mut(id)) {
                f.submit_ns = now;
            }
        }
        if n == self.unstamped.len() {
            self.unstamped.clear();
        } else {
            self.unstamped.drain(..n);
        }
    }

    #[inline(always)]
    fn after_push(&mut self) {
        if self.queued >= self.batch_threshold {
            // Errors leave the SQEs queued; flush/poll/wait report them.
            let _ = self.submit_pending(false);
        }
    }

    /// Pushes cancels that were waiting for budget or SQ room. Returns how
    /// many were pushed.
    fn issue_deferred_cancels(&mut self) -> u32 {
        let mut pushed = 0;
        while let Some(&id) = self.deferred_cancels.last() {
            let live = matches!(self.slots.get(id), Some(f) if f.cancel == CancelState::Deferred);
            if !live {
                self.deferred_cancels.pop();
                continue;
            }
            if !self.budget_allows(1) {
                // No CQ room for the cancel's own CQE: cancel synchronously,
                // which posts no CQE of its own.
                if self.sync_cancel(id) {
                    self.deferred_cancels.pop();
                    pushed += 1;
                    continue;
                }
                break;
            }
            if !self.ensure_sq_room(1) {
                break;
            }
            let sqe = opcode::AsyncCancel::new(id.as_u64())
                .build()
                .user_data(UD_CANCEL);
            if !self.push(&[sqe]) {
                break;
            }
            self.deferred_cancels.pop();
            self.internal += 1;
            self.note_pushed(&[UD_CANCEL]);
            pushed += 1;
            if let Some(f) = self.slots.get_mut(id) {
                f.cancel = CancelState::Issued;
            }
        }
        pushed
    }

    /// `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0+) for `id`, waiting at most
    /// 1 ms for an op that is already running. Returns false when the cancel
    /// could not be attempted (then it stays deferred).
    fn sync_cancel(&mut self, id: SlotId) -> bool {
        if !self.sync_cancel_ok {
            return false;
        }
        // Only submitted requests can be found.
        if self.queued > 0 && self.submit_pending(false).is_err() {
            return false;
        }
        let res = self.ring.submitter().register_sync_cancel(
            Some(types::Timespec::new().nsec(1_000_000)),
            types::CancelBuilder::user_data(id.as_u64()),
        );
        let done = match res {
            Ok(()) => true,
            Err(e) => match e.raw_os_error() {
                // Running in a worker (it finishes by itself) or already
                // completed (its CQE is waiting in the CQ).
                Some(libc::ETIME) | Some(libc::EALREADY) => true,
                // With SQPOLL the poller may not have picked the op up yet.
                Some(libc::ENOENT) => self.kind == RingKind::Normal,
                Some(libc::EINTR) => false,
                _ => {
                    self.sync_cancel_ok = false;
                    false
                }
            },
        };
        if done {
            if let Some(f) = self.slots.get_mut(id) {
                f.cancel = CancelState::Issued;
            }
        }
        done
    }

    /// One `io_uring_enter`: submits what is queued, optionally waits for
    /// `min_complete` CQEs (GETEVENTS also runs pending completion work).
    fn enter(
        &mut self,
        min_complete: u32,
        getevents: bool,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let to_submit = self.queued;
        let mut flags = 0;
        if getevents || min_complete > 0 {
            flags |= ENTER_GETEVENTS;
        }
        if self.kind == RingKind::SqPoll {
            // The SQEs are already visible to the poller thread.
            self.stats.sqes_submitted += u64::from(to_submit);
            if to_submit > 0 {
                self.stats.submit_calls += 1;
            }
            self.queued = 0;
            let need_wakeup = self.ring.submission().need_wakeup();
            if need_wakeup {
                flags |= ENTER_SQ_WAKEUP;
            } else if flags == 0 {
                return Ok(());
            }
            self.stats.enter_calls += 1;
            waiter::enter(
                self.ring.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                timeout,
            )
            .map(|_| ())
        } else {
            debug_assert_eq!(self.unstamped.len(), to_submit as usize);
            // The hand-off moment: one clock read for every SQE it takes.
            let handed_off_ns = if to_submit > 0 { self.now_ns() } else { 0 };
            self.stats.enter_calls += 1;
            let res = waiter::enter(
                self.ring.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                timeout,
            );
            let left = self.ring.submission().len() as u32;
            let consumed = to_submit.saturating_sub(left);
            self.queued = left;
            self.stats.sqes_submitted += u64::from(consumed);
            if consumed > 0 {
                self.stats.submit_calls += 1;
                self.stamp_handed_off(consumed, handed_off_ns);
                self.gaps.on_handoff(handed_off_ns);
            }
            res.map(|_| ())
        }
    }

    /// Submits everything queued (retrying transient errors). With
    /// `getevents`, enters even when nothing is queued.
    fn submit_pending(&mut self, getevents: bool) -> io::Result<u32> {
        if self.queued == 0 && !getevents {
            return Ok(0);
        }
        let start = self.queued;
        let mut tries = 0;
        loop {
            let before = self.queued;
            match self.enter(0, getevents, None) {
                Ok(()) => {
                    if self.queued == 0 || self.queued == before {
                        break;
                    }
                }
                Err(e) if is_transient(&e) => {
                    tries += 1;
                    if e.raw_os_error() != Some(libc::EINTR) {
                        // The kernel wants us to reap before it takes more.
                        self.reap_into_ready();
                    }
                    if tries >= RETRIES {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(start.saturating_sub(self.queued))
    }

    #[inline]
    fn drain_ready(&mut self, out: &mut Vec<Completion<T>>) -> usize {
        let n = self.ready.len();
        // Usually empty (only completions reaped while submitting wait
        // here): no drain set up and torn down twice per poll for nothing.
        if n > 0 {
            out.extend(self.ready.drain(..));
        }
        n
    }

    fn reap_into_ready(&mut self) {
        let mut tmp = Vec::new();
        self.reap_cq(&mut tmp);
        self.ready.extend(tmp);
    }

    /// Moves every CQE out of the CQ: user ones into `out`, internal ones
    /// just release their budget. Returns the number of user completions.
    ///
    /// One clock read per call that finds CQEs: every completion reaped
    /// together gets the same reap time.
    fn reap_cq(&mut self, out: &mut Vec<Completion<T>>) -> usize {
        let mut cq = self.ring.completion();
        if cq.is_empty() {
            return 0;
        }
        // Read after the CQ tail was loaded: no CQE seen here is younger.
        let now = self.clock.now_ns();
        // Every completion is written straight into `out`'s spare room
        // (reserved here for all of them), field by field: a `Completion`
        // assembled on the stack and then pushed was copied with wide loads
        // right after its narrow stores, a store-forwarding stall per op
        // (most of this function's time in `perf annotate`).
        let room = cq.len();
        out.reserve(room);
        let base = out.len();
        let spare = out.spare_capacity_mut().as_mut_ptr();
        let mut n = 0;
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let result = cqe.result();
            let Some(id) = SlotId::from_u64(ud) else {
                self.internal = self.internal.saturating_sub(1);
                continue;
            };
            // Never more completions than CQEs seen (`room`).
            debug_assert!(n < room);
            // SAFETY: `n < room`, and `reserve(room)` made room for `room`
            // more elements past `base` (`out` does not grow or move in
            // this loop): element `n` of the spare capacity is in bounds
            // and unused. Each of its fields is written once; the elements
            // count only after `set_len` below, so nothing reads or drops
            // one before it is whole.
            let dst = unsafe { (*spare.add(n)).as_mut_ptr() };
            // SAFETY: the closure moves each part of the slot's value out
            // once (token and held into the completion, the timeout
            // dropped; the rest is plain data) and cannot panic: a panic
            // in a buffer's `set_init` is caught in `into_resources` (the
            // op completes with EIO). `dst` is valid for writes (above).
            // The completion is written right from the slot, never
            // assembled on the stack: each such copy was a
            // store-forwarding stall per op.
            let taken = unsafe {
                self.slots.remove_with(id, |f| {
                    let held = std::ptr::read(std::ptr::addr_of!((*f).held));
                    let (result, resources) = held.into_resources(result);
                    std::ptr::addr_of_mut!((*dst).token)
                        .write(std::ptr::read(std::ptr::addr_of!((*f).token)));
                    std::ptr::addr_of_mut!((*dst).slot).write(id);
                    std::ptr::addr_of_mut!((*dst).result).write(result);
                    std::ptr::addr_of_mut!((*dst).latency_ns)
                        .write(now.saturating_sub((*f).submit_ns));
                    std::ptr::addr_of_mut!((*dst).resources).write(resources);
                    drop(std::ptr::read(std::ptr::addr_of!((*f).timeout)));
                })
            };
            match taken {
                Some(()) => n += 1,
                None => self.stats.stale_cqes += 1,
            }
        }
        drop(cq);
        // SAFETY: the `n` spare elements after `base` were fully written
        // above (all five fields each), and `base + n <= capacity`.
        unsafe { out.set_len(base + n) };
        self.stats.completions += n as u64;
        if n > 0 {
            // Ops still in the kernel keep a gap running (queued SQEs are
            // not the device's yet).
            let busy = self.slots.len() > self.queued;
            self.gaps.on_reap(now, busy);
        }
        n
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if self.slots.len() == 0 && self.internal == 0 {
            return;
        }
        let mut sink = Vec::new();
        let _ = self.drain_for_shutdown(&mut sink);
        drop(sink);
        if self.slots.len() > 0 {
            // The kernel may still write into these resources: leak them
            // rather than free memory under an in-flight op.
            std::mem::forget(self.slots.take_all());
        }
    }
}
