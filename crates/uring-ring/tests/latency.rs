//! Latency stamps (on both backends) and thread-safety markers.

mod common;

use std::time::{Duration, Instant};

use auraio_ring::{AnyRing, BackendKind, Op, Ring, RingConfig, Waiter};
use common::*;

backend_tests!(
    latency_covers_submit_to_reap_and_eventfd_signals,
    latency_covers_kernel_time_but_not_the_wait_for_the_batch,
    ops_handed_off_and_reaped_together_share_both_stamps,
    op_drained_while_queued_is_timed_from_its_hand_off,
    a_completion_gap_longer_than_the_threshold_is_counted_as_long,
);

fn assert_send<T: Send>() {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn ring_is_send_and_waiter_is_send_sync() {
    assert_send::<Ring<u64>>();
    assert_send::<Ring<Box<dyn FnOnce(i32) + Send>>>();
    assert_send_sync::<Waiter>();
    assert_send_sync::<std::sync::Mutex<Ring<u64>>>();
}

fn latency_covers_submit_to_reap_and_eventfd_signals(b: BackendKind) {
    let mut r: AnyRing<()> = eventfd_ring(b);
    let efd = r.eventfd().expect("eventfd");
    let (rd, wr) = pipe();
    let t0 = Instant::now();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    assert_eq!(poll_readable(efd, 10_000), 1, "eventfd readable");
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

/// A ring that only submits on its own after 8 queued ops.
fn batching_ring(b: BackendKind) -> AnyRing<u32> {
    any_ring_with(
        b,
        &RingConfig {
            sq_entries: 16,
            batch_threshold: 8,
            ..Default::default()
        },
    )
}

fn latency_covers_kernel_time_but_not_the_wait_for_the_batch(b: BackendKind) {
    let (rd, wr) = pipe();
    let mut r = batching_ring(b);
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 1).unwrap();
    assert_eq!(r.queued(), 1, "below the threshold the op waits locally");
    // Time the op spends queued, waiting for the batch to fill: excluded.
    std::thread::sleep(Duration::from_millis(20));
    let t_flush = Instant::now();
    assert_eq!(r.flush().unwrap(), 1);
    // Time the op spends in the kernel (or on a worker): the read cannot
    // finish before the write below, at least 30 ms after the hand-off.
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    let c = wait_one(&mut r);
    let since_flush = t_flush.elapsed();
    assert_eq!((c.token, c.result), (1, 4));
    assert!(
        c.latency_ns >= 30_000_000,
        "latency {} ns shorter than the op's time after the hand-off",
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

/// Both ops are timed from their shared hand-off (io_uring: and to their
/// shared reap).
fn ops_handed_off_and_reaped_together_share_both_stamps(b: BackendKind) {
    let mut r = batching_ring(b);
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
    if b == BackendKind::IoUring {
        // The blocking backend ends each latency when its worker's syscall
        // returns, not at the reap (documented in `blocking`).
        assert_eq!(
            out[0].latency_ns, out[1].latency_ns,
            "same hand-off and same reap give the same latency"
        );
    }
    // The first NOP's 10 ms in the queue before the second arrived are not
    // part of its latency: both are measured inside the `wait` call.
    for c in &out {
        assert!(c.latency_ns <= window, "{} ns > {window} ns", c.latency_ns);
    }
    let s = r.stats();
    assert_eq!((s.submit_calls, s.sqes_submitted), (1, 2));
}

fn op_drained_while_queued_is_timed_from_its_hand_off(b: BackendKind) {
    // Shutdown hands the queued read over together with its cancel: its
    // latency starts there, not at the push 20 ms earlier.
    let (rd, _wr) = pipe();
    let mut r = batching_ring(b);
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

/// The ring measures the time without completions while an op is in
/// flight: from the hand-off to the reap, longer than the threshold set.
fn a_completion_gap_longer_than_the_threshold_is_counted_as_long(b: BackendKind) {
    let mut r: AnyRing<u32> = any_ring(b, 8);
    r.set_long_gap_ns(10_000_000);
    let before = r.stats().gaps;
    // A short gap: a NOP.
    r.submit(Op::Nop, 1).unwrap();
    assert_eq!(wait_one(&mut r).token, 1);
    // A long one: a read that waits 30 ms for its data.
    let (rd, wr) = pipe();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 2).unwrap();
    r.flush().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    assert_eq!(wait_one(&mut r).token, 2);
    let g = r.stats().gaps.since(&before);
    assert_eq!(g.gaps, 2, "{g:?}");
    assert_eq!(g.long_gaps, 1, "{g:?}");
    assert!(g.long_gap_ns >= 30_000_000, "{g:?}");
    assert!(g.gap_ns >= g.long_gap_ns, "{g:?}");
    // Idle time (nothing in flight) is no gap.
    std::thread::sleep(Duration::from_millis(15));
    r.submit(Op::Nop, 3).unwrap();
    assert_eq!(wait_one(&mut r).token, 3);
    let g = r.stats().gaps.since(&before);
    assert_eq!((g.gaps, g.long_gaps), (3, 1), "{g:?}");
}
