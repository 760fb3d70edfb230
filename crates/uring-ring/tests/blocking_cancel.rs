//! What only the blocking backend does: a running syscall cannot be
//! interrupted (cancel is best effort, drain waits for it or times out, drop
//! waits for it), an op cancelled before its hand-off completes locally,
//! and the worker count is bounded. Cancel, links, timeouts, buffer
//! lifetime, waiters and exactly-once under load run on both backends in
//! `cancel.rs`, `waiter.rs`, `threads.rs` and `throughput.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auraio_ring::{AnyRing, BlockingRing, Op, RingConfig};
use common::*;

#[test]
fn cancel_of_a_running_op_is_best_effort() {
    let (rd, wr) = pipe();
    let mut r = one_worker::<u32>(8);
    let running = r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 1).unwrap();
    wait_running(&r, 1);
    // The syscall already runs: the cancel cannot interrupt it, the read
    // completes with its data.
    r.cancel(running).unwrap();
    write_all(&wr, b"data");
    let c = wait_one(&mut r);
    assert_eq!((c.token, c.result), (1, 4));
    assert!(settle(&mut r).is_empty(), "exactly one completion");
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn cancel_before_hand_off_completes_it_locally() {
    let mut r: AnyRing<u8> = BlockingRing::new(&RingConfig {
        sq_entries: 8,
        batch_threshold: 8,
        ..Default::default()
    })
    .unwrap()
    .into();
    let id = r.submit(Op::Nop, 1).unwrap();
    assert_eq!(r.queued(), 1, "below the batch threshold");
    r.cancel(id).unwrap();
    assert_eq!(r.queued(), 0);
    let c = wait_one(&mut r);
    assert_eq!((c.token, c.result), (1, -libc::ECANCELED));
    assert!(settle(&mut r).is_empty());
}

#[test]
fn concurrency_is_bounded_by_max_workers() {
    let (rd, wr) = pipe();
    let mut r: AnyRing<u32> = BlockingRing::with_max_workers(
        &RingConfig {
            sq_entries: 16,
            batch_threshold: 1,
            ..Default::default()
        },
        3,
    )
    .unwrap()
    .into();
    for i in 0..10 {
        r.submit(Op::read(fd(&rd), vec![0u8; 1], 0), i).unwrap();
    }
    // Three reads block on the pipe; the rest wait for a worker.
    wait_running(&r, 3);
    std::thread::sleep(Duration::from_millis(20));
    let AnyRing::Blocking(b) = &r else {
        panic!("blocking backend expected")
    };
    assert_eq!(b.workers(), 3);
    assert_eq!(b.peak_running(), 3);
    write_all(&wr, &[1u8; 10]);
    let got = wait_n(&mut r, 10);
    assert!(got.iter().all(|c| c.result == 1));
    let AnyRing::Blocking(b) = &r else {
        panic!("blocking backend expected")
    };
    assert_eq!(b.peak_running(), 3);
}

#[test]
fn drain_cancels_queued_and_waits_for_running() {
    let (rd, wr) = pipe();
    let mut r = one_worker::<u32>(8);
    let mut alive = Vec::new();
    for i in 0..6 {
        let (b, a) = tracked(1);
        alive.push(a);
        r.submit(Op::read(fd(&rd), b, 0), i).unwrap();
    }
    wait_running(&r, 1);
    // The running read finishes only once we write, after drain started.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        write_all(&wr, b"z");
        wr
    });
    let mut out = Vec::new();
    r.drain_for_shutdown(&mut out).unwrap();
    let _wr = writer.join().unwrap();
    assert_eq!(r.in_flight(), 0);
    let mut tokens: Vec<u32> = out.iter().map(|c| c.token).collect();
    tokens.sort();
    assert_eq!(tokens, (0..6).collect::<Vec<_>>());
    let ok = out.iter().filter(|c| c.result == 1).count();
    let cancelled = out.iter().filter(|c| c.result == -libc::ECANCELED).count();
    assert_eq!(
        (ok, cancelled),
        (1, 5),
        "one ran, the queued ones were cancelled"
    );
    drop(out);
    assert!(
        alive.iter().all(|a| Arc::strong_count(a) == 1),
        "every buffer returned"
    );
}

#[test]
fn drain_times_out_on_a_stuck_syscall_without_losing_it() {
    let (rd, wr) = pipe();
    let mut r = bring::<u32>(8);
    r.submit(Op::read(fd(&rd), vec![0u8; 1], 0), 7).unwrap();
    wait_running(&r, 1);
    let mut out = Vec::new();
    let e = r
        .drain_with_timeout(&mut out, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(out.is_empty());
    write_all(&wr, b"k");
    r.drain_for_shutdown(&mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].token, out[0].result), (7, 1));
}

#[test]
fn buffer_stays_owned_until_its_completion_and_drop_releases_queued_ones() {
    let (rd, wr) = pipe();
    let (b1, a1) = tracked(8);
    let (b2, a2) = tracked(8);
    {
        let mut r = one_worker::<()>(8);
        r.submit(Op::read(fd(&rd), b1, 0), ()).unwrap();
        wait_running(&r, 1);
        r.submit(Op::read(fd(&rd), b2, 0), ()).unwrap();
        let mut out = Vec::new();
        r.poll(&mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(
            Arc::strong_count(&a1),
            2,
            "the running read owns its buffer"
        );
        assert_eq!(Arc::strong_count(&a2), 2, "so does the queued one");
        // Let the running read finish while the ring is dropped.
        let wr2 = wr.try_clone().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            write_all(&wr2, b"12345678");
        });
    }
    // Drop cancelled the queued read and waited for the running one.
    assert_eq!(Arc::strong_count(&a2), 1);
    assert_eq!(Arc::strong_count(&a1), 1);
}
