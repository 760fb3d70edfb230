//! Round trips of the plain data ops on real files, on both backends.

mod common;

use auraio_ring::{BackendKind, Op, Resources, RingConfig, RingKind};
use common::*;

backend_tests!(
    nop_completes_with_zero_and_token,
    write_then_read_back,
    write_then_read_back_many_blocks,
    sizes_and_threshold_follow_the_config,
    reads_keep_their_sqes_across_many_sq_wraps,
);

fn nop_completes_with_zero_and_token(b: BackendKind) {
    let mut r = any_ring::<u64>(b, 8);
    assert_eq!(r.kind(), RingKind::Normal);
    let id = r.submit(Op::Nop, 42).unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.token, 42);
    assert_eq!(c.slot, id);
    assert_eq!(c.result, 0);
    assert!(matches!(c.resources, Resources::None));
    assert_eq!(r.in_flight(), 0);
}

fn write_then_read_back(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "f");
    let mut r = any_ring::<&'static str>(b, 8);
    let data = pattern(10_000, 3);
    r.submit(Op::write(fd(&file), data.clone(), 100), "w")
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.token, "w");
    assert_eq!(c.result, data.len() as i32);
    let back: Vec<u8> = c.resources.into_buf().unwrap();
    assert_eq!(back, data, "the written buffer comes back intact");

    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[100..], &data[..]);

    r.submit(
        Op::read(fd(&file), Vec::<u8>::with_capacity(data.len()), 100),
        "r",
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, data.len() as i32);
    let got: Vec<u8> = c.resources.into_buf().unwrap();
    assert_eq!(got, data);
}

fn write_then_read_back_many_blocks(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "rw");
    let mut r = any_ring::<u32>(b, 16);
    assert_eq!(r.kind(), RingKind::Normal);
    const BS: usize = 4096;
    for i in 0..32u32 {
        r.submit(
            Op::write(fd(&file), pattern(BS, i as u8), u64::from(i) * BS as u64),
            i,
        )
        .unwrap();
        if r.in_flight() == r.capacity() {
            for c in wait_n(&mut r, 1) {
                assert_eq!(c.result, BS as i32, "write {}", c.token);
            }
        }
    }
    let mut left = r.in_flight() as usize;
    for c in wait_n(&mut r, left) {
        assert_eq!(c.result, BS as i32, "write {}", c.token);
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 * BS as u64);
    for i in 0..16u32 {
        r.submit(
            Op::read(fd(&file), Vec::with_capacity(BS), u64::from(i) * BS as u64),
            i,
        )
        .unwrap();
    }
    left = 16;
    for c in wait_n(&mut r, left) {
        assert_eq!(c.result, BS as i32);
        let v: Vec<u8> = c.resources.into_buf().unwrap();
        assert_eq!(v, pattern(BS, c.token as u8), "block {}", c.token);
    }
    assert_eq!(r.in_flight(), 0);
    let s = r.stats();
    assert_eq!(s.completions, 48);
    assert_eq!(s.sqes_submitted, 48);
    assert!(s.submit_calls >= 1 && s.submit_calls <= 48);
}

/// The blocking backend mirrors the ring's sizes: capacity and SQ rounded
/// as io_uring does, CQ twice the SQ, the default batch threshold.
fn sizes_and_threshold_follow_the_config(b: BackendKind) {
    let r = any_ring_with::<()>(
        b,
        &RingConfig {
            sq_entries: 64,
            ..Default::default()
        },
    );
    assert_eq!(r.capacity(), 64);
    assert_eq!(r.sq_entries(), 64);
    assert_eq!(r.cq_entries(), 128);
    assert_eq!(r.batch_threshold(), 8);
    assert_eq!(r.fallback_reason(), None, "chosen, not fallen back to");
}

/// A small SQ wrapped around many times (the ring asks for
/// `IORING_SETUP_NO_SQARRAY`, so the kernel takes SQE `tail & mask`
/// directly): every read gets its own SQE's offset and length back, in
/// rounds of 3 pushed SQEs that start at every SQ index.
fn reads_keep_their_sqes_across_many_sq_wraps(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, _path) = rw_file(&dir, "wrap");
    let data = pattern(64 * 1024, 9);
    write_all(&file, &data);
    let mut r = any_ring::<u32>(b, 4);
    let mut seen = [false; 3 * 41];
    for round in 0..41u32 {
        for k in 0..3u32 {
            let i = round * 3 + k;
            let (off, len) = ((i as usize * 523) % 60_000, 100 + (i as usize % 7) * 37);
            r.submit(Op::read(fd(&file), Vec::with_capacity(len), off as u64), i)
                .unwrap();
        }
        for c in wait_n(&mut r, 3) {
            let i = c.token as usize;
            let (off, len) = ((i * 523) % 60_000, 100 + (i % 7) * 37);
            assert_eq!(c.result, len as i32, "read {i}");
            let v: Vec<u8> = c.resources.into_buf().unwrap();
            assert_eq!(v, data[off..off + len], "read {i}");
            assert!(!std::mem::replace(&mut seen[i], true), "read {i} twice");
        }
    }
    assert!(seen.iter().all(|&s| s), "every read completed");
    assert_eq!(r.in_flight(), 0);
}
