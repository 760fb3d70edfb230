//! The slot table: a fixed number of request slots with an O(1) free stack.
//!
//! Every operation in flight occupies one slot. The slot's key doubles as the
//! SQE's `user_data`: the low 32 bits are the slot index, the next 31 bits a
//! generation that changes every time the slot is freed. A completion whose
//! key carries an old generation therefore can never be matched to the
//! operation that reuses the slot. Bit 63 is never set in a slot key; the ring
//! reserves those values for its internal requests (link timeouts, cancels).

use std::fmt;

/// Generation bits kept in a key (bits 32..63).
const GEN_MASK: u32 = 0x7fff_ffff;

/// Identifies one operation in flight: slot index plus generation.
///
/// It is the `user_data` of the operation's SQE. Two operations that use the
/// same slot one after the other get different `SlotId`s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(u64);

impl SlotId {
    pub(crate) fn new(index: u32, generation: u32) -> Self {
        SlotId((u64::from(generation & GEN_MASK) << 32) | u64::from(index))
    }

    /// The slot's index in the table (`0..capacity`).
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot's generation when this operation took it.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32 & GEN_MASK
    }

    /// The raw value, as used for the SQE's `user_data`.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds a `SlotId` from a `user_data` value; `None` for values the
    /// ring reserves for internal requests (bit 63 set).
    pub fn from_u64(raw: u64) -> Option<Self> {
        if raw >> 63 == 0 {
            Some(SlotId(raw))
        } else {
            None
        }
    }
}

impl fmt::Debug for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotId({}#{})", self.index(), self.generation())
    }
}

/// Stores `value` in a free slot without running drop glue for the `None`
/// it replaces (a call the compiler cannot elide on the submit path), and
/// without reading the old value (a `mem::replace` there made the compiler
/// build the value on the stack and copy it in with wide loads right after
/// its narrow stores: a store-forwarding stall per op). Were the slot ever
/// occupied, its old value would be leaked, never dropped: it may own memory
/// the kernel still uses.
#[inline(always)]
fn fill_free<E>(slot: &mut Option<E>, value: E) -> &mut E {
    debug_assert!(slot.is_none(), "free slot holds a value");
    // SAFETY: `slot` is a valid, exclusive, aligned place for an
    // `Option<E>`; writing without dropping the old value can only leak it.
    unsafe { std::ptr::write(slot, Some(value)) };
    match slot {
        Some(v) => v,
        // Written as `Some` just above.
        None => unreachable!("slot filled a moment ago is empty"),
    }
}

/// Aligned to a cache line: the ring's slot value and generation take 64
/// bytes, so each entry is one line (with the table's allocation only
/// 16-byte aligned, most entries straddled two, touched on submit, stamp
/// and reap). No gain of its own could be told from noise in the NOP
/// bench; it costs no memory for the ring's 64-byte entries.
#[repr(align(64))]
struct Entry<E> {
    generation: u32,
    value: Option<E>,
}

/// Fixed-size table of slots. `insert`, `get_mut` and `remove` are O(1).
pub(crate) struct SlotTable<E> {
    entries: Vec<Entry<E>>,
    /// Indexes of free slots; the top is taken next (LIFO keeps caches warm).
    free: Vec<u32>,
}

