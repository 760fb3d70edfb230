//! Many ops through a small ring, batching counters and `wait`'s bounds (on
//! both backends); `poll` entering the kernel (io_uring).

mod common;

use std::collections::HashSet;

use auraio_ring::{AnyRing, BackendKind, Op, RingConfig, SubmitErrorKind};
use common::*;

backend_tests!(
    thousands_of_ops_through_qd8_complete_exactly_once,
    wait_caps_min_at_what_can_complete,
    wait_times_out_without_error,
    batching_counts_enter_calls_and_sqes_per_call,
);

fn thousands_of_ops_through_qd8_complete_exactly_once(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    const BS: usize = 512;
    const BLOCKS: usize = 64;
    let content: Vec<u8> = (0..BLOCKS).flat_map(|b| pattern(BS, b as u8)).collect();
    std::fs::write(&path, &content).unwrap();
    let file = std::fs::File::open(&path).unwrap();

    let mut r: AnyRing<usize> = any_ring_with(
        b,
        &RingConfig {
            sq_entries: 8,
            batch_threshold: 4,
            ..Default::default()
        },
    );
    assert_eq!(r.capacity(), 8);
    const N: usize = 5000;
    let mut seen = vec![0u32; N];
    let mut slot_ids = HashSet::new();
    let mut next = 0usize;
    let mut done = 0usize;
    let mut out = Vec::new();
    let mut full_hits = 0;
    while done < N {
        while next < N {
            let op = match next % 3 {
                0 => Op::Nop,
                1 => {
                    let block = next % BLOCKS;
                    Op::read(fd(&file), Vec::with_capacity(BS), (block * BS) as u64)
                }
                _ => Op::Fsync {
                    fd: fd(&file),
                    datasync: true,
                },
            };
            match r.submit(op, next) {
                Ok(id) => {
                    assert!(id.index() < 8, "slot index out of range");
                    assert!(r.in_flight() <= 8);
                    slot_ids.insert(id);
                    next += 1;
                }
                Err(e) => {
                    assert!(matches!(e.kind, SubmitErrorKind::Full), "{e}");
                    assert_eq!(e.token, next);
                    full_hits += 1;
                    break;
                }
            }
        }
        out.clear();
        r.wait(1, Some(std::time::Duration::from_secs(10)), &mut out)
            .unwrap();
        for c in out.drain(..) {
            seen[c.token] += 1;
            done += 1;
            if c.token % 3 == 1 {
                assert_eq!(c.result, BS as i32, "token {}", c.token);
                let block = c.token % BLOCKS;
                let v: Vec<u8> = c.resources.into_buf().unwrap();
                assert_eq!(v, pattern(BS, block as u8), "token {}", c.token);
            } else {
                assert_eq!(c.result, 0, "nop or fsync {}", c.token);
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every op completes exactly once"
    );
    assert!(settle(&mut r).is_empty());
    assert_eq!(r.in_flight(), 0);
    assert!(full_hits > 0, "the ring was driven to its capacity");
    assert!(
        slot_ids.len() > 8,
        "slots were reused under new generations ({} ids)",
        slot_ids.len()
    );
    let st = r.stats();
    assert_eq!(st.completions, N as u64);
    assert_eq!(st.stale_cqes, 0);
    assert!(st.sqes_submitted >= N as u64);
    println!(
        "{b}: {} hand-offs, {:.2} ops per hand-off",
        st.submit_calls,
        st.sqes_per_submit()
    );
    if b == BackendKind::Blocking {
        // No internal requests: exactly one hand-off per op.
        assert_eq!(st.sqes_submitted, N as u64);
        let AnyRing::Blocking(pool) = &r else {
            panic!("blocking backend expected")
        };
        assert!(
            pool.workers() <= 8,
            "{} workers for capacity 8",
            pool.workers()
        );
        assert!(
            pool.peak_running() <= 8 && pool.peak_running() >= 1,
            "peak {}",
            pool.peak_running()
        );
    }
}

/// The blocking backend counts each hand-off to its pool as one enter and
/// one submit call, so the same batching figures hold on both backends.
fn batching_counts_enter_calls_and_sqes_per_call(b: BackendKind) {
    let mut r: AnyRing<u32> = any_ring_with(
        b,
        &RingConfig {
            sq_entries: 64,
            batch_threshold: 8,
            ..Default::default()
        },
    );
    let s0 = r.stats();
    assert_eq!(s0.enter_calls, 0);
    for i in 0..7 {
        r.submit(Op::Nop, i).unwrap();
    }
    assert_eq!(r.queued(), 7);
    assert_eq!(
        r.stats().enter_calls,
        0,
        "below the threshold nothing is submitted"
    );
    r.submit(Op::Nop, 7).unwrap();
    let s1 = r.stats();
    assert_eq!(r.queued(), 0);
    assert_eq!(s1.enter_calls, 1, "one io_uring_enter for the batch");
    assert_eq!(s1.sqes_submitted, 8);
    assert_eq!(s1.submit_calls, 1);
    assert_eq!(s1.sqes_per_submit(), 8.0);
    let got = wait_n(&mut r, 8);
    assert_eq!(got.len(), 8);
    assert_eq!(r.stats().completions, 8);

    // An explicit flush submits a partial batch in one call.
    r.set_batch_threshold(32);
    assert_eq!(r.batch_threshold(), 32);
    for i in 0..5 {
        r.submit(Op::Nop, i).unwrap();
    }
    let before = r.stats();
    assert_eq!(r.flush().unwrap(), 5);
    let after = r.stats();
    assert_eq!(after.enter_calls - before.enter_calls, 1);
    assert_eq!(after.sqes_submitted - before.sqes_submitted, 5);
    wait_n(&mut r, 5);

    // Threshold is clamped to the SQ size.
    r.set_batch_threshold(100_000);
    assert_eq!(r.batch_threshold(), r.sq_entries());
    r.set_batch_threshold(0);
    assert_eq!(r.batch_threshold(), 1);
}

#[test]
fn poll_enters_the_kernel_when_cq_is_empty_and_ops_are_in_flight() {
    if skip_without_io_uring() {
        return;
    }
    let (rd, wr) = pipe();
    let mut r = any_ring::<()>(BackendKind::IoUring, 8);
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    let mut out = Vec::new();
    r.poll(&mut out).unwrap();
    let before = r.stats().enter_calls;
    assert_eq!(r.poll(&mut out).unwrap(), 0);
    assert_eq!(
        r.stats().enter_calls,
        before + 1,
        "an empty CQ with ops in flight makes poll enter (GETEVENTS)"
    );
    write_all(&wr, b"x");
    let c = wait_one(&mut r);
    assert_eq!(c.result, 1);
    // Nothing in flight: poll does not enter at all.
    let before = r.stats().enter_calls;
    assert_eq!(r.poll(&mut out).unwrap(), 0);
    assert_eq!(r.stats().enter_calls, before);
}

fn wait_caps_min_at_what_can_complete(b: BackendKind) {
    let mut r = any_ring::<u8>(b, 8);
    r.submit(Op::Nop, 1).unwrap();
    let mut out = Vec::new();
    // Asking for 5 with one op in flight returns after that one (no hang).
    let n = r.wait(5, None, &mut out).unwrap();
    assert_eq!(n, 1);
    // Nothing in flight at all: returns at once.
    assert_eq!(r.wait(3, None, &mut out).unwrap(), 0);
}

fn wait_times_out_without_error(b: BackendKind) {
    let (rd, wr) = pipe();
    let mut r = any_ring::<()>(b, 8);
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    let mut out = Vec::new();
    let n = r
        .wait(1, Some(std::time::Duration::from_millis(20)), &mut out)
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(r.in_flight(), 1);
    // Let the read finish (the blocking backend's drop would wait for it).
    write_all(&wr, b"x");
    assert_eq!(wait_one(&mut r).result, 1);
}
