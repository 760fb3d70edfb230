//! Blocking backend: cancel, links, timeouts, drain, buffer lifetime,
//! exactly-once under load, bounded concurrency, waiters.

mod common;

use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use auraio_ring::{AnyRing, BlockingRing, Completion, Fd, Op, RingConfig};
use common::*;

fn cfg(sq: u32) -> RingConfig {
    RingConfig {
        sq_entries: sq,
        batch_threshold: 1,
        ..Default::default()
    }
}

/// A backend with one worker, so a second op waits for the first.
fn one_worker<T>(sq: u32) -> AnyRing<T> {
    BlockingRing::with_max_workers(&cfg(sq), 1).unwrap().into()
}

/// Waits until `n` ops are running on workers (not merely queued).
fn wait_running<T>(r: &AnyRing<T>, n: u32) {
    let AnyRing::Blocking(b) = r else {
        panic!("blocking backend expected")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.running() < n {
        assert!(std::time::Instant::now() < deadline, "ops never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls a few times and returns everything that showed up.
fn settle<T>(r: &mut AnyRing<T>) -> Vec<Completion<T>> {
    let mut out = Vec::new();
    for _ in 0..5 {
        r.poll(&mut out).unwrap();
        r.wait(1, Some(Duration::from_millis(20)), &mut out)
            .unwrap();
    }
    out
}

#[test]
fn cancel_of_a_queued_op_completes_once_with_ecanceled() {
    let (rd, wr) = pipe();
    let mut r = one_worker::<u32>(8);
    // The only worker blocks on the pipe...
    let running = r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), 1).unwrap();
    wait_running(&r, 1);
    // ...so this one stays queued.
    let (buf, alive) = tracked(16);
    let queued = r.submit(Op::read(fd(&rd), buf, 0), 2).unwrap();
    r.cancel(queued).unwrap();
    r.cancel(queued).unwrap(); // twice is a no-op
    let c = any_wait_one(&mut r);
    assert_eq!((c.token, c.slot, c.result), (2, queued, -libc::ECANCELED));
    assert_eq!(Arc::strong_count(&alive), 2, "buffer handed back");
    drop(c);
    assert_eq!(Arc::strong_count(&alive), 1);
    // Cancelling the running read is best effort: it completes with its data.
    r.cancel(running).unwrap();
    write_all(&wr, b"data");
    let c = any_wait_one(&mut r);
    assert_eq!((c.token, c.result), (1, 4));
    assert!(settle(&mut r).is_empty(), "exactly one completion each");
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
    let c = any_wait_one(&mut r);
    assert_eq!((c.token, c.result), (1, -libc::ECANCELED));
    assert!(settle(&mut r).is_empty());
}

#[test]
fn linked_write_then_read_sees_the_write_and_failures_cancel_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "l");
    let mut r = bring::<&str>(8);
    let data = pattern(2048, 4);
    r.submit_linked(
        (Op::write(fd(&file), data.clone(), 0), "write"),
        (Op::read(fd(&file), Vec::with_capacity(2048), 0), "read"),
    )
    .unwrap();
    for c in any_wait_n(&mut r, 2) {
        assert_eq!(c.result, 2048, "{}", c.token);
        if c.token == "read" {
            assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);
        }
    }
    // A failed first op cancels the second.
    r.submit_linked(
        (Op::read(Fd::Raw(-1), Vec::with_capacity(8), 0), "bad"),
        (Op::write(fd(&file), vec![1u8; 8], 0), "never"),
    )
    .unwrap();
    let mut got = any_wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!((got[0].token, got[0].result), ("bad", -libc::EBADF));
    assert_eq!((got[1].token, got[1].result), ("never", -libc::ECANCELED));
    // A short read (past EOF) breaks the link too.
    r.submit_linked(
        (Op::read(fd(&file), Vec::with_capacity(4096), 0), "short"),
        (Op::Nop, "after-short"),
    )
    .unwrap();
    let mut got = any_wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::ECANCELED, "{}", got[0].token);
    assert_eq!((got[1].token, got[1].result), ("short", 2048));
    assert!(settle(&mut r).is_empty());
    assert_eq!(
        std::fs::read(dir.path().join("l")).unwrap(),
        data,
        "cancelled write never ran"
    );
}

#[test]
fn timeout_cancels_an_op_that_could_not_start() {
    let (rd, wr) = pipe();
    let mut r = one_worker::<u8>(8);
    r.submit(Op::read(fd(&rd), vec![0u8; 1], 0), 1).unwrap();
    wait_running(&r, 1);
    let id = r
        .submit_with_timeout(Op::Nop, 2, Duration::from_millis(30))
        .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!((c.slot, c.token, c.result), (id, 2, -libc::ECANCELED));
    write_all(&wr, b"x");
    assert_eq!(any_wait_one(&mut r).token, 1);
    // Fast ops beat their timeouts, many times over.
    for i in 0..100u8 {
        r.submit_with_timeout(Op::Nop, i, Duration::from_secs(30))
            .unwrap();
        let c = any_wait_one(&mut r);
        assert_eq!((c.token, c.result), (i, 0));
    }
    assert!(settle(&mut r).is_empty());
}

