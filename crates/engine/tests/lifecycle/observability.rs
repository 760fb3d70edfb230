//! What the engine reports: stats (and their JSON), recorded traces and
//! their replay, and the completion eventfd.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auraio_engine::{ControllerConfig, Engine, ReaperMode, Request};

use crate::common::*;
use crate::eventually;

#[test]
fn stats_serialize_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(8192, 2));
    let f = std::fs::File::open(&p).unwrap();
    let e = Engine::builder().rings(1).queue_depth(64).build().unwrap();
    for i in 0..10 {
        e.read(&f, Vec::with_capacity(512), i * 512, |r, _| {
            r.unwrap();
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let a few ticks publish
    let st = e.stats();
    assert_eq!(st.total.completions, 10);
    assert_eq!(st.total.bytes, 5120);
    assert_eq!(st.total.errors, 0);
    assert_eq!(st.rings.len(), 1);
    assert!(st.rings[0].limit >= 1);
    assert!(st.total.sqes_submitted >= 10);
    assert!(!st.rings[0].phase.is_empty());
    // Lifetime percentiles keep the latencies once the 1 s window moved on.
    eventually(
        || e.stats().total.lifetime_p50_ns > 0,
        "lifetime latency published by a tick",
    );
    let life = e.stats().total;
    assert!(life.lifetime_p50_ns <= life.lifetime_p99_ns);
    assert!(life.lifetime_p99_ns <= life.lifetime_p999_ns);
    let json = serde_json::to_string(&st).unwrap();
    let back: auraio_engine::EngineStats = serde_json::from_str(&json).unwrap();
    assert_eq!(back.total.completions, st.total.completions);
    assert_eq!(back.rings[0].limit, st.rings[0].limit);
    assert_eq!(back.rings[0].phase, st.rings[0].phase);
}

#[test]
fn trace_has_header_ticks_and_sampled_ios() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(65536, 2));
    let f = std::fs::File::open(&p).unwrap();
    let tp = dir.path().join("trace.jsonl");
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .record_trace(&tp)
        .trace_io_sample_every(2)
        .trace_note("test")
        .build()
        .unwrap();
    for _ in 0..5 {
        for i in 0..20 {
            e.read(&f, Vec::with_capacity(1024), (i * 1024) as u64, |r, _| {
                r.unwrap();
            })
            .unwrap();
        }
        e.run_until_idle().unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    drop(e);
    let t = auraio_engine::controller::read_trace(&tp).unwrap();
    assert_eq!(t.header.format, "auraio-trace");
    assert_eq!(t.header.rings, 1);
    assert_eq!(t.header.note.as_deref(), Some("test"));
    assert!(t.ticks.len() >= 3, "ticks: {}", t.ticks.len());
    assert_eq!(t.ios.len(), 50, "every 2nd of 100 ops");
    assert!(t
        .ios
        .iter()
        .all(|r| r.op == "read" && r.len == 1024 && r.result == 1024));
    let completions: u64 = t.ticks.iter().map(|k| k.sample.completions).sum();
    assert!(completions <= 100);
}

#[test]
fn eventfd_signals_completions() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(16)
        .eventfd(true)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let fd = e.eventfd(0).expect("eventfd requested");
    let done = Arc::new(AtomicU32::new(0));
    let d = Arc::clone(&done);
    e.submit(Request::nop(), move |r| {
        r.unwrap();
        d.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    e.flush().unwrap();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(n, 1, "eventfd became readable");
    e.poll().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn a_recorded_trace_replays_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(65536, 3));
    let f = std::fs::File::open(&p).unwrap();
    let tp = dir.path().join("trace.jsonl");
    {
        let e = Engine::builder()
            .rings(1)
            .queue_depth(64)
            .controller(ControllerConfig::Fixed {
                in_flight: 5,
                batch: 2,
            })
            .record_trace(&tp)
            .build()
            .unwrap();
        for _ in 0..3 {
            for i in 0..16u64 {
                e.read(&f, Vec::with_capacity(4096), i * 4096, |r, _| {
                    r.unwrap();
                })
                .unwrap();
            }
            e.run_until_idle().unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    let t = auraio_engine::controller::read_trace(&tp).unwrap();
    assert!(!t.ticks.is_empty());
    assert!(t
        .ticks
        .iter()
        .all(|k| k.decision.in_flight_limit == 5 && k.decision.batch_threshold == 2));
    // Replaying the trace reproduces the recorded decisions.
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Replay { path: tp.clone() })
        .build()
        .unwrap();
    eventually(
        || e.in_flight_limit(0) == Some(5) && e.batch_threshold(0) == Some(2),
        "replayed decision",
    );
}
