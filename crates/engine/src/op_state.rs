//! Per-operation state: where an op is (backlog, ring, done), how its
//! completion is delivered (callback or future), and the handle used to
//! cancel it.
//!
//! Exactly-once delivery is structural: the [`Target`] of an op lives in one
//! place at a time (the backlog, a ring slot, or a local batch being
//! delivered) and is consumed by [`Target::finish`]. Lock order is always
//! ring lock, then an op's `OpCtl` lock; user code never runs under either.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::Waker;

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use std::cell::UnsafeCell;

use crate::callback::Callback;
use crate::lean::{CbTable, FreeBatch, LeanTarget};
use crate::sync::{AtomicU64, Mutex, MutexGuard};

use auraio_ring::{OpKind, Resources, SlotId};

/// Where an op is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepted, waiting in its ring's backlog (in-flight limit reached).
    Backlogged,
    /// Handed to the ring (queued SQE or in the kernel).
    InRing(SlotId),
    /// Its completion has been delivered (or is being delivered).
    Done,
}

/// [`Phase`] packed into a `u64`: a [`SlotId`] never has bit 63 set, so
/// the two other phases use values with it set.
const PHASE_BACKLOGGED: u64 = 1 << 63;
const PHASE_DONE: u64 = (1 << 63) | 1;

impl Phase {
    fn encode(self) -> u64 {
        match self {
            Phase::Backlogged => PHASE_BACKLOGGED,
            Phase::InRing(slot) => slot.as_u64(),
            Phase::Done => PHASE_DONE,
        }
    }

    fn decode(v: u64) -> Phase {
        match SlotId::from_u64(v) {
            Some(slot) => Phase::InRing(slot),
            None if v == PHASE_DONE => Phase::Done,
            None => Phase::Backlogged,
        }
    }
}

/// What a future's op shares with its completion side (under the lock).
pub(crate) struct CtlState {
    /// Future ops: the raw result waiting for the future to take it.
    pub(crate) result: Option<(io::Result<u32>, Resources)>,
    pub(crate) waker: Option<Waker>,
    /// The future was dropped before completion: drop the result on arrival.
    pub(crate) abandoned: bool,
}

/// Shared control block of one op (one `Arc` per op).
///
/// The phase is an atomic, so a callback op never takes a lock: it moves to
/// `InRing` under the ring lock (where cancel reads it) and to `Done` just
/// before its callback runs. A future's op moves to `Done` while holding
/// `st`, so the future side (`abandon`) sees phase and result consistently.
pub(crate) struct OpCtl {
    pub(crate) ring: u32,
    /// Identity of the engine that owns the op (guards cross-engine cancel).
    pub(crate) owner: usize,
    /// The [`Phase`], encoded (see [`Phase::encode`]).
    phase: AtomicU64,
    /// What the op is (fixed at submit; stats, traces, fault injection).
    /// Kept here rather than in the [`Target`], so the target that moves
    /// through backlog, ring slot and completion stays small.
    pub(crate) info: OpInfo,
    /// Traced ops only: nanoseconds since engine start at the push into
    /// the ring, and the ring's in-flight count then (written under the
    /// ring lock, read when the completion is delivered).
    trace_submit_ns: std::sync::atomic::AtomicU64,
    trace_in_flight: AtomicU32,
    st: Mutex<CtlState>,
    /// A callback op's callback (`None` for a future's op, or once taken).
    /// Only the op's [`Target`] touches it after construction (see the
    /// `Sync` impl below).
    cb: UnsafeCell<Option<Callback>>,
}

// SAFETY: `cb` is the only field that is not `Sync`. It is written only
// while the block is exclusively owned (`Arc::new` in `OpCtl::new`, or
// `Arc::get_mut` on a cached block) and afterwards read and taken only by
// the op's one `Target` (in `Target::finish`, which consumes it). A `Target`
// is not `Clone`, exists once per op (built next to the block in
// `Engine::target`), and moves between threads only through the ring lock
// or the hand-off of reaped completions, which order those accesses. Other
// holders of the block (`OpHandle`, `OpFuture`, cancel) never touch `cb`.
unsafe impl Sync for OpCtl {}

/// Control blocks kept per thread for reuse (see [`OpCtl::recycle`]).
#[cfg(not(loom))]
const CTL_CACHE_MAX: usize = 64;

