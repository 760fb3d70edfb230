//! Waiter, eventfd and notify (on both backends), and SQPOLL (io_uring).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_ring::{AnyRing, BackendKind, Op, RingConfig, RingKind};
use common::*;

backend_tests!(
    waiter_blocks_in_another_thread_and_wakes_on_completion,
    notify_wakes_a_waiter_without_a_user_completion,
    waiter_outlives_the_ring,
    eventfd_becomes_readable_on_completion,
);

fn waiter_blocks_in_another_thread_and_wakes_on_completion(b: BackendKind) {
    let (rd, wr) = pipe();
    let ring: Arc<Mutex<AnyRing<u8>>> = Arc::new(Mutex::new(any_ring(b, 8)));
    let waiter = ring.lock().unwrap().waiter();
    {
        let mut r = ring.lock().unwrap();
        r.submit(Op::read(fd(&rd), vec![0u8; 8], 0), 1).unwrap();
        r.flush().unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let w = waiter.clone();
    let t = std::thread::spawn(move || {
        let res = w.wait(1, Some(Duration::from_secs(30)));
        tx.send(()).unwrap();
        res
    });
    // No completion can exist yet, so the waiter must still be blocked (it
    // does not hold the ring's lock: we can take it meanwhile).
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "still blocked"
    );
    assert_eq!(
        ring.lock().unwrap().in_flight(),
        1,
        "without the ring's lock"
    );
    write_all(&wr, b"wake");
    rx.recv_timeout(Duration::from_secs(20))
        .expect("waiter woke up after the completion");
    t.join().unwrap().unwrap();
    let mut out = Vec::new();
    let n = ring.lock().unwrap().poll(&mut out).unwrap();
    assert_eq!(n, 1);
    assert_eq!(out[0].result, 4);
    assert!(ring.lock().unwrap().stats().waiter_enter_calls >= 1);
}

fn notify_wakes_a_waiter_without_a_user_completion(b: BackendKind) {
    let ring: Arc<Mutex<AnyRing<u8>>> = Arc::new(Mutex::new(any_ring(b, 8)));
    let waiter = ring.lock().unwrap().waiter();
    let w = waiter.clone();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let res = w.wait(1, Some(Duration::from_secs(30)));
        tx.send(()).unwrap();
        res
    });
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    ring.lock().unwrap().notify().unwrap();
    rx.recv_timeout(Duration::from_secs(20))
        .expect("notify woke the waiter");
    t.join().unwrap().unwrap();
    // The reap consumes the notify: no completion for the caller...
    let mut out = Vec::new();
    assert_eq!(ring.lock().unwrap().poll(&mut out).unwrap(), 0);
    // ...and the waiter blocks again (here: until its timeout).
    waiter.wait(1, Some(Duration::from_millis(10))).unwrap();
}

fn waiter_outlives_the_ring(b: BackendKind) {
    let r = any_ring::<()>(b, 8);
    let w = r.waiter();
    drop(r);
    // The waiter keeps what it sleeps on alive (io_uring: its own fd of the
    // ring): this just times out.
    w.wait(1, Some(Duration::from_millis(10))).unwrap();
}

fn eventfd_becomes_readable_on_completion(b: BackendKind) {
    let mut r: AnyRing<()> = eventfd_ring(b);
    let efd = r.eventfd().expect("eventfd registered");
    let mut count = 0u64;
    // SAFETY: reading 8 bytes into a u64 from our non-blocking eventfd.
    let n = unsafe { libc::read(efd, (&mut count as *mut u64).cast(), 8) };
    assert_eq!(n, -1, "nothing signalled yet");
    r.submit(Op::Nop, ()).unwrap();
    assert_eq!(poll_readable(efd, 10_000), 1);
    // SAFETY: as above.
    let n = unsafe { libc::read(efd, (&mut count as *mut u64).cast(), 8) };
    assert_eq!(n, 8);
    assert!(count >= 1);
    let c = wait_one(&mut r);
    assert_eq!(c.result, 0);
    let plain = any_ring::<()>(b, 8);
    assert_eq!(plain.eventfd(), None);
}

#[test]
fn sqpoll_or_fallback_both_work() {
    if skip_without_io_uring() {
        return;
    }
    let mut r: AnyRing<usize> = any_ring_with(
        BackendKind::IoUring,
        &RingConfig {
            sq_entries: 16,
            sqpoll_idle: Some(Duration::from_millis(20)),
            batch_threshold: 4,
            ..Default::default()
        },
    );
    println!("SQPOLL requested, got {:?}", r.kind());
    assert!(matches!(r.kind(), RingKind::SqPoll | RingKind::Normal));
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "sq");
    let data = pattern(8192, 2);
    r.submit(Op::write(fd(&file), data.clone(), 0), 0).unwrap();
    r.flush().unwrap();
    assert_eq!(wait_one(&mut r).result, 8192);
    let mut done = 0;
    let mut next = 0;
    let mut out = Vec::new();
    while done < 500 {
        while next < 500 && r.in_flight() < r.capacity() {
            r.submit(Op::Nop, next).unwrap();
            next += 1;
        }
        out.clear();
        done += r.wait(1, Some(Duration::from_secs(10)), &mut out).unwrap();
    }
    assert_eq!(done, 500);
    r.submit(Op::read(fd(&file), Vec::with_capacity(8192), 0), 1)
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 8192);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);
}
