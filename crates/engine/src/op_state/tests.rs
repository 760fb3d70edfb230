//! Unit tests of the control block and of delivery through a target.

use std::io;
use std::sync::Arc;

use auraio_ring::{OpKind, Resources};

use crate::callback::Callback;

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