impl<E> SlotTable<E> {
    /// A table of `capacity` free slots.
    pub(crate) fn new(capacity: u32) -> Self {
        let entries = (0..capacity)
            .map(|_| Entry {
                generation: 0,
                value: None,
            })
            .collect();
        // Reverse so that slot 0 is handed out first.
        let free = (0..capacity).rev().collect();
        SlotTable { entries, free }
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Number of occupied slots.
    pub(crate) fn len(&self) -> u32 {
        (self.entries.len() - self.free.len()) as u32
    }

    /// Number of free slots.
    pub(crate) fn available(&self) -> u32 {
        self.free.len() as u32
    }

    /// Takes a free slot for `value`; gives the value back when all are taken.
    pub(crate) fn insert(&mut self, value: E) -> Result<SlotId, E> {
        let Some(index) = self.free.pop() else {
            return Err(value);
        };
        let entry = &mut self.entries[index as usize];
        fill_free(&mut entry.value, value);
        Ok(SlotId::new(index, entry.generation))
    }

    /// Stores the value `make` builds in a free slot; the caller checked
    /// [`available`](Self::available) `> 0` (nothing took a slot since).
    /// The value is built once its place is known, so it is written
    /// straight into the table (a value built first and then moved in was
    /// copied with wide loads right after its narrow stores, a
    /// store-forwarding stall per op).
    ///
    /// # Panics
    /// When no slot is free: a broken caller invariant, never input.
    #[inline(always)]
    pub(crate) fn insert_free_with(&mut self, make: impl FnOnce() -> E) -> (SlotId, &mut E) {
        let Some(index) = self.free.pop() else {
            unreachable!("insert_free_with without a free slot (checked by the caller)")
        };
        let entry = &mut self.entries[index as usize];
        let id = SlotId::new(index, entry.generation);
        debug_assert!(entry.value.is_none(), "free slot holds a value");
        // SAFETY: `entry.value` is a valid, exclusive, aligned place;
        // writing without dropping the old value can only leak it, and a
        // free slot holds none.
        unsafe { std::ptr::write(&mut entry.value, Some(make())) };
        match &mut entry.value {
            Some(v) => (id, v),
            // Written as `Some` just above.
            None => unreachable!("slot filled a moment ago is empty"),
        }
    }

    /// The live value for `id`, or `None` if the slot is free or was reused.
    pub(crate) fn get(&self, id: SlotId) -> Option<&E> {
        let entry = self.entries.get(id.index() as usize)?;
        if entry.generation == id.generation() {
            entry.value.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to the live value for `id`.
    pub(crate) fn get_mut(&mut self, id: SlotId) -> Option<&mut E> {
        let entry = self.entries.get_mut(id.index() as usize)?;
        if entry.generation == id.generation() {
            entry.value.as_mut()
        } else {
            None
        }
    }

    /// Frees the slot for `id` and returns its value. A stale or unknown id
    /// returns `None` and changes nothing.
    #[inline(always)]
    pub(crate) fn remove(&mut self, id: SlotId) -> Option<E> {
        let entry = self.entries.get_mut(id.index() as usize)?;
        if entry.generation != id.generation() {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1) & GEN_MASK;
        self.free.push(id.index());
        Some(value)
    }

    /// Frees the slot for `id` and lets `take` move the value out of it
    /// in place, part by part: the value is never copied as a whole (a
    /// whole-value move out of an `Option` was a store-forwarding stall per
    /// op on the reap path, the load of the value right after the store of
    /// `None`'s tag over it). A stale or unknown id returns `None` and
    /// changes nothing.
    ///
    /// # Safety
    /// `take` must take ownership of the value pointed to: move out (with
    /// `ptr::read`) or drop in place every part that needs dropping, each
    /// once, and must not panic (the slot would then still hold the value,
    /// and drop again what was moved out). After it returns, the slot's
    /// storage is reused without dropping anything.
    #[inline(always)]
    pub(crate) unsafe fn remove_with<R>(
        &mut self,
        id: SlotId,
        take: impl FnOnce(*mut E) -> R,
    ) -> Option<R> {
        let entry = self.entries.get_mut(id.index() as usize)?;
        if entry.generation != id.generation() {
            return None;
        }
        let value: *mut E = entry.value.as_mut()?;
        let r = take(value);
        // SAFETY: `take` took ownership of the value (the caller's
        // contract): the `Some` is overwritten without being dropped.
        unsafe { std::ptr::write(&mut entry.value, None) };
        entry.generation = entry.generation.wrapping_add(1) & GEN_MASK;
        self.free.push(id.index());
        Some(r)
    }

    /// Ids of all occupied slots (in index order).
    pub(crate) fn live_ids(&self) -> Vec<SlotId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(i, e)| SlotId::new(i as u32, e.generation))
            .collect()
    }

    /// Removes every value without bumping generations (for teardown).
    pub(crate) fn take_all(&mut self) -> Vec<E> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for (i, e) in self.entries.iter_mut().enumerate() {
            if let Some(v) = e.value.take() {
                e.generation = e.generation.wrapping_add(1) & GEN_MASK;
                self.free.push(i as u32);
                out.push(v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn insert_until_full_then_reuse() {
        let mut t = SlotTable::new(3);
        let a = t.insert('a').unwrap();
        let b = t.insert('b').unwrap();
        let c = t.insert('c').unwrap();
        assert_eq!(t.insert('d'), Err('d'));
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove(b), Some('b'));
        let d = t.insert('d').unwrap();
        assert_eq!(d.index(), b.index(), "the freed slot is reused");
        assert_ne!(d, b, "but with a new generation");
        assert_eq!(t.get(a), Some(&'a'));
        assert_eq!(t.get(c), Some(&'c'));
        assert_eq!(t.get(d), Some(&'d'));
    }

    /// `insert_free_with` (the ring's submit path) fills a free slot in
    /// place: the value is found and removed under its id, the slot is
    /// reused under a new generation, and every value is dropped exactly
    /// once (none leaked or dropped by the in-place write).
    #[test]
    fn insert_free_with_fills_in_place_and_drops_once() {
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        struct D(u32, std::rc::Rc<std::cell::Cell<u32>>);
        impl Drop for D {
            fn drop(&mut self) {
                self.1.set(self.1.get() + 1);
            }
        }
        let mut t = SlotTable::new(2);
        let (a, va) = t.insert_free_with(|| D(1, drops.clone()));
        va.0 += 10;
        let (b, _) = t.insert_free_with(|| D(2, drops.clone()));
        assert_ne!(a.index(), b.index());
        assert_eq!(t.available(), 0);
        assert_eq!(
            t.get(a).map(|d| d.0),
            Some(11),
            "the lent value is the stored one"
        );
        let got = t.remove(a).map(|d| d.0);
        assert_eq!(got, Some(11));
        assert_eq!(drops.get(), 1);
        let (c, _) = t.insert_free_with(|| D(3, drops.clone()));
        assert_eq!(c.index(), a.index(), "the freed slot is reused");
        assert_ne!(c, a, "under a new generation");
        assert!(t.get(a).is_none());
        assert_eq!(t.get(c).map(|d| d.0), Some(3));
        drop(t);
        assert_eq!(drops.get(), 3, "every value dropped exactly once");
    }

    /// `remove_with` (the ring's reap path) hands the value out in place
    /// once, frees the slot under a new generation, refuses stale ids, and
    /// drops nothing itself: the value is dropped exactly once, by the
    /// taker.
    #[test]
    fn remove_with_moves_the_value_out_once() {
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        struct D(u32, std::rc::Rc<std::cell::Cell<u32>>);
        impl Drop for D {
            fn drop(&mut self) {
                self.1.set(self.1.get() + 1);
            }
        }
        let mut t = SlotTable::new(1);
        let id = t.insert(D(5, drops.clone())).ok().unwrap();
        // SAFETY: the closure takes the whole value (ptr::read) and does
        // not panic.
        let got = unsafe { t.remove_with(id, |p| std::ptr::read(p)) };
        assert_eq!(got.as_ref().map(|d| d.0), Some(5));
        assert_eq!(drops.get(), 0, "nothing dropped by the table");
        drop(got);
        assert_eq!(drops.get(), 1);
        assert_eq!(t.len(), 0);
        // SAFETY: as above (never called: the id is stale).
        assert!(unsafe { t.remove_with(id, |p| std::ptr::read(p)) }.is_none());
        let again = t.insert(D(6, drops.clone())).ok().unwrap();
        assert_eq!(again.index(), id.index());
        assert_ne!(again, id, "reused under a new generation");
        // SAFETY: as above (never called: the id is stale).
        assert!(unsafe { t.remove_with(id, |p| std::ptr::read(p)) }.is_none());
        assert_eq!(t.get(again).map(|d| d.0), Some(6));
        drop(t);
        assert_eq!(drops.get(), 2, "every value dropped exactly once");
    }

    #[test]
    fn stale_generation_cannot_complete_reused_slot() {
        let mut t = SlotTable::new(1);
        let old = t.insert(1u32).unwrap();
        assert_eq!(t.remove(old), Some(1));
        let new = t.insert(2u32).unwrap();
        assert_eq!(new.index(), old.index());
        // A late completion for the old op must not find or free the new one.
        assert_eq!(t.get(old), None);
        assert_eq!(t.get_mut(old), None);
        assert_eq!(t.remove(old), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(new), Some(2));
        // And removing twice is harmless.
        assert_eq!(t.remove(new), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn keys_never_use_the_internal_bit() {
        let mut t = SlotTable::new(1);
        // Force the generation to wrap around its 31 bits.
        t.entries[0].generation = GEN_MASK;
        let id = t.insert(()).unwrap();
        assert_eq!(id.as_u64() >> 63, 0);
        assert_eq!(SlotId::from_u64(id.as_u64()), Some(id));
        t.remove(id).unwrap();
        assert_eq!(
            t.entries[0].generation, 0,
            "generation wraps within its bits"
        );
        assert_eq!(SlotId::from_u64(1 << 63), None);
    }

    #[test]
    fn out_of_range_index_is_rejected() {
        let mut t: SlotTable<u8> = SlotTable::new(2);
        let bogus = SlotId::new(7, 0);
        assert!(t.get(bogus).is_none());
        assert!(t.remove(bogus).is_none());
    }

    #[test]
    fn take_all_empties_and_invalidates() {
        let mut t = SlotTable::new(4);
        let ids: Vec<_> = (0..3).map(|i| t.insert(i).unwrap()).collect();
        assert_eq!(t.live_ids(), ids);
        let mut all = t.take_all();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.available(), 4);
        for id in ids {
            assert!(t.get(id).is_none());
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert,
        Remove(usize),
        RemoveStale(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Insert),
            2 => any::<usize>().prop_map(Step::Remove),
            1 => any::<usize>().prop_map(Step::RemoveStale),
        ]
    }

    proptest! {
        #[test]
        fn random_get_put_sequences_keep_invariants(
            cap in 1u32..16,
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let mut t = SlotTable::new(cap);
            let mut live: HashMap<SlotId, u64> = HashMap::new();
            let mut dead: Vec<SlotId> = Vec::new();
            let mut next = 0u64;
            for s in steps {
                match s {
                    Step::Insert => {
                        next += 1;
                        match t.insert(next) {
                            Ok(id) => {
                                prop_assert!(live.len() < cap as usize);
                                prop_assert!(id.index() < cap);
                                prop_assert!(!live.contains_key(&id));
                                prop_assert!(live.keys().all(|k| k.index() != id.index()),
                                    "two live ops share a slot");
                                live.insert(id, next);
                            }
                            Err(v) => {
                                prop_assert_eq!(v, next);
                                prop_assert_eq!(live.len(), cap as usize);
                            }
                        }
                    }
                    Step::Remove(i) => {
                        if live.is_empty() { continue; }
                        let mut keys: Vec<_> = live.keys().copied().collect();
                        keys.sort();
                        let id = keys[i % keys.len()];
                        let want = live.remove(&id);
                        prop_assert_eq!(t.remove(id), want);
                        dead.push(id);
                    }
                    Step::RemoveStale(i) => {
                        if dead.is_empty() { continue; }
                        let id = dead[i % dead.len()];
                        prop_assert_eq!(t.get(id), None);
                        prop_assert_eq!(t.remove(id), None);
                    }
                }
                prop_assert_eq!(t.len() as usize, live.len());
                prop_assert_eq!(t.available() + t.len(), cap);
                for (id, v) in &live {
                    prop_assert_eq!(t.get(*id), Some(v));
                }
            }
        }
    }
}
