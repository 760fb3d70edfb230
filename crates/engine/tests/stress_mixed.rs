//! Stress: 8 threads submitting reads and writes of random sizes at random
//! offsets in their own regions of a real file, through callbacks and
//! futures, with random cancels, per-op timeouts and dropped futures, while
//! the tick thread retunes (AIMD at a 2 ms tick, plus limits changed by
//! hand); the engine is shut down mid-stream. Counts and asserts exactly-once
//! completion, buffer return and the file's contents (see
//! `common/mixed/`).
//!
//! CI size by default (a few seconds in debug). `AURAIO_SOAK=1` turns each
//! test into a soak of `AURAIO_SOAK_SECS` seconds (default 60), e.g.
//! `AURAIO_SOAK=1 cargo xtask test` or
//! `AURAIO_SOAK=1 cargo test --release -p auraio-engine --test stress_mixed`.
//! `AURAIO_STRESS_MIXED_OPS` sets the CI size (ops before the shutdown).

mod common;

use std::time::Duration;

use auraio_engine::{BackendChoice, BackendKind, Engine, ReaperMode};
use common::mixed::{run_mixed, MixedConfig};

fn config() -> MixedConfig {
    let ops = std::env::var("AURAIO_STRESS_MIXED_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    let mut cfg = MixedConfig::ci(8, ops);
    if std::env::var("AURAIO_SOAK").is_ok_and(|v| v == "1") {
        let secs = std::env::var("AURAIO_SOAK_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        println!("soak: {secs} s");
        cfg.duration = Some(Duration::from_secs(secs));
        cfg.region = 1 << 20;
    }
    cfg
}

fn engine(backend: BackendChoice) -> Engine {
    Engine::builder()
        .rings(2)
        .queue_depth(64)
        .initial_in_flight(8)
        .tick_interval(Duration::from_millis(2))
        .reaper(ReaperMode::Auto)
        .backend(backend)
        .build()
        .unwrap()
}

#[test]
fn mixed_io_with_cancels_timeouts_drops_and_shutdown_on_io_uring() {
    let e = engine(BackendChoice::Auto);
    if e.backend(0) != Some(BackendKind::IoUring) {
        println!(
            "io_uring unavailable ({:?}): this run exercises the fallback",
            e.fallback_reason(0)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rep = run_mixed(e, &dir.path().join("mixed.dat"), &config());
    assert!(rep.accepted > 1000, "{rep:?}");
    assert!(
        rep.canceled > 0,
        "cancels and timeouts took effect: {rep:?}"
    );
}

#[test]
fn mixed_io_on_the_blocking_backend() {
    let e = engine(BackendChoice::Blocking);
    assert_eq!(e.stats().backend, "blocking");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    if cfg.duration.is_none() {
        // The pool runs one syscall per thread: a smaller CI run.
        cfg.total_ops /= 2;
    }
    let rep = run_mixed(e, &dir.path().join("mixed.dat"), &cfg);
    assert!(rep.accepted > 500, "{rep:?}");
}
