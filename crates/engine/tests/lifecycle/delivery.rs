//! Who delivers completions: callbacks that submit more I/O, futures on a
//! tokio multi-thread runtime, reaper threads with nobody polling, and
//! `wait` on kernels without timed waits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_engine::{Engine, ReaperMode};

use crate::common::*;
use crate::eventually;

#[test]
fn callbacks_can_submit_more_io() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(64 * 200, 4);
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = engine(ReaperMode::Never);
    let got = Arc::new(Mutex::new(Vec::new()));

    fn step(e: Engine, file: Arc<std::fs::File>, i: u64, got: Arc<Mutex<Vec<u8>>>) {
        let e2 = e.clone();
        let f2 = Arc::clone(&file);
        e.read(&*file, Vec::with_capacity(64), i * 64, move |r, buf| {
            assert_eq!(r.unwrap(), 64);
            got.lock().unwrap().extend_from_slice(&buf);
            if i + 1 < 200 {
                step(e2, f2, i + 1, got);
            }
        })
        .unwrap();
    }
    step(e.clone(), file, 0, Arc::clone(&got));
    e.run_until_idle().unwrap();
    assert_eq!(*got.lock().unwrap(), data, "200 chained reads in order");
    assert_eq!(e.stats().total.completions, 200);
}

#[test]
fn async_face_under_tokio_multi_thread() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(pattern(256 * 1024, 8));
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = engine(ReaperMode::Auto);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let total = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let (e, file, data) = (e.clone(), Arc::clone(&file), Arc::clone(&data));
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                for i in 0..50u64 {
                    let off = ((t * 50 + i) * 4096) % (256 * 1024);
                    let (r, buf) = e.read_at(&*file, Vec::with_capacity(4096), off).await;
                    assert_eq!(r.unwrap(), 4096);
                    assert_eq!(&buf[..], &data[off as usize..off as usize + 4096]);
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(total, 32 * 50);
    assert_eq!(e.stats().total.completions, 32 * 50);
}

#[test]
fn reaper_always_runs_callbacks_without_polling() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(32)
        .reaper(ReaperMode::Always)
        .build()
        .unwrap();
    let n = Arc::new(AtomicU32::new(0));
    for _ in 0..100 {
        let n = Arc::clone(&n);
        e.nop(move |r| {
            r.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Nobody calls poll/wait here: the reapers deliver.
    eventually(|| n.load(Ordering::SeqCst) == 100, "reapers delivering");
    eventually(|| e.pending() == 0, "pending drops to 0");
}

#[test]
fn wait_degrades_on_kernels_without_timed_waits() {
    // As on Linux < 5.11 (no IORING_FEAT_EXT_ARG): `wait` with a timeout
    // must block by polling in short sleeps, not fail with Unsupported.
    use std::io::Write;
    for reaper in [ReaperMode::Never, ReaperMode::Always] {
        let e = Engine::builder()
            .rings(1)
            .queue_depth(16)
            .timed_waits(false)
            .reaper(reaper)
            .build()
            .unwrap();
        // A read from a socket with no data stays in flight until written.
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        e.read(&a, Vec::with_capacity(4), 0, move |r, buf| {
            assert_eq!(r.unwrap(), 4);
            *g.lock().unwrap() = buf;
        })
        .unwrap();
        assert_eq!(e.pending(), 1);
        // Nothing can complete: it waits out its timeout and reports 0.
        assert_eq!(
            e.wait(Some(Duration::from_millis(20))).unwrap(),
            0,
            "{reaper:?}"
        );
        b.write_all(b"ping").unwrap();
        while e.pending() > 0 {
            e.wait(Some(Duration::from_millis(50))).unwrap();
        }
        assert_eq!(*got.lock().unwrap(), b"ping", "{reaper:?}");
        // With nothing pending it returns at once.
        assert_eq!(e.wait(Some(Duration::from_millis(50))).unwrap(), 0);
        if reaper == ReaperMode::Always {
            // Futures, driven by the reaper thread on the same fallback.
            let f = e.read_at(&a, Vec::with_capacity(4), 0);
            b.write_all(b"pong").unwrap();
            let (r, buf) = futures::executor::block_on(f);
            assert_eq!(r.unwrap(), 4);
            assert_eq!(buf, b"pong");
        }
        e.run_until_idle().unwrap();
    }
}
