//! [`RingLock`]: the lock around each ring's state, a futex mutex without
//! poisoning.
//!
//! It is the algorithm of `std::sync::Mutex` on Linux (three states:
//! unlocked, locked, locked with waiters; a waiter sleeps in `FUTEX_WAIT`
//! only while the state says "locked with waiters", and the unlock that
//! finds that state wakes one), minus the poison flag: the engine took
//! every ring lock with `unwrap_or_else(PoisonError::into_inner)`, so
//! poisoning was never observed, yet each lock and unlock still read the
//! global panic count and kept the flag (loads and branches on the path of
//! every submitted op). A panic while the lock is held unlocks it as the
//! guard drops, as with `std`.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

const UNLOCKED: u32 = 0;
/// Locked, nobody sleeping on it.
const LOCKED: u32 = 1;
/// Locked, and a thread may be sleeping in `FUTEX_WAIT` on it: the unlock
/// must wake one.
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock that puts waiters to sleep (see the module docs).
pub(crate) struct RingLock<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one thread at a time
// (`state` goes from UNLOCKED to LOCKED/CONTENDED with Acquire and back to
// UNLOCKED with Release), so sharing it is sharing a `Mutex<T>`: sound for
// `T: Send`.
unsafe impl<T: Send> Sync for RingLock<T> {}

/// Exclusive access to the locked value; unlocks when dropped. Neither
/// `Send` nor (unless `T: Sync`) `Sync`, as `std::sync::MutexGuard`.
pub(crate) struct RingGuard<'a, T> {
    lock: &'a RingLock<T>,
    /// Opts out of the auto traits (a `&RingLock<T>` alone would make the
    /// guard `Sync` for any `T: Send`, handing out `&T` across threads).
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares only `&T` (through `Deref`), which is
// sound across threads exactly when `T: Sync`, as for `MutexGuard`.
unsafe impl<T: Sync> Sync for RingGuard<'_, T> {}

impl<T> RingLock<T> {
    pub(crate) fn new(value: T) -> Self {
        RingLock {
            state: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(value),
        }
    }

    /// Locks, sleeping while another thread holds the lock.
    #[inline]
    pub(crate) fn lock(&self) -> RingGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        RingGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut state = self.spin();
        if state == UNLOCKED {
            match self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
        loop {
            // Mark the lock contended before sleeping, so the holder's
            // unlock wakes us; taking it this way (it was unlocked) leaves
            // it marked contended, which at worst costs one spare wake.
            if state != CONTENDED && self.state.swap(CONTENDED, Acquire) == UNLOCKED {
                return;
            }
            futex_wait(&self.state, CONTENDED);
            state = self.spin();
        }
    }

    /// Spins a little while the lock is held without waiters; returns the
    /// state seen last.
    fn spin(&self) -> u32 {
        let mut spins = 100;
        loop {
            let state = self.state.load(Relaxed);
            if state != LOCKED || spins == 0 {
                return state;
            }
            std::hint::spin_loop();
            spins -= 1;
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Release) == CONTENDED {
            self.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake(&self) {
        futex_wake(&self.state);
    }
}

impl<T> Deref for RingGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its thread holds the lock,
        // so no other reference to the value is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for RingGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference through this guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RingGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// Sleeps while `*state == expected` (returns at once if it is not, and
/// may return spuriously: callers re-check).
fn futex_wait(state: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 the lock owns; no timeout.
    // Errors (EAGAIN: the value changed; EINTR) only mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping in [`futex_wait`] on `state`.
fn futex_wake(state: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32; wakes at most one waiter.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Threads that hold the lock across a sleep (so the others do reach
    /// `FUTEX_WAIT`) never overlap, and every one gets through: a lost
    /// wake-up would hang the test, an overlap break the count.
    #[test]
    fn excludes_and_wakes_sleeping_waiters() {
        let lock = Arc::new(RingLock::new((0u64, false)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let mut g = lock.lock();
                        assert!(!g.1, "two holders at once");
                        g.1 = true;
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        g.0 += 1;
                        g.1 = false;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lock.lock().0, 800);
        assert_eq!(lock.state.load(Relaxed), UNLOCKED);
    }

    /// A panic while holding the lock unlocks it (the guard drops while
    /// unwinding); the value stays usable.
    #[test]
    fn a_panic_while_locked_unlocks() {
        let lock = Arc::new(RingLock::new(1u32));
        let l2 = Arc::clone(&lock);
        let r = std::thread::spawn(move || {
            let mut g = l2.lock();
            *g = 2;
            panic!("panic while holding the ring lock (expected by the test)");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 2);
        assert_eq!(lock.state.load(Relaxed), UNLOCKED);
    }
}
