//! Cancelling ops in the backlog and in the kernel, and dropping futures
//! (also by a tokio timeout): buffers stay owned until the completion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_engine::ReaperMode;

use crate::common::*;
use crate::fixed_engine;

#[test]
fn cancel_in_kernel_and_in_backlog() {
    let e = fixed_engine(1, ReaperMode::Never);
    let (rd, _wr) = pipe();
    let results = Arc::new(Mutex::new(Vec::new()));
    let r1 = Arc::clone(&results);
    let first = e
        .read(&rd, vec![0u8; 8], 0, move |r, buf| {
            r1.lock()
                .unwrap()
                .push(("first", r.map_err(|e| e.raw_os_error()), buf.len()))
        })
        .unwrap();
    let r2 = Arc::clone(&results);
    let second = e
        .read(&rd, vec![0u8; 4], 0, move |r, buf| {
            r2.lock()
                .unwrap()
                .push(("second", r.map_err(|e| e.raw_os_error()), buf.len()))
        })
        .unwrap();
    e.poll().unwrap();
    let st = e.stats();
    assert_eq!(st.total.in_flight, 1, "limit 1: one in the ring");
    assert_eq!(st.total.backlog, 1, "the other waits in the backlog");
    // Cancelling the backlogged op completes it at once.
    e.cancel(&second).unwrap();
    e.poll().unwrap();
    assert!(second.is_done());
    // Cancelling the one in the kernel completes it with ECANCELED.
    e.cancel(&first).unwrap();
    drive_until(&e, || first.is_done(), "cancelled read");
    let got = results.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            ("second", Err(Some(libc::ECANCELED)), 4),
            ("first", Err(Some(libc::ECANCELED)), 8)
        ]
    );
    // Cancelling again is a no-op.
    e.cancel(&first).unwrap();
    assert_eq!(e.pending(), 0);
}

#[test]
fn dropped_future_keeps_its_buffer_until_the_cqe() {
    // No reaper: the test decides when completions are reaped.
    let e = engine(ReaperMode::Never);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let buf = Tracked {
        data: vec![0u8; 32],
        _tag: Arc::clone(&tag),
    };
    let fut = e.read_at(&rd, buf, 0);
    assert_eq!(Arc::strong_count(&tag), 2, "the op owns the buffer");
    drop(fut);
    // The cancel is issued, but the CQE has not been reaped: the slot still
    // owns the buffer, so the kernel can never write into freed memory.
    assert_eq!(
        Arc::strong_count(&tag),
        2,
        "buffer must stay alive until the completion is reaped"
    );
    drive_until(&e, || e.pending() == 0, "the cancel completion");
    assert_eq!(Arc::strong_count(&tag), 1, "freed once the CQE arrived");

    // The same with a backlogged op: dropping it frees the buffer at once
    // (it never reached the kernel).
    let e = fixed_engine(1, ReaperMode::Never);
    let hold = e.read_at(&rd, vec![0u8; 1], 0);
    let tag2 = Arc::new(());
    let fut = e.read_at(
        &rd,
        Tracked {
            data: vec![0u8; 8],
            _tag: Arc::clone(&tag2),
        },
        0,
    );
    assert_eq!(e.stats().total.backlog, 1);
    drop(fut);
    assert_eq!(Arc::strong_count(&tag2), 1);
    drop(hold);
    drive_until(&e, || e.pending() == 0, "drain");
}

#[test]
fn dropped_future_with_reaper_releases_buffer() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let mut futs = Vec::new();
    for _ in 0..10 {
        futs.push(e.read_at(
            &rd,
            Tracked {
                data: vec![0u8; 16],
                _tag: Arc::clone(&tag),
            },
            0,
        ));
    }
    assert_eq!(Arc::strong_count(&tag), 11);
    drop(futs);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&tag) > 1 {
        assert!(std::time::Instant::now() < deadline, "buffers not released");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.pending(), 0);
}

#[test]
fn tokio_timeout_drops_a_future_mid_flight() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let timed_out = rt.block_on(async {
        let fut = e.read_at(
            &rd,
            Tracked {
                data: vec![0u8; 64],
                _tag: Arc::clone(&tag),
            },
            0,
        );
        tokio::time::timeout(Duration::from_millis(20), fut)
            .await
            .is_err()
    });
    assert!(timed_out, "a read on an empty pipe cannot finish");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&tag) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "buffer never released"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.pending(), 0);
    // The engine still works afterwards.
    let r = rt.block_on(e.nop_async());
    r.unwrap();
}
