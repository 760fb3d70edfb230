//! An op's shared control block ([`OpCtl`]): its [`Phase`], the state a
//! future shares with the completion side, its kept callback, and the
//! per-thread cache that recycles blocks.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::Waker;

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use std::cell::UnsafeCell;

use crate::callback::Callback;
use crate::sync::{AtomicU64, Mutex, MutexGuard};

use auraio_ring::{Resources, SlotId};

use super::OpInfo;

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
    /// Kept here rather than in the [`Target`](super::Target), so the target that moves
    /// through backlog, ring slot and completion stays small.
    pub(crate) info: OpInfo,
    /// Traced ops only: nanoseconds since engine start at the push into
    /// the ring, and the ring's in-flight count then (written under the
    /// ring lock, read when the completion is delivered).
    trace_submit_ns: std::sync::atomic::AtomicU64,
    trace_in_flight: AtomicU32,
    st: Mutex<CtlState>,
    /// A callback op's callback (`None` for a future's op, or once taken).
    /// Only the op's [`Target`](super::Target) touches it after construction (see the
    /// `Sync` impl below).
    pub(super) cb: UnsafeCell<Option<Callback>>,
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
    /// (no [`OpHandle`](super::OpHandle), no future), it goes to this thread's cache for the
    /// next [`new`](Self::new) instead of being freed. Nobody can observe a
    /// reused block as its old op: the old op had no other holder left.
    pub(crate) fn recycle(this: Arc<Self>) {
        #[cfg(not(loom))]
        {
            let mut this = this;
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
