//! Cancel, linked ops, link timeouts, shutdown drain and buffer lifetime.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auraio_ring::{IoBuf, IoBufMut, Op, Ring};
use common::*;

/// A buffer that carries an `Arc` so tests can see whether the ring still
/// holds it (strong count 2) or has given it back and it was dropped (1).
struct TrackedBuf {
    data: Box<[u8]>,
    _alive: Arc<()>,
}

// SAFETY: delegates to the boxed slice, whose heap memory does not move.
unsafe impl IoBuf for TrackedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.len()
    }
}

// SAFETY: same memory, writable for its whole length.
unsafe impl IoBufMut for TrackedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

fn tracked(len: usize) -> (TrackedBuf, Arc<()>) {
    let alive = Arc::new(());
    (
        TrackedBuf {
            data: vec![0u8; len].into_boxed_slice(),
            _alive: alive.clone(),
        },
        alive,
    )
}

/// Polls a few times and returns everything that showed up.
fn settle<T>(r: &mut Ring<T>) -> Vec<auraio_ring::Completion<T>> {
    let mut out = Vec::new();
    for _ in 0..5 {
        r.poll(&mut out).unwrap();
        r.wait(1, Some(Duration::from_millis(20)), &mut out)
            .unwrap();
    }
    out
}

#[test]
fn cancel_pending_pipe_read_completes_once_with_ecanceled() {
    let (rd, _wr) = pipe();
    let mut r = ring::<u32>(8);
    let id = r.submit(Op::read(fd(&rd), vec![0u8; 16], 0), 5).unwrap();
    // Make sure it is really pending in the kernel.
    let mut out = Vec::new();
    assert_eq!(r.poll(&mut out).unwrap(), 0);
    assert_eq!(r.in_flight(), 1);
    r.cancel(id).unwrap();
    r.cancel(id).unwrap(); // twice is a no-op
    let c = wait_one(&mut r);
    assert_eq!(c.token, 5);
    assert_eq!(c.slot, id);
    assert_eq!(c.result, -libc::ECANCELED);
    assert!(settle(&mut r).is_empty(), "exactly one completion");
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn buffer_stays_alive_until_its_cqe() {
    let (rd, wr) = pipe();
    let mut r = ring::<()>(8);
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
    let b: TrackedBuf = c.resources.into_buf().unwrap();
    assert_eq!(&b.data[..5], b"hello");
    drop(b);
    assert_eq!(Arc::strong_count(&alive), 1);
}

#[test]
fn cancelled_buffer_stays_alive_until_its_cqe() {
    let (rd, _wr) = pipe();
    let mut r = ring::<()>(8);
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
}

#[test]
fn linked_write_then_read_sees_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut r = ring::<&str>(8);
    let data = pattern(2048, 4);
    let (a, b) = r
        .submit_linked(
            (Op::write(fd(&file), data.clone(), 0), "write"),
            (Op::read(fd(&file), Vec::with_capacity(2048), 0), "read"),
        )
        .unwrap();
    assert_ne!(a, b);
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
}

#[test]
fn failed_first_link_cancels_the_second() {
    let (rd, _wr) = pipe();
    let mut r = ring::<u8>(8);
    r.submit_linked(
        (
            Op::read(auraio_ring::Fd::Raw(-1), Vec::with_capacity(8), 0),
            1,
        ),
        (Op::read(fd(&rd), Vec::with_capacity(8), 0), 2),
    )
    .unwrap();
    let mut got = wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::EBADF);
    assert_eq!(got[1].result, -libc::ECANCELED);
    assert!(settle(&mut r).is_empty());
}

/// A pipe read that never gets data is cancelled by its link timeout: it
/// completes with -ECANCELED (the timeout itself gets -ETIME, consumed
/// internally).
#[test]
fn link_timeout_fires_on_pending_pipe_read() {
    let (rd, _wr) = pipe();
    let mut r = ring::<u8>(8);
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
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn link_timeout_does_not_fire_when_op_is_fast() {
    let (rd, wr) = pipe();
    let mut r = ring::<u8>(8);
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
    // Many timeouts in a row never exhaust the CQ budget.
    for i in 0..100u8 {
        r.submit_with_timeout(Op::Nop, i, Duration::from_secs(30))
            .unwrap();
        assert_eq!(wait_one(&mut r).token, i);
    }
}

#[test]
fn drain_for_shutdown_completes_every_slot() {
    let (rd, _wr) = pipe();
    let mut r = ring::<u32>(8);
    let mut alive = Vec::new();
    for i in 0..8 {
        let (b, a) = tracked(8);
        alive.push(a);
        r.submit(Op::read(fd(&rd), b, 0), i).unwrap();
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

#[test]
fn dropping_a_ring_with_pending_ops_drains_them() {
    let (rd, _wr) = pipe();
    let (b, alive) = tracked(8);
    {
        let mut r = ring::<()>(8);
        r.submit(Op::read(fd(&rd), b, 0), ()).unwrap();
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
    // Each cancel needs an internal CQE; with 8 slots each carrying a link
    // timeout, cancels must wait for budget instead of overflowing the CQ.
    let (rd, _wr) = pipe();
    let mut r = ring::<u32>(8);
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
