//! Latency stamps and thread-safety markers.

mod common;

use std::time::{Duration, Instant};

use auraio_ring::{Op, Ring, RingConfig, Waiter};
use common::*;

fn assert_send<T: Send>() {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn ring_is_send_and_waiter_is_send_sync() {
    assert_send::<Ring<u64>>();
    assert_send::<Ring<Box<dyn FnOnce(i32) + Send>>>();
    assert_send_sync::<Waiter>();
    assert_send_sync::<std::sync::Mutex<Ring<u64>>>();
}

#[test]
fn latency_covers_submit_to_reap() {
    let (rd, wr) = pipe();
    let mut r = ring::<()>(8);
    let t0 = Instant::now();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    let c = wait_one(&mut r);
    let outer = t0.elapsed();
    assert_eq!(c.result, 4);
    // Lower bound: the op could not finish before the data was written.
    assert!(
        c.latency_ns >= 30_000_000,
        "latency {} ns shorter than the wait",
        c.latency_ns
    );
    // Upper bound: it is measured inside the submit..reap window.
    assert!(c.latency_ns <= outer.as_nanos() as u64);
    assert!(r.now_ns() >= c.latency_ns);
}

/// A ring that only submits on its own after 8 queued SQEs.
fn batching_ring() -> Ring<u32> {
    Ring::new(&RingConfig {
        sq_entries: 16,
        batch_threshold: 8,
        ..Default::default()
    })
    .expect("io_uring is available on this machine")
}

#[test]
fn latency_covers_kernel_time_but_not_the_wait_for_the_batch() {
    let (rd, wr) = pipe();
    let mut r = batching_ring();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 1).unwrap();
    assert_eq!(r.queued(), 1, "below the threshold the op waits in the SQ");
    // Time the op spends queued, waiting for the batch to fill: excluded.
    std::thread::sleep(Duration::from_millis(20));
    let t_flush = Instant::now();
    assert_eq!(r.flush().unwrap(), 1);
    // Time the op spends in the kernel: the read cannot finish before the
    // write below, at least 30 ms after the hand-off.
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    let c = wait_one(&mut r);
    let since_flush = t_flush.elapsed();
    assert_eq!((c.token, c.result), (1, 4));
    assert!(
        c.latency_ns >= 30_000_000,
        "latency {} ns shorter than the op's time in the kernel",
        c.latency_ns
    );
    // Stamped inside `flush`, so the 20 ms before it are not counted.
    assert!(
        c.latency_ns <= since_flush.as_nanos() as u64,
        "latency {} ns includes time before the hand-off ({:?})",
        c.latency_ns,
        since_flush
    );
}

#[test]
fn ops_handed_off_and_reaped_together_share_both_stamps() {
    let mut r = batching_ring();
    r.submit(Op::Nop, 1).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    r.submit(Op::Nop, 2).unwrap();
    assert_eq!(r.queued(), 2);
    let t_wait = Instant::now();
    let mut out = Vec::new();
    // One enter submits both; NOPs complete during it, one reap takes both.
    assert_eq!(r.wait(2, None, &mut out).unwrap(), 2);
    let window = t_wait.elapsed().as_nanos() as u64;
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].latency_ns, out[1].latency_ns,
        "same hand-off and same reap give the same latency"
    );
    // The first NOP's 10 ms in the queue before the second arrived are not
    // part of its latency: both are measured inside the `wait` call.
    for c in &out {
        assert!(c.latency_ns <= window, "{} ns > {window} ns", c.latency_ns);
    }
    let s = r.stats();
    assert_eq!((s.submit_calls, s.sqes_submitted), (1, 2));
}

#[test]
fn op_drained_while_queued_is_timed_from_its_hand_off() {
    // Shutdown hands the queued read to the kernel together with its
    // cancel: its latency starts there, not at the push 20 ms earlier.
    let (rd, _wr) = pipe();
    let mut r = batching_ring();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 7).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let t_drain = Instant::now();
    let mut out = Vec::new();
    r.drain_for_shutdown(&mut out).unwrap();
    let window = t_drain.elapsed().as_nanos() as u64;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result, -libc::ECANCELED);
    assert!(out[0].latency_ns <= window, "{} ns", out[0].latency_ns);
}

#[test]
fn bad_registered_file_update_is_an_error_not_a_panic() {
    let mut r = ring::<()>(8);
    // No table registered yet.
    assert!(r.update_file(0, 0).is_err());
    r.register_files(&[-1, -1]).unwrap();
    // Out of range.
    assert!(r.update_file(5, 0).is_err());
    // Clearing an entry works.
    r.update_file(1, -1).unwrap();
    r.unregister_files().unwrap();
    assert!(r.unregister_files().is_err());
}
