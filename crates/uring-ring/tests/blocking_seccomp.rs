//! The real fallback: a child process denies `io_uring_setup` with a seccomp
//! filter (as Docker's default profile does), then `AnyRing` with
//! `BackendChoice::Auto` must come up on the blocking backend and run a
//! verified workload.
//!
//! The seccomp helpers live in `auraio_ring::testing` so the engine's tests
//! can do the same.

mod common;

use auraio_ring::{testing, AnyRing, BackendChoice, BackendKind, Op, Ring, RingConfig};
use common::*;

const CHILD_TEST: &str = "seccomp_child_runs_workload_on_fallback";
const MARKER: &str = "AURAIO_SECCOMP_CHILD_OK";

#[test]
fn seccomp_denied_io_uring_falls_back_to_blocking() {
    let out = testing::run_child(CHILD_TEST).expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- child stdout ---\n{stdout}--- child stderr ---\n{stderr}");
    assert!(out.status.success(), "child failed: {:?}", out.status);
    assert!(
        stdout.lines().any(|l| l.trim() == MARKER),
        "child did not print the marker (did it run the workload?)"
    );
}

/// Child mode only (`AURAIO_SECCOMP_CHILD=1`); a normal run returns at once.
#[test]
fn seccomp_child_runs_workload_on_fallback() {
    if !testing::is_child() {
        println!(
            "not a seccomp child ({} unset): nothing to do",
            testing::CHILD_ENV
        );
        return;
    }
    testing::deny_io_uring_setup().expect("install the seccomp filter");

    // io_uring is now refused with EPERM...
    let e = Ring::<()>::new(&RingConfig::default()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    assert!(AnyRing::<()>::new(&RingConfig::default(), BackendChoice::IoUring).is_err());
    // ...and Auto falls back.
    let mut r: AnyRing<u32> = AnyRing::new(
        &RingConfig {
            sq_entries: 32,
            batch_threshold: 4,
            ..Default::default()
        },
        BackendChoice::Auto,
    )
    .expect("Auto falls back instead of failing");
    assert_eq!(r.backend(), BackendKind::Blocking);
    let reason = r
        .fallback_reason()
        .expect("fallback reason recorded")
        .to_string();
    println!("fell back: {reason}");

    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "w");
    const BS: usize = 4096;
    const N: u32 = 64;
    for i in 0..N {
        r.submit(
            Op::write(fd(&file), pattern(BS, i as u8), u64::from(i) * BS as u64),
            i,
        )
        .unwrap();
        if r.in_flight() == r.capacity() {
            for c in wait_n(&mut r, 1) {
                assert_eq!(c.result, BS as i32);
            }
        }
    }
    let left = r.in_flight() as usize;
    for c in wait_n(&mut r, left) {
        assert_eq!(c.result, BS as i32);
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        u64::from(N) * BS as u64
    );
    let mut verified = 0;
    for chunk in (0..N).collect::<Vec<_>>().chunks(16) {
        for &i in chunk {
            r.submit(
                Op::read(fd(&file), Vec::with_capacity(BS), u64::from(i) * BS as u64),
                i,
            )
            .unwrap();
        }
        for c in wait_n(&mut r, chunk.len()) {
            assert_eq!(c.result, BS as i32);
            let v: Vec<u8> = c.resources.into_buf().unwrap();
            assert_eq!(v, pattern(BS, c.token as u8), "block {}", c.token);
            verified += 1;
        }
    }
    assert_eq!(verified, N);
    println!("{MARKER}");
}