#[cfg(not(loom))]
thread_local! {
    static CTL_CACHE: std::cell::RefCell<Vec<Arc<OpCtl>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn fresh_state() -> CtlState {
    CtlState {
        result: None,
        waker: None,
        abandoned: false,
    }
}

/// Exclusive access to a control block without `Arc::get_mut`'s locked
/// compare-exchange (two per op on the hot path: reuse and recycle).
///
/// # Safety
/// `a` must be the block's only `Arc`, and every access made through former
/// holders must happen before this call (synchronized, e.g. by an `Acquire`
/// fence after reading a strong count of 1). The crate never creates a
/// `Weak<OpCtl>` (a `Weak` could otherwise upgrade concurrently).
#[cfg(not(loom))]
#[inline(always)]
unsafe fn unique_mut(a: &mut Arc<OpCtl>) -> &mut OpCtl {
    // SAFETY: `Arc::as_ptr` points at the live value with the allocation's
    // (mutable) provenance; per the contract nobody else can read or write
    // it while the returned borrow of `a` lives.
    unsafe { &mut *Arc::as_ptr(a).cast_mut() }
}

impl OpCtl {
    /// A control block for a new op: a recycled one from this thread's
    /// cache when there is one (one allocation less per op), else new.
    /// `cb`: the callback of a callback op (`None` for a future's op).
    #[inline(always)]
    pub(crate) fn new(ring: u32, owner: usize, info: OpInfo, cb: Option<Callback>) -> Arc<Self> {
        #[cfg(not(loom))]
        {
            let cached = CTL_CACHE
                .try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.pop()))
                .ok()
                .flatten();
            if let Some(mut a) = cached {
                // SAFETY: only blocks `recycle` found unique (and
                // synchronized with) enter this thread's cache, and nothing
                // can clone a block while it sits there: `a` is the one
                // holder (see `unique_mut`).
                let m = unsafe { unique_mut(&mut a) };
                m.ring = ring;
                m.owner = owner;
                m.info = info;
                *m.phase.get_mut() = PHASE_BACKLOGGED;
                *m.trace_submit_ns.get_mut() = 0;
                *m.trace_in_flight.get_mut() = 0;
                // `recycle` only caches blocks whose result, waker and
                // callback are empty: only the flag needs resetting, and
                // nothing old needs dropping (no drop glue per op).
                let st = m.st.get_mut().unwrap_or_else(|p| p.into_inner());
                debug_assert!(st.result.is_none() && st.waker.is_none());
                st.abandoned = false;
                let slot = m.cb.get_mut();
                debug_assert!(slot.is_none());
                // SAFETY: `slot` is a valid, exclusive place; it holds
                // `None` (see `recycle`), so overwriting it drops nothing.
                unsafe { std::ptr::write(slot, cb) };
                return a;
            }
        }
        Arc::new(OpCtl {
            ring,
            owner,
            phase: AtomicU64::new(PHASE_BACKLOGGED),
            info,
            trace_submit_ns: std::sync::atomic::AtomicU64::new(0),
            trace_in_flight: AtomicU32::new(0),
            st: Mutex::new(fresh_state()),
            cb: UnsafeCell::new(cb),
        })
    }

    /// Called with a finished op's control block: if nobody else holds it
    /// (no [`OpHandle`], no future), it goes to this thread's cache for the
    /// next [`new`](Self::new) instead of being freed. Nobody can observe a
    /// reused block as its old op: the old op had no other holder left.
    pub(crate) fn recycle(mut this: Arc<Self>) {
        #[cfg(not(loom))]
        {
            // Unique? `Arc::get_mut` would answer with a locked
            // compare-exchange per op; the count alone is enough here, as
            // no `Weak<OpCtl>` ever exists and only a holder can clone.
            if Arc::strong_count(&this) != 1 {
                return;
            }
            // Pairs with the `Release` decrement of every former holder
            // (a dropped `OpHandle`/future on another thread): their last
            // accesses happen before this block is reused.
            std::sync::atomic::fence(Acquire);
            // SAFETY: `this` is the block's only `Arc` (count 1 just read,
            // never a `Weak`), and the fence ordered the former holders'
            // accesses before ours.
            let m = unsafe { unique_mut(&mut this) };
            let st = m.st.get_mut().unwrap_or_else(|p| p.into_inner());
            if st.result.is_some() || st.waker.is_some() || m.cb.get_mut().is_some() {
                // Not expected for a finished callback op; let it drop
                // normally rather than reason about what it holds.
                return;
            }
            let _ = CTL_CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    if c.len() < CTL_CACHE_MAX {
                        c.push(this);
                    }
                }
            });
        }
        #[cfg(loom)]
        drop(this);
    }

    /// Locks the state, ignoring poisoning (no user code runs under it).
    pub(crate) fn lock(&self) -> MutexGuard<'_, CtlState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Traced ops: records the push into the ring (see `trace_submit_ns`).
    pub(crate) fn stamp_submit(&self, submit_ns: u64, in_flight: u32) {
        self.trace_submit_ns.store(submit_ns, Relaxed);
        self.trace_in_flight.store(in_flight, Relaxed);
    }

    /// What [`stamp_submit`](Self::stamp_submit) recorded: (ns since engine
    /// start, in flight at submit).
    pub(crate) fn submit_stamp(&self) -> (u64, u32) {
        (
            self.trace_submit_ns.load(Relaxed),
            self.trace_in_flight.load(Relaxed),
        )
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::decode(self.phase.load(Acquire))
    }

    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase.store(p.encode(), Release);
    }

    /// Future side: takes the result if it arrived, else registers `waker`
    /// (under the same lock the completion side takes, so a completion
    /// either is seen here or finds the waker and wakes it).
    pub(crate) fn take_or_register(&self, waker: &Waker) -> Option<(io::Result<u32>, Resources)> {
        let mut st = self.lock();
        if let Some(r) = st.result.take() {
            return Some(r);
        }
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
        None
    }

    /// Future side, on drop: gives up on the result. Returns true if the op
    /// has not completed yet and should be cancelled; its completion will
    /// then release the buffers. If it already completed, the unclaimed
    /// result is released here (closing the fd of a successful openat).
    pub(crate) fn abandon(&self) -> bool {
        let mut st = self.lock();
        st.waker = None;
        // `Done` is stored under this lock for future ops (`Target::finish`).
        if self.phase() == Phase::Done {
            let unclaimed = st.result.take();
            drop(st);
            if let Some((Ok(fd), Resources::Path(_))) = unclaimed {
                // SAFETY: a successful openat returned this new descriptor
                // and its future is gone: nobody else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            return false;
        }
        st.abandoned = true;
        true
    }
}

