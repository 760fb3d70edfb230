//! The lean path of a plain callback op ([`Engine::submit`](crate::Engine::submit)
//! without a handle): its callback waits in a per-ring table instead of a
//! control block ([`OpCtl`](crate::op_state::OpCtl)), and the op's
//! [`Target`](crate::op_state::Target) carries only the table index and
//! the op's kind.
//!
//! Such an op has nothing a handle, a future or a cancel could observe, so
//! it needs no phase, no shared block, and no block taken from and given
//! back to the thread's cache: submitting it writes the callback into a
//! free table entry (under the ring lock, in place), and delivering it
//! reads the callback out of that entry and calls it.
//!
//! Ownership of an entry (the exactly-once rule): every index is owned by
//! exactly one of
//! - the free pool: a set bit in [`CbAlloc`] (taken under the ring lock)
//!   or in the table's `freed` words (set by deliveries, outside the lock);
//! - one [`LeanTarget`] (not `Clone`), made only by [`CbTable::store`],
//!   which holds the entry's live callback.
//!
//! A `LeanTarget` is consumed by [`CbTable::take`] (the callback moves out,
//! the index goes back to the pool through a [`FreeBatch`]). Handing the
//! target from the submitting thread to the delivering one goes through the
//! ring lock (slot, backlog or reaped completion), which orders the entry's
//! write before its read; the `freed` words' `Release`/`Acquire` order a
//! delivery's read before the entry's next write.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use auraio_ring::OpKind;

use crate::callback::Callback;

/// Most entries per ring (the table never needs more than the ring's ops
/// in flight plus those reaped and not yet delivered).
const MAX_ENTRIES: u32 = 4096;

/// The completion target of a lean op: which table entry holds its
/// callback, and what the op is (for the byte counters). One per op, not
/// `Clone`: the only value allowed to take the entry's callback.
#[derive(Debug)]
pub(crate) struct LeanTarget {
    pub(crate) idx: u32,
    pub(crate) kind: OpKind,
}

/// One ring's callback table (see the module docs). Dropping it drops no
/// callback: an entry still owned at teardown belongs to an op the ring
/// could not drain, whose target was leaked with the ring's slots (see
/// `Ring`'s `Drop`), so its callback is leaked with it.
pub(crate) struct CbTable {
    entries: Box<[UnsafeCell<MaybeUninit<Callback>>]>,
    /// Entries freed by deliveries since the allocator last looked (bit
    /// set = free), taken in bulk by [`CbTable::alloc`].
    freed: Box<[AtomicU64]>,
    /// Tests: entries hidden from the allocator.
    #[cfg(all(test, not(loom)))]
    hidden: Box<[AtomicU64]>,
}

// SAFETY: the entries are only accessed by the owner of their index (see
// the module docs): `store` by the allocator, which just took the index
// out of the pool, and `take` by the one `LeanTarget` of the index.
// Ownership moves between threads through the ring lock (target) and the
// `freed` words' Release/Acquire (index back to the pool), which order the
// accesses. `Callback` is `Send`.
unsafe impl Sync for CbTable {}

/// The free entries the allocator may hand out; kept under the ring lock.
pub(crate) struct CbAlloc {
    free: Box<[u64]>,
}

/// Indexes freed by one delivering batch, returned to the table's `freed`
/// words one word at a time (one atomic per word touched, not per op).
#[derive(Default)]
pub(crate) struct FreeBatch {
    word: usize,
    bits: u64,
}

impl CbTable {
    /// A table for a ring of `capacity` slots, with its allocator.
    pub(crate) fn new(capacity: u32) -> (CbTable, CbAlloc) {
        // Ops in flight plus as many reaped and not yet delivered; a full
        // table only sends ops down the general path.
        let n = capacity
            .saturating_mul(2)
            .clamp(64, MAX_ENTRIES)
            .div_ceil(64)
            * 64;
        let words = (n / 64) as usize;
        let entries = (0..n)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        let freed = (0..words).map(|_| AtomicU64::new(0)).collect();
        let free = vec![u64::MAX; words].into_boxed_slice();
        let table = CbTable {
            entries,
            freed,
            #[cfg(all(test, not(loom)))]
            hidden: (0..words).map(|_| AtomicU64::new(0)).collect(),
        };
        (table, CbAlloc { free })
    }

