//! [`Callback`]: a type-erased `FnOnce(io::Result<u32>, Resources)` that is
//! stored inline, without a heap allocation, when the closure is small
//! (up to [`INLINE_WORDS`] machine words, which covers the engine's wrapper
//! around a user callback capturing a couple of pointers), and boxed
//! otherwise.
//!
//! It replaces a `Box<dyn FnOnce ..>` on the per-op path: one allocation
//! and one free less per callback op. It lives in the op's
//! [`OpCtl`](crate::op_state::OpCtl), which is itself recycled per thread.

use std::io;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

use auraio_ring::Resources;

/// Words of inline storage.
pub(crate) const INLINE_WORDS: usize = 3;

type Storage = MaybeUninit<[usize; INLINE_WORDS]>;

/// Runs the closure stored at the pointer with the op's result and
/// resources. The result travels as two scalars (see [`to_raw`]), in
/// registers, and becomes an `io::Result` only inside, next to the
/// closure: an `io::Result` (or an `Option` of a tuple holding one) passed
/// through memory was built with narrow stores and read back with wide
/// loads on every call, a store-forwarding stall per op.
///
/// # Safety
/// The pointer must point at a [`Storage`] holding a live value written by
/// [`Callback::new`] for this very function, and the value must not be
/// used again afterwards (it is moved out).
type CallFn = unsafe fn(*mut Storage, i32, Option<io::Error>, Resources);

/// Drops the closure stored at the pointer without calling it.
///
/// # Safety
/// As for [`CallFn`]: a live value written by [`Callback::new`] for this
/// function, not used again afterwards.
type DropFn = unsafe fn(*mut Storage);

/// A `FnOnce(io::Result<u32>, Resources) + Send` without an allocation when
/// it fits in [`INLINE_WORDS`] words. Called at most once ([`call`]
/// consumes it); dropped uncalled, it drops the closure.
///
/// [`call`]: Callback::call
pub(crate) struct Callback {
    data: Storage,
    call: CallFn,
    drop: DropFn,
}

// SAFETY: `new` only accepts `Send` closures, and the storage holds either
// such a closure or a `Box` of one; nothing in it is shared.
unsafe impl Send for Callback {}

/// Whether `F` is stored inline (else boxed).
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Storage>() && align_of::<F>() <= align_of::<Storage>()
}

/// An op's result as two scalars: `(n, None)` for `Ok(n)`, `(_, Some(e))`
/// for `Err(e)`.
#[inline(always)]
fn to_raw(r: io::Result<u32>) -> (i32, Option<io::Error>) {
    match r {
        Ok(n) => (n as i32, None),
        Err(e) => (-1, Some(e)),
    }
}

/// The inverse of [`to_raw`].
#[inline(always)]
fn from_raw(n: i32, e: Option<io::Error>) -> io::Result<u32> {
    match e {
        None => Ok(n as u32),
        Some(e) => Err(e),
    }
}

/// # Safety
/// See [`CallFn`]; the storage holds an `F` written inline.
unsafe fn call_inline<F: FnOnce(io::Result<u32>, Resources)>(
    p: *mut Storage,
    n: i32,
    e: Option<io::Error>,
    res: Resources,
) {
    // SAFETY: per the contract the storage holds a live `F` (inline, so
    // `F` fits and is aligned), read exactly once here.
    let f = unsafe { p.cast::<F>().read() };
    f(from_raw(n, e), res)
}

/// # Safety
/// See [`DropFn`]; the storage holds an `F` written inline.
unsafe fn drop_inline<F>(p: *mut Storage) {
    // SAFETY: per the contract the storage holds a live `F` (inline, so
    // `F` fits and is aligned), dropped exactly once here.
    unsafe { p.cast::<F>().drop_in_place() }
}

/// # Safety
/// See [`CallFn`]; the storage holds a `*mut F` from `Box::into_raw`.
unsafe fn call_boxed<F: FnOnce(io::Result<u32>, Resources)>(
    p: *mut Storage,
    n: i32,
    e: Option<io::Error>,
    res: Resources,
) {
    // SAFETY: per the contract the storage holds the pointer of a live
    // `Box<F>`, taken back exactly once here.
    let f = unsafe { Box::from_raw(p.cast::<*mut F>().read()) };
    f(from_raw(n, e), res)
}

/// # Safety
/// See [`DropFn`]; the storage holds a `*mut F` from `Box::into_raw`.
unsafe fn drop_boxed<F>(p: *mut Storage) {
    // SAFETY: per the contract the storage holds the pointer of a live
    // `Box<F>`, taken back exactly once here.
    drop(unsafe { Box::from_raw(p.cast::<*mut F>().read()) })
}

impl Callback {
    /// Stores `f` (inline when it fits, else boxed).
    #[inline]
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce(io::Result<u32>, Resources) + Send + 'static,
    {
        let mut data = Storage::uninit();
        if fits::<F>() {
            // SAFETY: `F` fits in `data` and needs no stricter alignment
            // (checked by `fits`); `data` is fresh, nothing is overwritten.
            unsafe { data.as_mut_ptr().cast::<F>().write(f) };
            Callback {
                data,
                call: call_inline::<F>,
                drop: drop_inline::<F>,
            }
        } else {
            let raw = Box::into_raw(Box::new(f));
            // SAFETY: a pointer fits in `data` and has its alignment.
            unsafe { data.as_mut_ptr().cast::<*mut F>().write(raw) };
            Callback {
                data,
                call: call_boxed::<F>,
                drop: drop_boxed::<F>,
            }
        }
    }