/// How a completion reaches its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deliver {
    /// Callback face: run the callback kept in the `OpCtl` (outside every
    /// engine lock).
    Callback,
    /// Async face: store the result in the `OpCtl` and wake the future.
    Future,
}

/// Bookkeeping for stats and traces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpInfo {
    pub(crate) kind: OpKind,
    pub(crate) len: u64,
    pub(crate) traced: bool,
    /// A fault plan submitted it shorter than asked (its buffer is wrapped
    /// and unwrapped again in [`Target::finish`]).
    pub(crate) shortened: bool,
    /// It uses a registered buffer (read_fixed / write_fixed).
    pub(crate) fixed_buf: bool,
    /// It targets a registered file.
    pub(crate) fixed_file: bool,
}

impl OpInfo {
    pub(crate) fn counts_bytes(&self) -> bool {
        matches!(
            self.kind,
            OpKind::Read
                | OpKind::Write
                | OpKind::Readv
                | OpKind::Writev
                | OpKind::ReadFixed
                | OpKind::WriteFixed
        )
    }
}

/// The per-op completion target stored in the ring slot / backlog: one
/// word, so moving it along the submit and reap paths stays cheap (a
/// wider target, built with narrow stores and copied with wide loads, was
/// a store-forwarding stall at each move). One per op, not `Clone`: the
/// only value allowed to take the op's callback.
///
/// Either an op with a control block (a future's, one with a handle, and
/// every callback op the lean path does not take): the `Arc<OpCtl>`'s
/// pointer with the delivery mode in bit 0; or a lean op (see
/// [`crate::lean`]): its callback table index and kind, with bit 1 set
/// (never set in the pointer of an `OpCtl`, which is 8-byte aligned).
pub(crate) struct Target(std::num::NonZeroUsize);