    /// Stores the callback `cb` builds in a free entry and returns the
    /// op's target, or gives `cb` back unused when every entry is taken. Called under the ring
    /// lock, which owns `alloc`.
    #[inline(always)]
    pub(crate) fn store<M: FnOnce() -> Callback>(
        &self,
        alloc: &mut CbAlloc,
        kind: OpKind,
        cb: M,
    ) -> Result<LeanTarget, M> {
        let Some(idx) = self.alloc(alloc) else {
            return Err(cb);
        };
        let entry = self.entries[idx as usize].get();
        // SAFETY: `idx` was just taken out of the free pool, so this
        // caller owns the entry and nothing else reads or writes it; it
        // holds no live callback (taken by the delivery that freed it, or
        // never written), so overwriting it drops nothing. The callback is
        // built right into the entry.
        unsafe { (*entry).write(cb()) };
        Ok(LeanTarget { idx, kind })
    }

    /// Takes the lowest free index from `alloc`. A word of `alloc` found
    /// empty first takes back what deliveries freed in it (`freed`), so
    /// the entries just delivered are reused before colder ones: the
    /// table's working set stays the size of what is in flight (a round of
    /// 32 ops cycles through 64 entries, 2.5 KiB), where refilling only
    /// once every word was empty cycled through the whole table (512
    /// entries, 20 KiB, for a 256-deep ring), one cold line per op on
    /// submit and again on delivery.
    #[inline(always)]
    fn alloc(&self, alloc: &mut CbAlloc) -> Option<u32> {
        for (w, bits) in alloc.free.iter_mut().enumerate() {
            if *bits == 0 {
                let freed = &self.freed[w];
                // A plain load first: no read-modify-write while nothing
                // was freed here.
                if freed.load(Relaxed) == 0 {
                    continue;
                }
                // Acquire: the deliveries that freed these entries read
                // their callbacks out before (Release in `flush`).
                *bits = freed.swap(0, Acquire);
                if *bits == 0 {
                    continue;
                }
            }
            let b = bits.trailing_zeros();
            *bits &= *bits - 1;
            return Some(w as u32 * 64 + b);
        }
        None
    }

    #[cfg(all(test, not(loom)))]
    fn refill(&self, alloc: &mut CbAlloc) {
        for (w, f) in self.freed.iter().enumerate() {
            alloc.free[w] |= f.swap(0, Acquire);
        }
    }

    /// Moves the target's callback out of its entry and records the index
    /// in `free` (returned to the pool at the batch's `flush`). The index
    /// is recorded before the callback runs, so a panicking callback does
    /// not keep it.
    #[inline(always)]
    pub(crate) fn take(&self, t: LeanTarget, free: &mut FreeBatch) -> Callback {
        // SAFETY: `t` is the one target of this index (made by `store`,
        // consumed here), so the entry holds its live callback and nobody
        // else accesses it until the index is back in the pool, which
        // happens only after this read (`free` is flushed later).
        let cb = unsafe { (*self.entries[t.idx as usize].get()).assume_init_read() };
        free.add(self, t.idx);
        cb
    }

    /// [`take`](Self::take) and call the callback, in place: the callback
    /// is not copied out of its entry first. The index is recorded in
    /// `free` before the call (also a panicking callback's: the closure is
    /// moved out of the entry before it runs), and the entry is reused
    /// only after `free` is flushed.
    #[inline(always)]
    pub(crate) fn take_and_call(
        &self,
        t: LeanTarget,
        free: &mut FreeBatch,
        result: std::io::Result<u32>,
        resources: auraio_ring::Resources,
    ) {
        let entry = self.entries[t.idx as usize].get();
        free.add(self, t.idx);
        // SAFETY: `t` is the one target of this index (made by `store`,
        // consumed here), so the entry holds its live callback and nobody
        // else accesses it until the index is back in the pool, which
        // happens only when `free` is flushed, after this call moved the
        // closure out; the entry is treated as uninitialized from now on
        // (the next `store` overwrites it without dropping).
        unsafe { Callback::call_in_place(entry.cast::<Callback>(), result, resources) }
    }

    /// Returns the index in `free` to the pool now.
    pub(crate) fn flush(&self, free: &mut FreeBatch) {
        if free.bits != 0 {
            // Release: the callbacks of these entries were read out before.
            self.freed[free.word].fetch_or(free.bits, Release);
            free.bits = 0;
        }
    }

    /// Frees one target's entry, dropping its callback uncalled (a lean op
    /// refused before it reached the ring: its callback never runs).
    pub(crate) fn discard(&self, t: LeanTarget) {
        let mut free = FreeBatch::default();
        drop(self.take(t, &mut free));
        self.flush(&mut free);
    }
}

#[cfg(all(test, not(loom)))]
impl CbTable {
    /// (free entries, all entries), after taking back what deliveries freed.
    pub(crate) fn free_entries(&self, alloc: &mut CbAlloc) -> (usize, usize) {
        self.refill(alloc);
        let free = alloc.free.iter().map(|w| w.count_ones() as usize).sum();
        (free, self.entries.len())
    }

