//! Real runs through the engine: NOP and a small file.

use std::time::Duration;

use super::*;
use crate::cli::RwMode;

#[test]
fn nop_workload_runs_through_the_engine() {
    // A tiny real run: skips (with a reason) where io_uring is unavailable.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut d = EngineDriver::new(EngineOptions {
        rw: RwMode::Nop,
        bs: 4096,
        direct: false,
        size: 4096,
        file: dir.path().join("unused"),
        threads: 1,
        rings: Some(1),
        backend: auraio_engine::BackendChoice::Auto,
        controller: "fixed:8".parse().unwrap(),
        max_p99: None,
        max_in_flight: None,
        backlog: 4,
        seed: 1,
        trace: Some(trace.clone()),
        trace_io_every: 0,
    });
    if let Err(e) = d.start() {
        eprintln!("skipping: engine cannot start here: {e:#}");
        return;
    }
    std::thread::sleep(Duration::from_millis(100));
    let live = d.live();
    let r = d.stop().unwrap();
    assert!(r.ops > 0 && r.ops >= live.ops, "{r:?}");
    assert_eq!(r.errors, 0);
    assert_eq!(r.final_limit, 8);
    assert_eq!(r.rings, 1);
    assert_eq!(r.ring_lines.len(), 1);
    assert!(trace.exists());
}

#[test]
fn reads_a_real_file_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    crate::prep::prepare_file(&file, 1 << 20, true, &mut |_| {}).unwrap();
    let mut d = EngineDriver::new(EngineOptions {
        rw: RwMode::RandRead,
        bs: 4096,
        direct: false,
        size: 1 << 20,
        file,
        threads: 2,
        rings: None,
        backend: auraio_engine::BackendChoice::Auto,
        controller: "aimd".parse().unwrap(),
        max_p99: None,
        max_in_flight: None,
        backlog: 4,
        seed: 1,
        trace: None,
        trace_io_every: 0,
    });
    if let Err(e) = d.start() {
        eprintln!("skipping: engine cannot start here: {e:#}");
        return;
    }
    std::thread::sleep(Duration::from_millis(100));
    let r = d.stop().unwrap();
    assert!(r.ops > 0, "{r:?}");
    assert_eq!(r.errors, 0);
    assert_eq!(r.bytes, r.ops * 4096);
    assert_eq!(r.rings, 2);
    let app = r.app_latency.expect("app latency measured");
    // Each of the 2 threads times every 8th of its own ops.
    let expect = r.ops / APP_LAT_EVERY;
    assert!(
        app.samples + 2 >= expect && app.samples <= expect + 2,
        "{} app samples for {} ops",
        app.samples,
        r.ops
    );
    assert!(!r.notes.is_empty(), "no trace: a note says so");
}