/// Bit 1 of a [`Target`]: a lean op.
const TARGET_LEAN: usize = 0b10;
/// Bit 0 of a [`Target`] with a control block: delivered to a future.
const TARGET_FUTURE: usize = 0b01;
const _: () = assert!(std::mem::align_of::<OpCtl>() >= 4);

/// A [`Target`] taken apart, to consume it.
pub(crate) enum Owned {
    Ctl(CtlTarget),
    Lean(LeanTarget),
}

/// The target of an op with a control block (what the op is and its
/// callback live in its [`OpCtl`]).
pub(crate) struct CtlTarget {
    pub(crate) ctl: Arc<OpCtl>,
    pub(crate) deliver: Deliver,
}

impl Target {
    /// A target with a control block.
    #[inline(always)]
    pub(crate) fn ctl(ctl: Arc<OpCtl>, deliver: Deliver) -> Self {
        let p = Arc::into_raw(ctl) as usize;
        debug_assert_eq!(p & (TARGET_LEAN | TARGET_FUTURE), 0);
        let bit = if deliver == Deliver::Future {
            TARGET_FUTURE
        } else {
            0
        };
        match std::num::NonZeroUsize::new(p | bit) {
            Some(v) => Target(v),
            // `Arc::into_raw` never returns null.
            None => unreachable!("null Arc pointer"),
        }
    }

    /// A lean op's target.
    #[inline(always)]
    pub(crate) fn lean(l: LeanTarget) -> Self {
        let v = ((l.idx as usize) << 16) | ((l.kind as usize) << 8) | TARGET_LEAN;
        match std::num::NonZeroUsize::new(v) {
            Some(v) => Target(v),
            None => unreachable!("bit 1 is set"),
        }
    }

    /// The control block's pointer (without the mode bit), if this target
    /// has one.
    #[inline(always)]
    fn ctl_ptr(&self) -> Option<*const OpCtl> {
        let v = self.0.get();
        (v & TARGET_LEAN == 0).then_some((v & !TARGET_FUTURE) as *const OpCtl)
    }

    /// The op's control block, if it has one.
    #[inline(always)]
    pub(crate) fn ctl_ref(&self) -> Option<&OpCtl> {
        // SAFETY: the pointer came from `Arc::into_raw` in `ctl`, and this
        // target holds that strong reference until it is consumed
        // (`into_owned`) or dropped: the block lives at least as long as
        // the borrow of `self`.
        self.ctl_ptr().map(|p| unsafe { &*p })
    }