    /// Hides every free entry from the allocator (`true`) or gives them
    /// back (`false`; only what was hidden, plus what deliveries freed).
    pub(crate) fn exhaust_for_test(&self, alloc: &mut CbAlloc, exhaust: bool) {
        self.refill(alloc);
        if exhaust {
            for (w, f) in alloc.free.iter_mut().zip(self.hidden.iter()) {
                f.fetch_or(*w, Relaxed);
                *w = 0;
            }
        } else {
            for (w, f) in alloc.free.iter_mut().zip(self.hidden.iter()) {
                *w |= f.swap(0, Relaxed);
            }
        }
    }
}

impl FreeBatch {
    #[inline(always)]
    fn add(&mut self, table: &CbTable, idx: u32) {
        let w = (idx / 64) as usize;
        if w != self.word {
            table.flush(self);
            self.word = w;
        }
        self.bits |= 1 << (idx % 64);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use auraio_ring::Resources;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    fn counting(calls: &Arc<AtomicUsize>) -> impl FnOnce() -> Callback {
        let c = Arc::clone(calls);
        move || {
            Callback::new(move |r: io::Result<u32>, _: Resources| {
                c.fetch_add(r.unwrap() as usize, SeqCst);
            })
        }
    }

    /// Each stored callback runs once through its target; entries are
    /// handed out until the table is full, and come back (only) after the
    /// delivering batch flushed them.
    #[test]
    fn entries_are_used_once_and_come_back_after_flush() {
        let (t, mut a) = CbTable::new(32);
        let n = t.entries.len();
        assert_eq!(n, 64);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut targets: Vec<LeanTarget> = (0..n)
            .map(|_| t.store(&mut a, OpKind::Nop, counting(&calls)).ok().unwrap())
            .collect();
        let mut idx: Vec<u32> = targets.iter().map(|x| x.idx).collect();
        idx.sort();
        idx.dedup();
        assert_eq!(idx.len(), n, "every target has its own entry");
        assert!(t.store(&mut a, OpKind::Nop, counting(&calls)).is_err());
        let mut free = FreeBatch::default();
        for x in targets.drain(..10) {
            t.take(x, &mut free).call(Ok(1), Resources::None);
        }
        assert_eq!(calls.load(SeqCst), 10);
        assert!(
            t.store(&mut a, OpKind::Nop, counting(&calls)).is_err(),
            "not back before the flush"
        );
        t.flush(&mut free);
        for _ in 0..10 {
            targets.push(t.store(&mut a, OpKind::Nop, counting(&calls)).ok().unwrap());
        }
        assert!(t.store(&mut a, OpKind::Nop, counting(&calls)).is_err());
        for x in targets {
            t.take(x, &mut free).call(Ok(1), Resources::None);
        }
        t.flush(&mut free);
        assert_eq!(calls.load(SeqCst), 10 + n);
    }

    /// Entries delivered (and flushed) are reused before colder ones: a
    /// ring cycling rounds of 32 ops stays within the first 64 entries of
    /// a 512-entry table.
    #[test]
    fn delivered_entries_are_reused_first() {
        let (t, mut a) = CbTable::new(256);
        assert_eq!(t.entries.len(), 512);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut free = FreeBatch::default();
        for _ in 0..40 {
            let round: Vec<LeanTarget> = (0..32)
                .map(|_| t.store(&mut a, OpKind::Nop, counting(&calls)).ok().unwrap())
                .collect();
            for x in round {
                assert!(x.idx < 64, "entry {} outside the hot word", x.idx);
                t.take(x, &mut free).call(Ok(1), Resources::None);
            }
            t.flush(&mut free);
        }
        assert_eq!(calls.load(SeqCst), 40 * 32);
    }

    /// Counts its drops (a callback's captures are dropped exactly once).
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A callback called in place runs once and its captures are dropped
    /// once (moved out of the entry by the call); the entry comes back
    /// after the flush, also after a panicking call.
    #[test]
    fn called_in_place_runs_and_drops_once() {
        let (t, mut a) = CbTable::new(1);
        let n = t.entries.len();
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut free = FreeBatch::default();
        for i in 0..3 * n {
            let (d, c) = (Tracked(Arc::clone(&drops)), Arc::clone(&calls));
            let x = t
                .store(&mut a, OpKind::Nop, move || {
                    Callback::new(move |r: io::Result<u32>, _: Resources| {
                        let _d = d;
                        c.fetch_add(r.unwrap() as usize, SeqCst);
                        if i % 5 == 0 {
                            panic!("in-place callback panic (expected by the test)");
                        }
                    })
                })
                .ok()
                .expect("entries come back after each flush");
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                t.take_and_call(x, &mut free, Ok(1), Resources::None)
            }));
            assert_eq!(r.is_err(), i % 5 == 0);
            t.flush(&mut free);
            assert_eq!(calls.load(SeqCst), i + 1);
            assert_eq!(drops.load(SeqCst), i + 1);
        }
    }

    /// A discarded target's callback is dropped uncalled, once, and its
    /// entry is reused.
    #[test]
    fn discard_drops_the_callback_uncalled() {
        let (t, mut a) = CbTable::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (d, c) = (Tracked(Arc::clone(&drops)), Arc::clone(&calls));
        let x = t
            .store(&mut a, OpKind::Nop, move || {
                Callback::new(move |_: io::Result<u32>, _: Resources| {
                    let _d = &d;
                    c.fetch_add(1, SeqCst);
                })
            })
            .ok()
            .unwrap();
        let first = x.idx;
        t.discard(x);
        assert_eq!((calls.load(SeqCst), drops.load(SeqCst)), (0, 1));
        // Use up the allocator's own bits: the discarded entry comes back
        // through `freed`.
        let mut rest = Vec::new();
        while let Ok(y) = t.store(&mut a, OpKind::Nop, counting(&calls)) {
            rest.push(y);
        }
        assert!(rest.iter().any(|y| y.idx == first), "the entry came back");
        let mut free = FreeBatch::default();
        for y in rest {
            drop(t.take(y, &mut free));
        }
        t.flush(&mut free);
    }

    /// A panicking callback's entry still goes back to the pool.
    #[test]
    fn a_panicking_callback_frees_its_entry() {
        let (t, mut a) = CbTable::new(1);
        let n = t.entries.len();
        let mut free = FreeBatch::default();
        for _ in 0..3 * n {
            let x = t
                .store(&mut a, OpKind::Nop, || {
                    Callback::new(|_: io::Result<u32>, _: Resources| panic!("no"))
                })
                .ok()
                .expect("entries come back after each panic");
            let cb = t.take(x, &mut free);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                cb.call(Ok(0), Resources::None)
            }));
            assert!(r.is_err());
            t.flush(&mut free);
        }
    }

    fn nop_engine(queue_depth: u32) -> Option<crate::Engine> {
        crate::Engine::builder()
            .rings(1)
            .queue_depth(queue_depth)
            .controller(auraio_controller::ControllerConfig::Fixed {
                in_flight: queue_depth,
                batch: 4,
            })
            .reaper(crate::ReaperMode::Never)
            .build()
            .ok()
    }

    /// `Engine::submit` takes the lean path (entries in use while its ops
    /// are in flight), every entry comes back after delivery, also after
    /// a panicking callback, and over many times the table's size.
    #[test]
    fn plain_submits_use_and_return_table_entries() {
        let Some(e) = nop_engine(8) else {
            eprintln!("io_uring unavailable: skipped");
            return;
        };
        let shard = &e.sh().rings[0];
        let (free0, size) = shard.lean_entries();
        assert_eq!(free0, size, "all free at start");
        let calls = Arc::new(AtomicUsize::new(0));
        for round in 0..(3 * size / 8 + 5) {
            for i in 0..8 {
                let c = Arc::clone(&calls);
                e.submit(crate::Request::nop(), move |r: io::Result<()>| {
                    r.unwrap();
                    c.fetch_add(1, SeqCst);
                    if round % 7 == 3 && i == 2 {
                        panic!("lean callback panic (expected by the test)");
                    }
                })
                .unwrap();
            }
            assert_eq!(shard.lean_entries().0, size - 8, "8 entries in use");
            e.run_until_idle().unwrap();
            assert_eq!(shard.lean_entries().0, size, "all back after delivery");
        }
        let rounds = 3 * size / 8 + 5;
        assert_eq!(calls.load(SeqCst), rounds * 8);
        let panics = (0..rounds).filter(|r| r % 7 == 3).count();
        assert_eq!(e.stats().total.callback_panics as usize, panics);
    }

    /// With the table exhausted, plain submits fall back to control
    /// blocks: still delivered exactly once.
    #[test]
    fn a_full_table_falls_back_to_control_blocks() {
        let Some(e) = nop_engine(8) else {
            eprintln!("io_uring unavailable: skipped");
            return;
        };
        let shard = &e.sh().rings[0];
        shard.lean_exhaust(true);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let c = Arc::clone(&calls);
            e.submit(crate::Request::nop(), move |r: io::Result<()>| {
                r.unwrap();
                c.fetch_add(1, SeqCst);
            })
            .unwrap();
            assert_eq!(shard.lean_entries().0, 0, "no entry used");
        }
        e.run_until_idle().unwrap();
        assert_eq!(calls.load(SeqCst), 50);
        shard.lean_exhaust(false);
        let (free, size) = shard.lean_entries();
        assert_eq!(free, size);
    }
}
