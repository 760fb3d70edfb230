//! The thread-local registry of thread caches: one [`ThreadCache`] per pool
//! this thread has used, keyed by pool id.
//!
//! Lookup checks the most recently used entry first (the common case: one
//! hot pool per thread), then scans a dense array of ids. Every pool gets a
//! cache, not just the first one a thread touches. Caches of pools that have
//! been dropped are released on the next slow-path access from this thread,
//! when one of that pool's buffers is freed here, and at thread exit.

use std::cell::RefCell;

use crate::cache::ThreadCache;
use crate::refcount::Counted;
use crate::shared::{Block, Shared};
use std::ptr::NonNull;

#[derive(Debug)]
pub(crate) struct Caches {
    ids: Vec<u64>,
    caches: Vec<ThreadCache>,
    mru: usize,
    /// Most-recently-used misses since the last sweep for dropped pools.
    misses: u32,
}

/// Sweep for caches of dropped pools every this many MRU misses (and on
/// every new cache).
const SWEEP_EVERY: u32 = 64;

impl Caches {
    const fn new() -> Self {
        Self {
            ids: Vec::new(),
            caches: Vec::new(),
            mru: 0,
            misses: 0,
        }
    }

    #[inline(always)]
    fn get(&mut self, shared: &Counted<Shared>) -> &mut ThreadCache {
        let i = self.mru;
        if i < self.ids.len() && self.ids[i] == shared.id {
            return &mut self.caches[i];
        }
        self.get_slow(shared)
    }

    #[cold]
    fn get_slow(&mut self, shared: &Counted<Shared>) -> &mut ThreadCache {
        self.misses += 1;
        if self.misses >= SWEEP_EVERY {
            self.sweep_closed();
        }
        let i = match self.ids.iter().position(|&id| id == shared.id) {
            Some(i) => i,
            None => {
                self.sweep_closed();
                self.ids.push(shared.id);
                self.caches.push(ThreadCache::new(shared));
                self.ids.len() - 1
            }
        };
        self.mru = i;
        &mut self.caches[i]
    }

    /// Drops the caches of pools that have been closed (their memory goes
    /// back to the system).
    fn sweep_closed(&mut self) {
        self.misses = 0;
        let mut i = 0;
        while i < self.caches.len() {
            if self.caches[i].is_closed() {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
    }

    fn remove_at(&mut self, i: usize) {
        self.ids.swap_remove(i);
        let cache = self.caches.swap_remove(i);
        self.mru = 0;
        drop(cache);
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.ids.iter().position(|&x| x == id) {
            self.remove_at(i);
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static CACHES: RefCell<Caches> = const { RefCell::new(Caches::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches::new());
}

/// Runs `f` on this thread's cache for `shared`, creating it on first use.
/// Returns `None` (without calling `f`) when no cache is reachable:
/// thread-local storage already torn down at thread exit, or re-entered.
#[inline(always)]
pub(crate) fn with_cache<R>(
    shared: &Counted<Shared>,
    f: impl FnOnce(&mut ThreadCache) -> R,
) -> Option<R> {
    CACHES
        .try_with(|c| {
            c.try_borrow_mut()
                .ok()
                .map(|mut caches| f(caches.get(shared)))
        })
        .ok()
        .flatten()
}

/// Gives a dropped buffer's block (of `class`) and pool count to this
/// thread's cache for its pool. Hands the count back when no cache is
/// reachable, so the caller can free without one.
#[inline]
pub(crate) fn free_to_cache(
    shared: Counted<Shared>,
    class: usize,
    ptr: NonNull<u8>,
) -> Result<(), Counted<Shared>> {
    let mut slot = Some(shared);
    let done = CACHES
        .try_with(|c| {
            let Ok(mut caches) = c.try_borrow_mut() else {
                return false;
            };
            let Some(s) = slot.take() else {
                return false;
            };
            let cache = caches.get(&s);
            cache.free(class, Block(ptr));
            cache.give_ref(s);
            true
        })
        .unwrap_or(false);
    match (done, slot) {
        (false, Some(s)) => Err(s),
        // Either the cache took it, or (impossible) it was taken without
        // being used, in which case it has already been dropped.
        _ => Ok(()),
    }
}

/// Releases this thread's cache of pool `id`, if any.
pub(crate) fn forget(id: u64) {
    let _ = CACHES.try_with(|c| {
        if let Ok(mut caches) = c.try_borrow_mut() {
            caches.remove(id);
        }
    });
}

/// Returns this thread's cached blocks of pool `id` to its shards (the
/// cache stays registered and refills on demand).
pub(crate) fn trim(id: u64) {
    let _ = CACHES.try_with(|c| {
        if let Ok(mut caches) = c.try_borrow_mut() {
            if let Some(i) = caches.ids.iter().position(|&x| x == id) {
                caches.caches[i].release_all();
            }
        }
    });
}

/// Releases the caches of every dropped pool on this thread.
pub(crate) fn sweep() {
    let _ = CACHES.try_with(|c| {
        if let Ok(mut caches) = c.try_borrow_mut() {
            caches.sweep_closed();
        }
    });
}