    /// A new reference to the op's control block, if it has one.
    pub(crate) fn ctl_arc(&self) -> Option<Arc<OpCtl>> {
        self.ctl_ptr().map(|p| {
            // SAFETY: as in `ctl_ref`: `p` is the pointer of a live `Arc`
            // this target holds; the count is raised before the new `Arc`
            // is made from it.
            unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }
        })
    }

    /// Takes the target apart (consuming it).
    #[inline(always)]
    pub(crate) fn into_owned(self) -> Owned {
        let v = self.0.get();
        std::mem::forget(self);
        if v & TARGET_LEAN != 0 {
            Owned::Lean(LeanTarget {
                idx: (v >> 16) as u32,
                kind: OpKind::ALL[(v >> 8) & 0xff],
            })
        } else {
            // SAFETY: the pointer came from `Arc::into_raw` in `ctl`; this
            // consumed target owned that strong reference (forgotten
            // above, so it is taken back exactly once).
            let ctl = unsafe { Arc::from_raw((v & !TARGET_FUTURE) as *const OpCtl) };
            let deliver = if v & TARGET_FUTURE != 0 {
                Deliver::Future
            } else {
                Deliver::Callback
            };
            Owned::Ctl(CtlTarget { ctl, deliver })
        }
    }

    /// What the op is. A lean op is never traced, shortened by a fault
    /// plan, nor uses registered buffers or files (those take the general
    /// path), and its length is not kept (only faults and traces read it).
    #[inline(always)]
    pub(crate) fn info(&self) -> OpInfo {
        match self.ctl_ref() {
            Some(c) => c.info,
            None => OpInfo {
                kind: OpKind::ALL[(self.0.get() >> 8) & 0xff],
                len: 0,
                traced: false,
                shortened: false,
                fixed_buf: false,
                fixed_file: false,
            },
        }
    }

    /// Whether the completion goes to a future.
    #[inline(always)]
    pub(crate) fn is_future(&self) -> bool {
        self.0.get() & (TARGET_LEAN | TARGET_FUTURE) == TARGET_FUTURE
    }

    /// Delivers the completion (see [`CtlTarget::finish`]); a lean op's
    /// callback is taken out of `table` (its ring's) and its entry freed.
    pub(crate) fn finish(
        self,
        table: &CbTable,
        result: io::Result<u32>,
        resources: Resources,
    ) -> Finish {
        match self.into_owned() {
            Owned::Ctl(t) => t.finish(result, resources),
            Owned::Lean(l) => {
                let mut free = FreeBatch::default();
                let cb = table.take(l, &mut free);
                table.flush(&mut free);
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    cb.call(result, resources)
                })) {
                    Ok(()) => Finish::Ok,
                    Err(payload) => Finish::Panicked(panic_message(payload.as_ref())),
                }
            }
        }
    }

    /// [`finish`](Self::finish) without catching a panicking callback
    /// (see [`CtlTarget::finish_unguarded`]); a lean op's entry is recorded
    /// in `free` (for the caller to flush) before its callback runs.
    #[inline(always)]
    pub(crate) fn finish_unguarded(
        self,
        table: &CbTable,
        free: &mut FreeBatch,
        result: io::Result<u32>,
        resources: Resources,
    ) {
        match self.into_owned() {
            Owned::Ctl(t) => t.finish_unguarded(result, resources),
            Owned::Lean(l) => table.take_and_call(l, free, result, resources),
        }
    }
}

impl Drop for Target {
    /// A target dropped without being finished (the engine finishes or
    /// explicitly discards every one): a control block is released (with
    /// its callback, uncalled); a lean op's callback and table entry are
    /// leaked, as the target does not know its table.
    fn drop(&mut self) {
        let t = Target(self.0);
        if let Owned::Ctl(c) = t.into_owned() {
            drop(c);
        }
    }
}

/// What happened when a target was finished.
pub(crate) enum Finish {
    Ok,
    /// The callback panicked; the payload's message.
    Panicked(String),
}

impl CtlTarget {
    /// What the op is.
    pub(crate) fn info(&self) -> &OpInfo {
        &self.ctl.info
    }

