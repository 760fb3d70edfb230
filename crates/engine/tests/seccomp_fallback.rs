//! The real fallback, end to end: a child process denies `io_uring_setup`
//! with a seccomp filter (as Docker's default profile does); then a
//! zero-config `Engine::new()` must come up on the blocking backend, say so
//! in its stats, and run a verified workload through both faces, and the
//! mixed stress workload (`common/mixed/`: reads and writes from several
//! threads, cancels, timeouts, dropped futures, shutdown mid-stream, file
//! contents verified) on an `Auto` engine that fell back.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use auraio_engine::{BackendKind, Engine, ReaperMode};
use auraio_ring::testing;
use common::*;

const CHILD_TEST: &str = "seccomp_child_runs_the_engine_on_the_fallback";
const MARKER: &str = "AURAIO_ENGINE_SECCOMP_CHILD_OK";

#[test]
fn engine_falls_back_when_io_uring_is_denied() {
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
fn seccomp_child_runs_the_engine_on_the_fallback() {
    if !testing::is_child() {
        println!("not a seccomp child: nothing to do");
        return;
    }
    testing::deny_io_uring_setup().expect("install the seccomp filter");
    let e = Engine::new().expect("Auto falls back instead of failing");
    for r in 0..e.ring_count() {
        assert_eq!(e.backend(r), Some(BackendKind::Blocking));
    }
    let st = e.stats();
    assert_eq!(st.backend, "blocking");
    let reason = st.fallback_reason.clone().expect("reason recorded");
    println!("fell back: {reason}");
    assert!(reason.contains("io_uring"), "{reason}");

    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = Arc::new(open_rw(&p));
    const N: u64 = 256;
    const BS: usize = 4096;
    let written = Arc::new(AtomicU64::new(0));
    for i in 0..N {
        let (w, f) = (Arc::clone(&written), Arc::clone(&file));
        e.write(&*file, pattern(BS, i as u8), i * BS as u64, move |r, _| {
            let _keep = f;
            assert_eq!(r.unwrap(), BS);
            w.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(written.load(Ordering::SeqCst), N);
    // Read back through the async face and verify.
    futures::executor::block_on(async {
        e.fsync_async(&*file).await.unwrap();
        for i in 0..N {
            let (r, b) = e
                .read_at(&*file, Vec::with_capacity(BS), i * BS as u64)
                .await;
            assert_eq!(r.unwrap(), BS);
            assert_eq!(b, pattern(BS, i as u8), "block {i}");
        }
    });
    let st = e.stats();
    assert_eq!(st.total.completions, 2 * N + 1);
    assert_eq!(st.total.errors, 0);
    drop(e);

    // The mixed stress workload on the fallback.
    let e = Engine::builder()
        .rings(2)
        .queue_depth(64)
        .tick_interval(std::time::Duration::from_millis(2))
        .reaper(ReaperMode::Auto)
        .build()
        .expect("Auto falls back");
    assert_eq!(e.stats().backend, "blocking");
    let rep = common::mixed::run_mixed(
        e,
        &dir.path().join("mixed.dat"),
        &common::mixed::MixedConfig::ci(4, 3000),
    );
    assert!(rep.ok_reads > 0 && rep.ok_writes > 0, "{rep:?}");
    println!("{MARKER}");
}
