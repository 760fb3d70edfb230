//! The engine's pattern, on both backends: several threads submit through
//! `Mutex<AnyRing>` while a reaper thread sleeps in a `Waiter` and polls
//! under the lock, or every thread submits and polls itself.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auraio_ring::{AnyRing, BackendKind, Op, RingConfig, SubmitErrorKind};
use common::*;

backend_tests!(
    submitters_and_reaper_thread_every_op_once,
    many_threads_submit_and_poll_through_a_mutex,
);

fn submitters_and_reaper_thread_every_op_once(b: BackendKind) {
    const THREADS: usize = 3;
    const PER: usize = 3000;
    let ring: Arc<Mutex<AnyRing<usize>>> = Arc::new(Mutex::new(any_ring_with(
        b,
        &RingConfig {
            sq_entries: 16,
            batch_threshold: 4,
            ..Default::default()
        },
    )));
    let waiter = ring.lock().unwrap().waiter();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Mutex::new(vec![0u32; THREADS * PER]));

    let reaper = {
        let (ring, stop, counts) = (ring.clone(), stop.clone(), counts.clone());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                waiter.wait(1, Some(Duration::from_millis(20))).unwrap();
                out.clear();
                ring.lock().unwrap().poll(&mut out).unwrap();
                // The lock is released: handle completions outside it.
                let mut c = counts.lock().unwrap();
                for done in &out {
                    assert_eq!(done.result, 0);
                    c[done.token] += 1;
                }
                drop(c);
                if stop.load(Ordering::Acquire) && ring.lock().unwrap().in_flight() == 0 {
                    let mut out = Vec::new();
                    ring.lock().unwrap().poll(&mut out).unwrap();
                    let mut c = counts.lock().unwrap();
                    for done in &out {
                        c[done.token] += 1;
                    }
                    if out.is_empty() {
                        break;
                    }
                }
            }
        })
    };

    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                for i in 0..PER {
                    let token = t * PER + i;
                    let mut op = Op::Nop;
                    loop {
                        assert!(Instant::now() < deadline, "submitter stuck");
                        let res = ring.lock().unwrap().submit(op, token);
                        match res {
                            Ok(_) => break,
                            Err(e) => {
                                assert!(matches!(e.kind, SubmitErrorKind::Full));
                                op = e.op;
                                // Back-pressure: make sure queued SQEs go out.
                                let _ = ring.lock().unwrap().flush();
                                std::thread::yield_now();
                            }
                        }
                    }
                }
                ring.lock().unwrap().flush().unwrap();
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    reaper.join().unwrap();
    let c = counts.lock().unwrap();
    assert!(c.iter().all(|&n| n == 1), "every op completed exactly once");
    assert_eq!(
        ring.lock().unwrap().stats().completions,
        (THREADS * PER) as u64
    );
}

fn many_threads_submit_and_poll_through_a_mutex(b: BackendKind) {
    let ring: Arc<Mutex<AnyRing<(usize, usize)>>> = Arc::new(Mutex::new(any_ring(b, 32)));
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
    for c in wait_n(&mut r, left) {
        assert!(d.insert(c.token));
    }
    assert_eq!(d.len(), 2000);
}