    /// Delivers the completion: exactly once, since `self` is consumed.
    /// Must be called with no engine lock held (callbacks may re-enter).
    /// A panicking callback is caught here and reported.
    pub(crate) fn finish(self, result: io::Result<u32>, resources: Resources) -> Finish {
        match self.deliver {
            Deliver::Callback => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    self.finish_unguarded(result, resources)
                })) {
                    Ok(()) => Finish::Ok,
                    Err(payload) => Finish::Panicked(panic_message(payload.as_ref())),
                }
            }
            Deliver::Future => {
                self.finish_unguarded(result, resources);
                Finish::Ok
            }
        }
    }

    /// [`finish`](Self::finish) without catching a panicking callback: it
    /// unwinds out of here (the op is still delivered once: its callback
    /// was taken and its phase is `Done`). For a caller that catches once
    /// around many completions (`Shard::deliver_completions`), instead of
    /// paying `catch_unwind`'s hand-off through memory per op.
    #[inline]
    pub(crate) fn finish_unguarded(self, result: io::Result<u32>, resources: Resources) {
        let resources = if self.info().shortened {
            crate::fault::unshorten_resources(resources)
        } else {
            resources
        };
        match self.deliver {
            Deliver::Callback => {
                // SAFETY: this is the op's one `Target`, consumed here: no
                // other access to `cb` can happen now or later (see the
                // `Sync` impl of `OpCtl`).
                let f = unsafe { (*self.ctl.cb.get()).take() };
                self.ctl.set_phase(Phase::Done);
                if let Some(f) = f {
                    f.call(result, resources);
                }
                // (`None` is not reachable: a callback op is built with its
                // callback, and only this consumed target takes it.) On a
                // panic the block is dropped while unwinding, not recycled.
                OpCtl::recycle(self.ctl);
            }
            Deliver::Future => {
                let mut st = self.ctl.lock();
                self.ctl.set_phase(Phase::Done);
                if st.abandoned {
                    drop(st);
                    // Nobody will look at the result: release what it holds
                    // (buffers drop here; an opened fd is closed).
                    if self.info().kind == OpKind::OpenAt {
                        if let Ok(fd) = result {
                            // SAFETY: a successful openat returned this new
                            // descriptor and its future is gone, so nobody
                            // else owns it.
                            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
                        }
                    }
                    drop(resources);
                    return;
                }
                st.result = Some((result, resources));
                let waker = st.waker.take();
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A handle to a submitted operation, used to cancel it
/// ([`Engine::cancel`](crate::Engine::cancel)) or ask whether it finished.
/// Dropping it does nothing.
#[derive(Clone)]
pub struct OpHandle {
    pub(crate) ctl: Arc<OpCtl>,
}

impl OpHandle {
    /// True once the operation's completion has been delivered (or is being
    /// delivered right now).
    pub fn is_done(&self) -> bool {
        self.ctl.phase() == Phase::Done
    }

    /// The ring the operation was submitted to.
    pub fn ring(&self) -> usize {
        self.ctl.ring as usize
    }
}

impl std::fmt::Debug for OpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpHandle")
            .field("ring", &self.ctl.ring)
            .field("phase", &self.ctl.phase())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn nop_info() -> OpInfo {
        OpInfo {
            kind: OpKind::Nop,
            len: 0,
            traced: false,
            shortened: false,
            fixed_buf: false,
            fixed_file: false,
        }
    }

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn callback_target(calls: &Arc<AtomicUsize>, drops: &Arc<AtomicUsize>) -> CtlTarget {
        let (c, t) = (Arc::clone(calls), Tracked(Arc::clone(drops)));
        let cb = Callback::new(move |r: io::Result<u32>, _: Resources| {
            let _t = &t;
            c.fetch_add(r.unwrap() as usize, std::sync::atomic::Ordering::SeqCst);
        });
        CtlTarget {
            ctl: OpCtl::new(0, 1, nop_info(), Some(cb)),
            deliver: Deliver::Callback,
        }
    }

    /// The callback kept in the block runs once, through the target, and
    /// the block then serves the next op without the old callback.
    #[test]
    fn the_kept_callback_runs_once_and_the_block_is_reused_clean() {
        let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let t = callback_target(&calls, &drops);
        let handle = OpHandle {
            ctl: Arc::clone(&t.ctl),
        };
        assert!(!handle.is_done());
        assert!(matches!(t.finish(Ok(2), Resources::None), Finish::Ok));
        assert!(handle.is_done());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(handle);
        // No holder left: the next finished op's block goes to the cache
        // and comes back for the op after it, without a callback.
        let t = callback_target(&calls, &drops);
        let addr = Arc::as_ptr(&t.ctl);
        t.finish(Ok(1), Resources::None);
        let next = OpCtl::new(0, 1, nop_info(), None);
        assert_eq!(Arc::as_ptr(&next), addr);
        // SAFETY: test-only look at the cell; nothing else uses `next`.
        assert!(unsafe { (*next.cb.get()).is_none() });
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// A target dropped without being finished (not done by the engine,
    /// which finishes every target) still frees its callback, with the block.
    #[test]
    fn an_unfinished_callback_is_dropped_with_its_block() {
        let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let t = callback_target(&calls, &drops);
        drop(t);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A panicking callback is reported, runs once, and frees its captures once.
    #[test]
    fn a_panicking_kept_callback_is_reported() {
        let drops = Arc::new(AtomicUsize::new(0));
        let t = Tracked(Arc::clone(&drops));
        let cb = Callback::new(move |_: io::Result<u32>, _: Resources| {
            let _t = &t;
            panic!("callback says no");
        });
        let target = CtlTarget {
            ctl: OpCtl::new(0, 1, nop_info(), Some(cb)),
            deliver: Deliver::Callback,
        };
        match target.finish(Ok(0), Resources::None) {
            Finish::Panicked(m) => assert_eq!(m, "callback says no"),
            Finish::Ok => panic!("the panic was not reported"),
        }
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