#[test]
fn thousands_of_ops_with_capacity_8_complete_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "many");
    std::fs::write(dir.path().join("many"), pattern(64 * 1024, 3)).unwrap();
    let mut r: AnyRing<u32> = BlockingRing::new(&RingConfig {
        sq_entries: 8,
        batch_threshold: 4,
        ..Default::default()
    })
    .unwrap()
    .into();
    const N: u32 = 5000;
    let mut seen = HashSet::new();
    let mut next = 0u32;
    let mut out = Vec::new();
    while (seen.len() as u32) < N {
        while next < N && r.in_flight() < r.capacity() {
            let op = match next % 3 {
                0 => Op::Nop,
                1 => Op::read(
                    fd(&file),
                    Vec::with_capacity(512),
                    u64::from(next % 128) * 512,
                ),
                _ => Op::Fsync {
                    fd: fd(&file),
                    datasync: true,
                },
            };
            r.submit(op, next).unwrap();
            next += 1;
        }
        out.clear();
        r.wait(1, Some(Duration::from_secs(10)), &mut out).unwrap();
        for c in out.drain(..) {
            assert!(seen.insert(c.token), "op {} completed twice", c.token);
            let want = if c.token % 3 == 1 { 512 } else { 0 };
            assert_eq!(c.result, want, "op {}", c.token);
            if c.token % 3 == 1 {
                let off = (c.token % 128) as usize * 512;
                let v: Vec<u8> = c.resources.into_buf().unwrap();
                assert_eq!(v, pattern(64 * 1024, 3)[off..off + 512]);
            }
        }
    }
    assert!(settle(&mut r).is_empty());
    let s = r.stats();
    assert_eq!(s.completions, u64::from(N));
    assert_eq!(s.sqes_submitted, u64::from(N));
    println!(
        "{} hand-offs, {:.2} ops per hand-off",
        s.submit_calls,
        s.sqes_per_submit()
    );
    let AnyRing::Blocking(b) = &r else {
        panic!("blocking backend expected")
    };
    assert!(b.workers() <= 8, "{} workers for capacity 8", b.workers());
    assert!(
        b.peak_running() <= 8 && b.peak_running() >= 1,
        "peak {}",
        b.peak_running()
    );
}

#[test]
fn concurrency_is_bounded_by_max_workers() {
    let (rd, wr) = pipe();
    let mut r: AnyRing<u32> = BlockingRing::with_max_workers(&cfg(16), 3).unwrap().into();
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
    let got = any_wait_n(&mut r, 10);
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

#[test]
fn waiter_blocks_in_another_thread_and_wakes_on_completion() {
    let (rd, wr) = pipe();
    let ring: Arc<Mutex<AnyRing<u8>>> = Arc::new(Mutex::new(bring(8)));
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
        .expect("waiter woke up");
    t.join().unwrap().unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.lock().unwrap().poll(&mut out).unwrap(), 1);
    assert_eq!(out[0].result, 4);
    assert!(ring.lock().unwrap().stats().waiter_enter_calls >= 1);

    // notify wakes it without a completion; the reap consumes the notify.
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
    assert_eq!(ring.lock().unwrap().poll(&mut out).unwrap(), 0);
    // After the reap the waiter blocks again (here: until its timeout).
    waiter.wait(1, Some(Duration::from_millis(10))).unwrap();
    drop(ring);
    waiter.wait(1, Some(Duration::from_millis(10))).unwrap();
}

#[test]
fn many_threads_submit_through_a_mutex() {
    let ring: Arc<Mutex<AnyRing<(usize, usize)>>> = Arc::new(Mutex::new(bring(32)));
    let done = Arc::new(Mutex::new(HashSet::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (ring, done) = (ring.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                let mut out = Vec::new();
                while i < 500 {
                    {
                        let mut r = ring.lock().unwrap();
                        if r.submit(Op::Nop, (t, i)).is_ok() {
                            i += 1;
                        }
                        r.poll(&mut out).unwrap();
                    }
                    let mut d = done.lock().unwrap();
                    for c in out.drain(..) {
                        assert_eq!(c.result, 0);
                        assert!(d.insert(c.token), "twice: {:?}", c.token);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut r = ring.lock().unwrap();
    let left = r.in_flight() as usize;
    let mut d = done.lock().unwrap();
    for c in any_wait_n(&mut r, left) {
        assert!(d.insert(c.token));
    }
    assert_eq!(d.len(), 2000);
}
