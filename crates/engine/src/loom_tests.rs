//! loom models of the per-op state machine (`OpCtl`): a completion racing a
//! future's poll (no lost wake-up) and a future's drop (the buffer is freed
//! exactly once, whichever wins).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib -p auraio-engine -- loom`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use auraio_ring::{IoBuf, IoBufMut, OpKind, Resources};
use futures::task::ArcWake;

use crate::op_state::{CtlTarget, Deliver, OpCtl, OpInfo, Phase};

struct Tracked {
    data: Vec<u8>,
    _tag: Arc<()>,
}

// SAFETY: delegates to the inner Vec (stable heap memory).
unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.data.set_init(pos) }
    }
}

struct Flag(AtomicBool);

impl ArcWake for Flag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.store(true, Ordering::SeqCst);
    }
}

fn read_info() -> OpInfo {
    OpInfo {
        kind: OpKind::Read,
        len: 8,
        traced: false,
        shortened: false,
        fixed_buf: false,
        fixed_file: false,
    }
}

fn future_target(ctl: &Arc<OpCtl>) -> CtlTarget {
    CtlTarget {
        ctl: Arc::clone(ctl),
        deliver: Deliver::Future,
    }
}

#[test]
fn loom_completion_vs_poll_never_loses_the_wakeup() {
    loom::model(|| {
        let ctl = OpCtl::new(0, 1, read_info(), None);
        let target = future_target(&ctl);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = futures::task::waker(Arc::clone(&flag));
        let t = loom::thread::spawn(move || {
            let _ = target.finish(Ok(3), Resources::None);
        });
        let first = ctl.take_or_register(&waker);
        t.join().unwrap();
        match first {
            Some((r, _)) => assert_eq!(r.unwrap(), 3),
            None => {
                assert!(
                    flag.0.load(Ordering::SeqCst),
                    "completion after registration must wake"
                );
                let again = ctl.take_or_register(&waker);
                assert_eq!(again.map(|(r, _)| r.unwrap()), Some(3));
            }
        }
        assert_eq!(ctl.phase(), Phase::Done);
    });
}

#[test]
fn loom_completion_vs_future_drop_frees_the_buffer_once() {
    loom::model(|| {
        let tag = Arc::new(());
        let ctl = OpCtl::new(0, 1, read_info(), None);
        let target = future_target(&ctl);
        let buf = Tracked {
            data: vec![0u8; 8],
            _tag: Arc::clone(&tag),
        };
        let t = loom::thread::spawn(move || {
            let _ = target.finish(Ok(8), Resources::Buf(Box::new(buf)));
        });
        let needs_cancel = ctl.abandon();
        t.join().unwrap();
        // Whichever ran first, nobody holds the buffer any more: either the
        // completion saw `abandoned` and dropped it, or the drop found the
        // finished result and released it.
        assert_eq!(Arc::strong_count(&tag), 1);
        assert!(ctl.lock().result.is_none());
        assert_eq!(ctl.phase(), Phase::Done);
        let _ = needs_cancel;
    });
}
