//! Shutdown and stop: every op completes once, pending futures resolve,
//! later submissions are clear errors, `run` returns after `stop`.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auraio_engine::{is_shutdown, ReaperMode};

use crate::common::*;
use crate::fixed_engine;

#[test]
fn shutdown_completes_every_op_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(4096, 1));
    let file = std::fs::File::open(&p).unwrap();
    let (rd, _wr) = pipe();
    let e = fixed_engine(4, ReaperMode::Never);
    const N: usize = 40;
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let canceled = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let tag = Arc::new(());
    for i in 0..N {
        let (c, cx, okc) = (Arc::clone(&calls), Arc::clone(&canceled), Arc::clone(&ok));
        let buf = Tracked {
            data: vec![0u8; 16],
            _tag: Arc::clone(&tag),
        };
        let cb = move |r: io::Result<usize>, _b: Tracked| {
            c[i].fetch_add(1, Ordering::SeqCst);
            match r {
                Ok(_) => okc.fetch_add(1, Ordering::SeqCst),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                    cx.fetch_add(1, Ordering::SeqCst)
                }
            };
        };
        // Mix stuck pipe reads (in the kernel and in the backlog) with
        // file reads that complete normally.
        if i % 2 == 0 {
            e.read(&rd, buf, 0, cb).unwrap();
        } else {
            e.read(&file, buf, 0, cb).unwrap();
        }
    }
    // Some in flight, most in the backlog.
    let st = e.stats();
    assert!(st.total.backlog > 0, "{st:?}");
    assert_eq!(e.pending(), N);
    let e2 = e.clone();
    drop(e);
    assert!(!e2.is_shut_down(), "a clone keeps it alive");
    drop(e2); // last handle: shuts down, cancels and drains
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "op {i} completed once");
    }
    let (ok, cx) = (ok.load(Ordering::SeqCst), canceled.load(Ordering::SeqCst));
    assert_eq!(ok + cx, N);
    assert!(cx >= N / 2, "every pipe read was cancelled ({cx})");
    assert_eq!(Arc::strong_count(&tag), 1, "no buffer leaked");
}

#[test]
fn shutdown_resolves_pending_futures() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let futs: Vec<_> = (0..5).map(|_| e.read_at(&rd, vec![0u8; 4], 0)).collect();
    drop(e);
    for f in futs {
        let (r, buf) = futures::executor::block_on(f);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(buf.len(), 4);
    }
}

#[test]
fn submit_after_shutdown_is_a_clear_error() {
    let e = engine(ReaperMode::Never);
    e.shutdown();
    assert!(e.is_shut_down());
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"x");
    let f = std::fs::File::open(&p).unwrap();
    let err = e
        .read(&f, vec![5u8; 3], 0, |_, _| panic!("never called"))
        .unwrap_err();
    assert!(is_shutdown(err.error()), "{err}");
    let (r, buf) = err.into_output();
    assert!(r.is_err());
    assert_eq!(buf, vec![5u8; 3], "buffer handed back");
    let (r, _) = futures::executor::block_on(e.read_at(&f, vec![0u8; 1], 0));
    assert!(is_shutdown(&r.unwrap_err()));
    assert_eq!(e.poll().unwrap(), 0);
    assert_eq!(e.wait(Some(Duration::from_millis(1))).unwrap(), 0);
    e.shutdown(); // idempotent
}

#[test]
fn run_returns_after_stop_from_a_callback() {
    let e = engine(ReaperMode::Never);
    let e2 = e.clone();
    e.nop(move |_| e2.stop()).unwrap();
    e.run().unwrap();
    assert_eq!(e.pending(), 0);
}
