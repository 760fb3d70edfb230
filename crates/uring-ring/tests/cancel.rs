//! Cancel, linked ops, link timeouts, shutdown drain and buffer lifetime.
//!
//! The shared tests run on both backends. A "pending" op is a read of an
//! empty pipe on a [`stalled_ring`]: in the kernel on io_uring, queued
//! behind a busy worker on the blocking backend (which cannot interrupt a
//! running syscall; that, its drain and its worker bounds are tested in
//! `blocking_cancel.rs`). The io_uring-only tests below rely on the kernel
//! interrupting reads that already started.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auraio_ring::{AnyRing, BackendKind, Fd, Op};
use common::*;

backend_tests!(
    cancel_pending_op_completes_once_with_ecanceled,
    cancelled_buffer_stays_alive_until_its_cqe,
    buffer_stays_alive_until_its_cqe,
    linked_write_then_read_sees_the_write,
    failed_or_short_first_link_cancels_the_second,
    link_timeout_fires_on_pending_op,
    link_timeout_does_not_fire_when_op_is_fast,
);

fn cancel_pending_op_completes_once_with_ecanceled(b: BackendKind) {
    let (rd, _wr) = pipe();
    let (mut r, stall) = stalled_ring::<u32>(b, 8, 0);
    let (buf, alive) = tracked(16);
    let id = r.submit(Op::read(fd(&rd), buf, 0), 5).unwrap();
    // Make sure it is really pending.
    let mut out = Vec::new();
    assert_eq!(r.poll(&mut out).unwrap(), 0);
    assert_eq!(r.in_flight(), 1 + stall.extra());
    r.cancel(id).unwrap();
    r.cancel(id).unwrap(); // twice is a no-op
    let c = wait_one(&mut r);
    assert_eq!(c.token, 5);
    assert_eq!(c.slot, id);
    assert_eq!(c.result, -libc::ECANCELED);
    assert_eq!(Arc::strong_count(&alive), 2, "buffer handed back");
    drop(c);
    assert_eq!(Arc::strong_count(&alive), 1);
    assert!(settle(&mut r).is_empty(), "exactly one completion");
    assert_eq!(r.in_flight(), stall.extra());
    stall.release(&mut r);
}

fn cancelled_buffer_stays_alive_until_its_cqe(b: BackendKind) {
    let (rd, _wr) = pipe();
    let (mut r, stall) = stalled_ring::<()>(b, 8, ());
    let (buf, alive) = tracked(32);
    let id = r.submit(Op::read(fd(&rd), buf, 0), ()).unwrap();
    r.flush().unwrap();
    r.cancel(id).unwrap();
    // The cancel is requested but until we reap, the slot keeps the buffer.
    assert_eq!(Arc::strong_count(&alive), 2);
    let c = wait_one(&mut r);
    assert_eq!(c.result, -libc::ECANCELED);
    assert_eq!(Arc::strong_count(&alive), 2);
    drop(c);
    assert_eq!(Arc::strong_count(&alive), 1);
    stall.release(&mut r);
}

fn buffer_stays_alive_until_its_cqe(b: BackendKind) {
    let (rd, wr) = pipe();
    let mut r = any_ring::<()>(b, 8);
    let (buf, alive) = tracked(32);
    r.submit(Op::read(fd(&rd), buf, 0), ()).unwrap();
    let mut out = Vec::new();
    r.poll(&mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(Arc::strong_count(&alive), 2, "the ring owns the buffer");
    write_all(&wr, b"hello");
    let c = wait_one(&mut r);
    assert_eq!(c.result, 5);
    assert_eq!(Arc::strong_count(&alive), 2, "handed back, not dropped");
    let buf: TrackedBuf = c.resources.into_buf().unwrap();
    assert_eq!(&buf.data[..5], b"hello");
    drop(buf);
    assert_eq!(Arc::strong_count(&alive), 1);
}

fn linked_write_then_read_sees_the_write(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "l");
    let mut r = any_ring::<&str>(b, 8);
    let data = pattern(2048, 4);
    let (first, second) = r
        .submit_linked(
            (Op::write(fd(&file), data.clone(), 0), "write"),
            (Op::read(fd(&file), Vec::with_capacity(2048), 0), "read"),
        )
        .unwrap();
    assert_ne!(first, second);
    let got = wait_n(&mut r, 2);
    for c in got {
        match c.token {
            "write" => assert_eq!(c.result, 2048),
            "read" => {
                assert_eq!(c.result, 2048);
                assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);
            }
            other => panic!("unexpected token {other}"),
        }
    }
    assert!(settle(&mut r).is_empty());
}