    /// Runs the closure (once: this consumes the callback). A panic in the
    /// closure unwinds out of here with the closure already moved out, so
    /// nothing is dropped twice.
    #[inline]
    pub(crate) fn call(self, result: io::Result<u32>, resources: Resources) {
        let mut this = ManuallyDrop::new(self);
        let call = this.call;
        let (n, e) = to_raw(result);
        // SAFETY: `data` holds the live closure `call` was made for
        // (written by `new`, not consumed yet: `call` and `drop` are the
        // only consumers and both take the callback by value / once);
        // `ManuallyDrop` keeps `Drop` from touching it again.
        unsafe { call(&mut this.data, n, e, resources) }
    }
}

impl Callback {
    /// [`call`](Self::call) for a callback left where it is stored (a
    /// lean op's table entry): the closure is read out of `p` by the call
    /// itself, so the callback is not copied out first.
    ///
    /// # Safety
    /// `p` points at a live `Callback` that nothing else accesses now; it
    /// is consumed here (moved out, as by `call`): the caller must treat
    /// `*p` as uninitialized afterwards, also when the closure panics.
    #[inline(always)]
    pub(crate) unsafe fn call_in_place(
        p: *mut Callback,
        result: io::Result<u32>,
        resources: Resources,
    ) {
        let (n, e) = to_raw(result);
        // SAFETY: per the contract `*p` is a live callback: its `data`
        // holds the closure its `call` was made for, and this is its one
        // use (the caller forgets it afterwards).
        unsafe {
            let call = (*p).call;
            call(std::ptr::addr_of_mut!((*p).data), n, e, resources)
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        // SAFETY: as in `call`: the closure is live (a called callback is
        // never dropped, see `call`), and this is its last use.
        unsafe { (self.drop)(&mut self.data) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn small_closures_are_inline_and_big_ones_boxed() {
        let small = [0usize; INLINE_WORDS];
        let big = [0usize; INLINE_WORDS + 1];
        let f_small = move |_: io::Result<u32>, _: Resources| {
            std::hint::black_box(small);
        };
        let f_big = move |_: io::Result<u32>, _: Resources| {
            std::hint::black_box(big);
        };
        assert!(fits_val(&f_small));
        assert!(!fits_val(&f_big));
        // A u128 needs more alignment than the storage: boxed.
        let aligned = 7u128;
        let f_aligned = move |_: io::Result<u32>, _: Resources| {
            std::hint::black_box(aligned);
        };
        assert!(!fits_val(&f_aligned));
    }

    fn fits_val<F>(_: &F) -> bool {
        fits::<F>()
    }

    /// Called with its arguments, exactly once, and its captures dropped
    /// once, for an inline and a boxed closure.
    #[test]
    fn call_runs_once_and_drops_captures_once() {
        for pad in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(AtomicUsize::new(0));
            let t = Tracked(Arc::clone(&drops));
            let s = Arc::clone(&seen);
            let padding = [1u64; 8];
            let cb = if pad {
                Callback::new(move |r: io::Result<u32>, res: Resources| {
                    let _t = &t;
                    assert_eq!(padding.iter().sum::<u64>(), 8);
                    assert!(matches!(res, Resources::None));
                    s.fetch_add(r.unwrap() as usize, Ordering::SeqCst);
                })
            } else {
                Callback::new(move |r: io::Result<u32>, res: Resources| {
                    let _t = &t;
                    assert!(matches!(res, Resources::None));
                    s.fetch_add(r.unwrap() as usize, Ordering::SeqCst);
                })
            };
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            cb.call(Ok(5), Resources::None);
            assert_eq!(seen.load(Ordering::SeqCst), 5, "pad {pad}");
            assert_eq!(drops.load(Ordering::SeqCst), 1, "pad {pad}");
        }
    }

    /// Dropped without a call: the captures (and the box) are freed once.
    #[test]
    fn drop_without_call_drops_captures_once() {
        for pad in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let t = Tracked(Arc::clone(&drops));
            let padding = [0u64; 8];
            let cb = if pad {
                Callback::new(move |_: io::Result<u32>, _: Resources| {
                    let _t = &t;
                    let _p = padding;
                })
            } else {
                Callback::new(move |_: io::Result<u32>, _: Resources| {
                    let _t = &t;
                })
            };
            drop(cb);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "pad {pad}");
        }
    }

    /// A panicking closure unwinds out of `call` with its captures dropped
    /// once (during the unwind), never again.
    #[test]
    fn a_panic_drops_captures_once() {
        for pad in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let t = Tracked(Arc::clone(&drops));
            let padding = [0u64; 8];
            let cb = if pad {
                Callback::new(move |_: io::Result<u32>, _: Resources| {
                    let _t = &t;
                    let _p = padding;
                    panic!("boom");
                })
            } else {
                Callback::new(move |_: io::Result<u32>, _: Resources| {
                    let _t = &t;
                    panic!("boom");
                })
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                cb.call(Ok(0), Resources::None)
            }));
            assert!(r.is_err());
            assert_eq!(drops.load(Ordering::SeqCst), 1, "pad {pad}");
        }
    }

    /// The resources reach the closure (a buffer comes back intact).
    #[test]
    fn resources_reach_the_closure() {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let o = Arc::clone(&out);
        let cb = Callback::new(move |r: io::Result<u32>, res: Resources| {
            assert_eq!(r.unwrap(), 3);
            *o.lock().unwrap() = res.into_buf::<Vec<u8>>().unwrap();
        });
        cb.call(Ok(3), Resources::Buf(Box::new(vec![1u8, 2, 3])));
        assert_eq!(*out.lock().unwrap(), [1, 2, 3]);
    }
}
