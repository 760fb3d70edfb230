//! A reference count that thread caches can acquire and release in batches.
//!
//! Every [`Buffer`](crate::Buffer) keeps its pool's shared state alive (a
//! pool may be dropped while buffers are out). With `std::sync::Arc` that
//! costs two atomic read-modify-writes per alloc+free, on a cache line all
//! threads share. Here a thread cache instead holds a *credit* of counts it
//! acquired in one `fetch_add`; handing a buffer out spends one, taking one
//! back returns it to the credit, and only when the credit runs dry or piles
//! up does the cache touch the shared counter again.

use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicUsize};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicUsize};

struct Inner<T> {
    refs: AtomicUsize,
    value: T,
    /// Lets loom's leak checker see this allocation.
    #[cfg(loom)]
    _track: loom::alloc::Track<()>,
}

/// An owned strong count on a `T` (like `Arc<T>`).
pub(crate) struct Counted<T> {
    ptr: NonNull<Inner<T>>,
}

// SAFETY: like Arc<T>: sharing or sending a count gives shared access to `T`
// from other threads and may drop `T` there.
unsafe impl<T: Send + Sync> Send for Counted<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Counted<T> {}

impl<T> Counted<T> {
    pub(crate) fn new(value: T) -> Self {
        let inner = Box::new(Inner {
            refs: AtomicUsize::new(1),
            value,
            #[cfg(loom)]
            _track: loom::alloc::Track::new(()),
        });
        Counted {
            ptr: NonNull::from(Box::leak(inner)),
        }
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: `self` owns a count, so the allocation is alive.
        unsafe { self.ptr.as_ref() }
    }

    /// A new count (one atomic increment).
    pub(crate) fn clone_one(&self) -> Self {
        // Relaxed is enough for an increment from an existing count (the
        // same reasoning as `Arc::clone`).
        self.inner().refs.fetch_add(1, Ordering::Relaxed);
        Counted { ptr: self.ptr }
    }

    /// Adds `n` counts to be held as credit by the caller (see
    /// [`Counted::spend_credit`]).
    pub(crate) fn acquire(&self, n: usize) {
        self.inner().refs.fetch_add(n, Ordering::Relaxed);
    }

    /// Materializes one count out of credit previously taken with
    /// [`acquire`](Self::acquire) (or [`into_credit`](Self::into_credit)).
    ///
    /// # Safety
    ///
    /// The caller must own one unit of credit on this same allocation and
    /// give it up here.
    pub(crate) unsafe fn spend_credit(&self) -> Self {
        Counted { ptr: self.ptr }
    }

    /// Turns this count into one unit of credit (no atomic operation).
    /// `same_as` must be a count on the same allocation; returns `self`
    /// back if it is not.
    pub(crate) fn into_credit(self, same_as: &Self) -> Result<(), Self> {
        if self.ptr != same_as.ptr {
            return Err(self);
        }
        std::mem::forget(self);
        Ok(())
    }

    /// Gives back `n` units of credit.
    ///
    /// # Safety
    ///
    /// The caller owns `n` units of credit on this allocation, gives them up,
    /// and `self` is a further count, so the total cannot reach zero here.
    pub(crate) unsafe fn release(&self, n: usize) {
        self.inner().refs.fetch_sub(n, Ordering::Release);
    }

    /// Whether two counts refer to the same value.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }
}

impl<T> Deref for Counted<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        if self.inner().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Synchronize with every other count's release before destroying.
        fence(Ordering::Acquire);
        // SAFETY: the count just reached zero: this was the last owner, and
        // the allocation came from `Box::leak` in `new`.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Counted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner().value.fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomic;

    struct DropCount<'a>(&'a StdAtomic);
    impl Drop for DropCount<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn credit_round_trip_drops_once() {
        static DROPS: StdAtomic = StdAtomic::new(0);
        let base = Counted::new(DropCount(&DROPS));
        base.acquire(3);
        // SAFETY: three units of credit were acquired above.
        let (a, b, c) = unsafe {
            (
                base.spend_credit(),
                base.spend_credit(),
                base.spend_credit(),
            )
        };
        let d = a.clone_one();
        assert!(b.into_credit(&base).is_ok());
        drop(c);
        // SAFETY: one unit of credit (from `b`) is given back; `base` remains.
        unsafe { base.release(1) };
        drop(base);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        drop(a);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        drop(d);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn into_credit_rejects_other_allocation() {
        let a = Counted::new(1u32);
        let b = Counted::new(2u32);
        let back = a.clone_one().into_credit(&b);
        assert!(matches!(back, Err(ref x) if Counted::ptr_eq(x, &a)));
    }
}
