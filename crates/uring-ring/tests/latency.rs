//! Latency stamps and thread-safety markers.

mod common;

use std::time::{Duration, Instant};

use auraio_ring::{Op, Ring, Waiter};
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