fn failed_or_short_first_link_cancels_the_second(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "l");
    let (rd, _wr) = pipe();
    let mut r = any_ring::<&str>(b, 8);
    let data = pattern(2048, 4);
    r.submit(Op::write(fd(&file), data.clone(), 0), "data")
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 2048);

    // A failed first op cancels the second (a read that would block, or a
    // write that would change the file).
    r.submit_linked(
        (Op::read(Fd::Raw(-1), Vec::with_capacity(8), 0), "bad"),
        (Op::read(fd(&rd), Vec::with_capacity(8), 0), "pipe"),
    )
    .unwrap();
    let mut got = wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::EBADF);
    assert_eq!(got[1].result, -libc::ECANCELED);
    assert!(settle(&mut r).is_empty());
    r.submit_linked(
        (Op::read(Fd::Raw(-1), Vec::with_capacity(8), 0), "bad"),
        (Op::write(fd(&file), vec![1u8; 8], 0), "never"),
    )
    .unwrap();
    let mut got = wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!((got[0].token, got[0].result), ("bad", -libc::EBADF));
    assert_eq!((got[1].token, got[1].result), ("never", -libc::ECANCELED));

    // A short read (past EOF) breaks the link too.
    r.submit_linked(
        (Op::read(fd(&file), Vec::with_capacity(4096), 0), "short"),
        (Op::Nop, "after-short"),
    )
    .unwrap();
    let mut got = wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::ECANCELED, "{}", got[0].token);
    assert_eq!((got[1].token, got[1].result), ("short", 2048));
    assert!(settle(&mut r).is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        data,
        "cancelled write never ran"
    );
}

/// A pending op is cancelled by its link timeout: it completes with
/// -ECANCELED (on io_uring the timeout itself gets -ETIME, consumed
/// internally).
fn link_timeout_fires_on_pending_op(b: BackendKind) {
    let (rd, _wr) = pipe();
    let (mut r, stall) = stalled_ring::<u8>(b, 8, 0);
    let id = r
        .submit_with_timeout(
            Op::read(fd(&rd), vec![0u8; 8], 0),
            9,
            Duration::from_millis(30),
        )
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.slot, id);
    assert_eq!(c.token, 9);
    assert_eq!(c.result, -libc::ECANCELED);
    assert!(settle(&mut r).is_empty(), "the timeout's CQE is internal");
    assert_eq!(r.in_flight(), stall.extra());
    stall.release(&mut r);
}

fn link_timeout_does_not_fire_when_op_is_fast(b: BackendKind) {
    let (rd, wr) = pipe();
    let mut r = any_ring::<u8>(b, 8);
    write_all(&wr, b"abc");
    r.submit_with_timeout(
        Op::read(fd(&rd), vec![0u8; 8], 0),
        1,
        Duration::from_secs(30),
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 3);
    assert!(settle(&mut r).is_empty());
    // Many timeouts in a row never exhaust the CQ budget; fast ops beat
    // their timeouts every time.
    for i in 0..100u8 {
        r.submit_with_timeout(Op::Nop, i, Duration::from_secs(30))
            .unwrap();
        let c = wait_one(&mut r);
        assert_eq!((c.token, c.result), (i, 0));
    }
    assert!(settle(&mut r).is_empty());
}

/// io_uring: the kernel interrupts reads already waiting on the pipe.
#[test]
fn drain_for_shutdown_completes_every_slot() {
    if skip_without_io_uring() {
        return;
    }
    let (rd, _wr) = pipe();
    let mut r = any_ring::<u32>(BackendKind::IoUring, 8);
    let mut alive = Vec::new();
    for i in 0..8 {
        let (buf, a) = tracked(8);
        alive.push(a);
        r.submit(Op::read(fd(&rd), buf, 0), i).unwrap();
    }
    let mut out = Vec::new();
    r.drain_for_shutdown(&mut out).unwrap();
    assert_eq!(r.in_flight(), 0);
    let mut tokens: Vec<u32> = out.iter().map(|c| c.token).collect();
    tokens.sort();
    assert_eq!(tokens, (0..8).collect::<Vec<_>>());
    assert!(out.iter().all(|c| c.result == -libc::ECANCELED));
    drop(out);
    assert!(alive.iter().all(|a| Arc::strong_count(a) == 1));
}

/// io_uring: dropping the ring cancels a read already waiting in the kernel.
#[test]
fn dropping_a_ring_with_pending_ops_drains_them() {
    if skip_without_io_uring() {
        return;
    }
    let (rd, _wr) = pipe();
    let (buf, alive) = tracked(8);
    {
        let mut r: AnyRing<()> = any_ring(BackendKind::IoUring, 8);
        r.submit(Op::read(fd(&rd), buf, 0), ()).unwrap();
        r.flush().unwrap();
        assert_eq!(Arc::strong_count(&alive), 2);
    }
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "drop cancelled and released it"
    );
}

#[test]
fn cancel_many_more_than_cq_budget() {
    if skip_without_io_uring() {
        return;
    }
    // Each cancel needs an internal CQE; with 8 slots each carrying a link
    // timeout, cancels must wait for budget instead of overflowing the CQ.
    let (rd, _wr) = pipe();
    let mut r = any_ring::<u32>(BackendKind::IoUring, 8);
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            r.submit_with_timeout(
                Op::read(fd(&rd), vec![0u8; 8], 0),
                i,
                Duration::from_secs(60),
            )
            .unwrap(),
        );
    }
    for id in &ids {
        r.cancel(*id).unwrap();
    }
    let got = wait_n(&mut r, 8);
    assert!(got.iter().all(|c| c.result == -libc::ECANCELED));
    assert!(settle(&mut r).is_empty());
    assert_eq!(r.stats().stale_cqes, 0);
}
