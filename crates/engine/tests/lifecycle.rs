//! Re-entrancy, cancel, dropped futures, shutdown, panics, threads, stats,
//! traces: the engine's lifecycle guarantees.

mod common;

use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_engine::{is_shutdown, ControllerConfig, Engine, ReaperMode, Request};
use common::*;

/// Waits (up to 10 s) for `cond`, which a background thread makes true.
fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn fixed_engine(limit: u32, reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: limit,
            batch: 1,
        })
        .reaper(reaper)
        .build()
        .unwrap()
}

#[test]
fn callbacks_can_submit_more_io() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(64 * 200, 4);
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = engine(ReaperMode::Never);
    let got = Arc::new(Mutex::new(Vec::new()));

    fn step(e: Engine, file: Arc<std::fs::File>, i: u64, got: Arc<Mutex<Vec<u8>>>) {
        let e2 = e.clone();
        let f2 = Arc::clone(&file);
        e.read(&*file, Vec::with_capacity(64), i * 64, move |r, buf| {
            assert_eq!(r.unwrap(), 64);
            got.lock().unwrap().extend_from_slice(&buf);
            if i + 1 < 200 {
                step(e2, f2, i + 1, got);
            }
        })
        .unwrap();
    }
    step(e.clone(), file, 0, Arc::clone(&got));
    e.run_until_idle().unwrap();
    assert_eq!(*got.lock().unwrap(), data, "200 chained reads in order");
    assert_eq!(e.stats().total.completions, 200);
}

#[test]
fn cancel_in_kernel_and_in_backlog() {
    let e = fixed_engine(1, ReaperMode::Never);
    let (rd, _wr) = pipe();
    let results = Arc::new(Mutex::new(Vec::new()));
    let r1 = Arc::clone(&results);
    let first = e
        .read(&rd, vec![0u8; 8], 0, move |r, buf| {
            r1.lock()
                .unwrap()
                .push(("first", r.map_err(|e| e.raw_os_error()), buf.len()))
        })
        .unwrap();
    let r2 = Arc::clone(&results);
    let second = e
        .read(&rd, vec![0u8; 4], 0, move |r, buf| {
            r2.lock()
                .unwrap()
                .push(("second", r.map_err(|e| e.raw_os_error()), buf.len()))
        })
        .unwrap();
    e.poll().unwrap();
    let st = e.stats();
    assert_eq!(st.total.in_flight, 1, "limit 1: one in the ring");
    assert_eq!(st.total.backlog, 1, "the other waits in the backlog");
    // Cancelling the backlogged op completes it at once.
    e.cancel(&second).unwrap();
    e.poll().unwrap();
    assert!(second.is_done());
    // Cancelling the one in the kernel completes it with ECANCELED.
    e.cancel(&first).unwrap();
    drive_until(&e, || first.is_done(), "cancelled read");
    let got = results.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            ("second", Err(Some(libc::ECANCELED)), 4),
            ("first", Err(Some(libc::ECANCELED)), 8)
        ]
    );
    // Cancelling again is a no-op.
    e.cancel(&first).unwrap();
    assert_eq!(e.pending(), 0);
}

#[test]
fn dropped_future_keeps_its_buffer_until_the_cqe() {
    // No reaper: the test decides when completions are reaped.
    let e = engine(ReaperMode::Never);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let buf = Tracked {
        data: vec![0u8; 32],
        _tag: Arc::clone(&tag),
    };
    let fut = e.read_at(&rd, buf, 0);
    assert_eq!(Arc::strong_count(&tag), 2, "the op owns the buffer");
    drop(fut);
    // The cancel is issued, but the CQE has not been reaped: the slot still
    // owns the buffer, so the kernel can never write into freed memory.
    assert_eq!(
        Arc::strong_count(&tag),
        2,
        "buffer must stay alive until the completion is reaped"
    );
    drive_until(&e, || e.pending() == 0, "the cancel completion");
    assert_eq!(Arc::strong_count(&tag), 1, "freed once the CQE arrived");

    // The same with a backlogged op: dropping it frees the buffer at once
    // (it never reached the kernel).
    let e = fixed_engine(1, ReaperMode::Never);
    let hold = e.read_at(&rd, vec![0u8; 1], 0);
    let tag2 = Arc::new(());
    let fut = e.read_at(
        &rd,
        Tracked {
            data: vec![0u8; 8],
            _tag: Arc::clone(&tag2),
        },
        0,
    );
    assert_eq!(e.stats().total.backlog, 1);
    drop(fut);
    assert_eq!(Arc::strong_count(&tag2), 1);
    drop(hold);
    drive_until(&e, || e.pending() == 0, "drain");
}

#[test]
fn dropped_future_with_reaper_releases_buffer() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let mut futs = Vec::new();
    for _ in 0..10 {
        futs.push(e.read_at(
            &rd,
            Tracked {
                data: vec![0u8; 16],
                _tag: Arc::clone(&tag),
            },
            0,
        ));
    }
    assert_eq!(Arc::strong_count(&tag), 11);
    drop(futs);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&tag) > 1 {
        assert!(std::time::Instant::now() < deadline, "buffers not released");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.pending(), 0);
}

#[test]
fn shutdown_completes_every_op_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(4096, 1));
    let file = std::fs::File::open(&p).unwrap();
    let (rd, _wr) = pipe();
    let e = fixed_engine(4, ReaperMode::Never);
    const N: usize = 40;
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let canceled = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let tag = Arc::new(());
    for i in 0..N {
        let (c, cx, okc) = (Arc::clone(&calls), Arc::clone(&canceled), Arc::clone(&ok));
        let buf = Tracked {
            data: vec![0u8; 16],
            _tag: Arc::clone(&tag),
        };
        let cb = move |r: io::Result<usize>, _b: Tracked| {
            c[i].fetch_add(1, Ordering::SeqCst);
            match r {
                Ok(_) => okc.fetch_add(1, Ordering::SeqCst),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                    cx.fetch_add(1, Ordering::SeqCst)
                }
            };
        };
        // Mix stuck pipe reads (in the kernel and in the backlog) with
        // file reads that complete normally.
        if i % 2 == 0 {
            e.read(&rd, buf, 0, cb).unwrap();
        } else {
            e.read(&file, buf, 0, cb).unwrap();
        }
    }
    // Some in flight, most in the backlog.
    let st = e.stats();
    assert!(st.total.backlog > 0, "{st:?}");
    assert_eq!(e.pending(), N);
    let e2 = e.clone();
    drop(e);
    assert!(!e2.is_shut_down(), "a clone keeps it alive");
    drop(e2); // last handle: shuts down, cancels and drains
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "op {i} completed once");
    }
    let (ok, cx) = (ok.load(Ordering::SeqCst), canceled.load(Ordering::SeqCst));
    assert_eq!(ok + cx, N);
    assert!(cx >= N / 2, "every pipe read was cancelled ({cx})");
    assert_eq!(Arc::strong_count(&tag), 1, "no buffer leaked");
}

#[test]
fn shutdown_resolves_pending_futures() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let futs: Vec<_> = (0..5).map(|_| e.read_at(&rd, vec![0u8; 4], 0)).collect();
    drop(e);
    for f in futs {
        let (r, buf) = futures::executor::block_on(f);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(buf.len(), 4);
    }
}

#[test]
fn submit_after_shutdown_is_a_clear_error() {
    let e = engine(ReaperMode::Never);
    e.shutdown();
    assert!(e.is_shut_down());
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"x");
    let f = std::fs::File::open(&p).unwrap();
    let err = e
        .read(&f, vec![5u8; 3], 0, |_, _| panic!("never called"))
        .unwrap_err();
    assert!(is_shutdown(err.error()), "{err}");
    let (r, buf) = err.into_output();
    assert!(r.is_err());
    assert_eq!(buf, vec![5u8; 3], "buffer handed back");
    let (r, _) = futures::executor::block_on(e.read_at(&f, vec![0u8; 1], 0));
    assert!(is_shutdown(&r.unwrap_err()));
    assert_eq!(e.poll().unwrap(), 0);
    assert_eq!(e.wait(Some(Duration::from_millis(1))).unwrap(), 0);
    e.shutdown(); // idempotent
}

#[test]
fn a_panicking_callback_is_caught_and_counted() {
    let e = engine(ReaperMode::Never);
    e.nop(|_| panic!("boom (expected by the test)")).unwrap();
    e.run_until_idle().unwrap();
    let st = e.stats();
    assert_eq!(st.total.callback_panics, 1);
    // Still works.
    let ran = Arc::new(AtomicU32::new(0));
    let r2 = Arc::clone(&ran);
    e.nop(move |r| {
        r.unwrap();
        r2.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(e.stats().total.completions, 2);
}

#[test]
fn run_returns_after_stop_from_a_callback() {
    let e = engine(ReaperMode::Never);
    let e2 = e.clone();
    e.nop(move |_| e2.stop()).unwrap();
    e.run().unwrap();
    assert_eq!(e.pending(), 0);
}

#[test]
fn async_face_under_tokio_multi_thread() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(pattern(256 * 1024, 8));
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = engine(ReaperMode::Auto);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let total = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let (e, file, data) = (e.clone(), Arc::clone(&file), Arc::clone(&data));
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                for i in 0..50u64 {
                    let off = ((t * 50 + i) * 4096) % (256 * 1024);
                    let (r, buf) = e.read_at(&*file, Vec::with_capacity(4096), off).await;
                    assert_eq!(r.unwrap(), 4096);
                    assert_eq!(&buf[..], &data[off as usize..off as usize + 4096]);
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(total, 32 * 50);
    assert_eq!(e.stats().total.completions, 32 * 50);
}

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
    for round in 0..5 {
        for i in 0..20 {
            e.read(&f, Vec::with_capacity(1024), (i * 1024) as u64, |r, _| {
                r.unwrap();
            })
            .unwrap();
        }
        e.run_until_idle().unwrap();
        let _ = round;
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

#[test]
fn tokio_timeout_drops_a_future_mid_flight() {
    let e = engine(ReaperMode::Auto);
    let (rd, _wr) = pipe();
    let tag = Arc::new(());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let timed_out = rt.block_on(async {
        let fut = e.read_at(
            &rd,
            Tracked {
                data: vec![0u8; 64],
                _tag: Arc::clone(&tag),
            },
            0,
        );
        tokio::time::timeout(Duration::from_millis(20), fut)
            .await
            .is_err()
    });
    assert!(timed_out, "a read on an empty pipe cannot finish");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&tag) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "buffer never released"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.pending(), 0);
    // The engine still works afterwards.
    let r = rt.block_on(e.nop_async());
    r.unwrap();
}

#[test]
fn runtime_setters_take_effect() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 8,
            batch: 4,
        })
        .build()
        .unwrap();
    e.set_batch_threshold(Some(3));
    assert_eq!(e.batch_threshold(0), Some(3));
    assert_eq!(e.batch_threshold(1), Some(3));
    e.set_max_in_flight(2);
    assert_eq!(
        e.in_flight_limit(0),
        Some(2),
        "limit clamped to the new max"
    );
    e.set_max_in_flight(64);
    e.set_min_in_flight(16);
    assert_eq!(
        e.in_flight_limit(1),
        Some(16),
        "limit raised to the new min"
    );
    e.set_max_p99(Duration::from_millis(5));
    let ticks = |e: &Engine| e.stats().rings[0].window_secs;
    let before = ticks(&e);
    eventually(|| ticks(&e) > before, "a few ticks");
    assert_eq!(e.batch_threshold(0), Some(3), "override survives ticks");
    e.set_batch_threshold(None);
    eventually(
        || e.batch_threshold(0) == Some(4),
        "controller decides again",
    );
    assert!(e.on_ring(2).is_err());
    let pinned = e.on_ring(1).unwrap();
    let h = pinned.nop(|r| r.unwrap()).unwrap();
    assert_eq!(h.ring(), 1);
    pinned.run_until_idle().unwrap();
}

#[test]
fn a_pinned_handle_drives_only_its_ring() {
    let e = engine(ReaperMode::Never);
    let (h0, h1) = (e.on_ring(0).unwrap(), e.on_ring(1).unwrap());
    let ran = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&ran);
    h0.nop(move |res| {
        res.unwrap();
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(h0.pending(), 1);
    assert_eq!(h1.pending(), 0);
    assert_eq!(e.pending(), 1);
    // Ring 1's driver neither reaps nor runs ring 0's callback.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(h1.poll().unwrap(), 0);
    assert_eq!(h1.wait(Some(Duration::from_millis(5))).unwrap(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    h0.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(e.pending(), 0);
}

#[test]
fn sqpoll_is_used_or_falls_back_and_is_reported() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .sqpoll(true)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let kind = e.ring_kind(0).unwrap();
    let reported = e.stats().rings[0].kind.clone();
    match kind {
        auraio_engine::RingKind::SqPoll => assert_eq!(reported, "sqpoll"),
        _ => {
            println!("SQPOLL not permitted here: fell back to a normal ring");
            assert_eq!(reported, "normal");
        }
    }
    let ran = Arc::new(AtomicU32::new(0));
    for _ in 0..10 {
        let r = Arc::clone(&ran);
        e.nop(move |res| {
            res.unwrap();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 10);
}

#[test]
fn reaper_always_runs_callbacks_without_polling() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(32)
        .reaper(ReaperMode::Always)
        .build()
        .unwrap();
    let n = Arc::new(AtomicU32::new(0));
    for _ in 0..100 {
        let n = Arc::clone(&n);
        e.nop(move |r| {
            r.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Nobody calls poll/wait here: the reapers deliver.
    eventually(|| n.load(Ordering::SeqCst) == 100, "reapers delivering");
    eventually(|| e.pending() == 0, "pending drops to 0");
}

#[test]
fn round_robin_spreads_ops_over_the_rings() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(32)
        .ring_selection(auraio_engine::RingSelection::RoundRobin)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let mut rings = [0; 2];
    for _ in 0..10 {
        let h = e.nop(|r| r.unwrap()).unwrap();
        rings[h.ring()] += 1;
    }
    e.run_until_idle().unwrap();
    assert_eq!(rings, [5, 5]);
    let st = e.stats();
    assert_eq!(st.rings[0].completions, 5);
    assert_eq!(st.rings[1].completions, 5);
}

/// Ticks seen by [`Grenade`]s.
static GRENADE_TICKS: AtomicU32 = AtomicU32::new(0);

/// A controller that panics from its third tick on.
#[derive(Debug)]
struct Grenade(u32);

impl auraio_engine::Controller for Grenade {
    fn tick(&mut self, _s: &auraio_engine::controller::Sample) -> auraio_engine::Decision {
        self.0 += 1;
        GRENADE_TICKS.fetch_add(1, Ordering::SeqCst);
        assert!(self.0 < 3, "controller bug (expected by the test)");
        self.current()
    }
    fn state(&self) -> auraio_engine::ControllerState {
        auraio_engine::ControllerState {
            name: "grenade".into(),
            phase: "ticking".into(),
            reason: String::new(),
        }
    }
    fn current(&self) -> auraio_engine::Decision {
        auraio_engine::Decision {
            in_flight_limit: 6,
            batch_threshold: 2,
        }
    }
}

#[test]
fn a_panicking_controller_does_not_stop_the_engine() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .controller_factory(|_| Box::new(Grenade(0)))
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    assert_eq!(e.in_flight_limit(0), Some(6));
    // The tick thread survives the panics and keeps ticking.
    eventually(
        || GRENADE_TICKS.load(Ordering::SeqCst) >= 6,
        "ticks after the panic",
    );
    let n = Arc::new(AtomicU32::new(0));
    for _ in 0..20 {
        let n = Arc::clone(&n);
        e.nop(move |r| {
            r.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 20);
    assert_eq!(e.in_flight_limit(0), Some(6), "last decision kept");
}

#[test]
fn injected_faults_reach_the_right_callbacks_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(64 * 1024, 5));
    let f = std::fs::File::open(&p).unwrap();
    let seq = Arc::new(AtomicU32::new(0));
    let s2 = Arc::clone(&seq);
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .reaper(ReaperMode::Never)
        // Every read that returned a full 1 KiB is turned into EIO.
        .fault_injector(move |pt| {
            s2.fetch_add(1, Ordering::SeqCst);
            (pt.op == auraio_engine::OpKind::Read && pt.result == 1024).then_some(-libc::EIO)
        })
        .build()
        .unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..64u64 {
        let o = Arc::clone(&outcomes);
        // 1 KiB reads, except every 4th is 512 B (not rewritten).
        let len = if i % 4 == 3 { 512 } else { 1024 };
        e.read(&f, Vec::with_capacity(len), i * 1024, move |r, _| {
            o.lock().unwrap().push((i, r.map_err(|e| e.raw_os_error())));
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    let mut got = outcomes.lock().unwrap().clone();
    got.sort();
    assert_eq!(got.len(), 64, "each callback once");
    for (i, r) in got {
        if i % 4 == 3 {
            assert_eq!(r, Ok(512), "op {i}");
        } else {
            assert_eq!(r, Err(Some(libc::EIO)), "op {i}");
        }
    }
    assert_eq!(seq.load(Ordering::SeqCst), 64);
    assert_eq!(e.stats().total.errors, 48);
}

#[test]
fn limit_setters_apply_the_controllers_batch_at_once() {
    // Ticks far apart: only the setter itself can change the batch here.
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 8,
            batch: 4,
        })
        .tick_interval(Duration::from_secs(3600))
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    assert_eq!(e.batch_threshold(0), Some(4));
    // The fixed policy clamps its batch into [1, limit].
    e.set_max_in_flight(2);
    assert_eq!(e.in_flight_limit(0), Some(2));
    assert_eq!(
        e.batch_threshold(0),
        Some(2),
        "the batch follows the controller's new decision without a tick"
    );
    e.set_max_in_flight(64);
    assert_eq!(e.in_flight_limit(0), Some(8));
    assert_eq!(e.batch_threshold(0), Some(4));
    // A pinned batch is not overridden by a limit change.
    e.set_batch_threshold(Some(3));
    e.set_max_in_flight(2);
    assert_eq!(e.batch_threshold(0), Some(3));
    // Ops still flow with the new settings.
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let d = Arc::clone(&done);
        e.nop(move |r| {
            r.unwrap();
            d.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 5);
}

#[test]
fn wait_degrades_on_kernels_without_timed_waits() {
    // As on Linux < 5.11 (no IORING_FEAT_EXT_ARG): `wait` with a timeout
    // must block by polling in short sleeps, not fail with Unsupported.
    use std::io::Write;
    for reaper in [ReaperMode::Never, ReaperMode::Always] {
        let e = Engine::builder()
            .rings(1)
            .queue_depth(16)
            .timed_waits(false)
            .reaper(reaper)
            .build()
            .unwrap();
        // A read from a socket with no data stays in flight until written.
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        e.read(&a, Vec::with_capacity(4), 0, move |r, buf| {
            assert_eq!(r.unwrap(), 4);
            *g.lock().unwrap() = buf;
        })
        .unwrap();
        assert_eq!(e.pending(), 1);
        // Nothing can complete: it waits out its timeout and reports 0.
        assert_eq!(
            e.wait(Some(Duration::from_millis(20))).unwrap(),
            0,
            "{reaper:?}"
        );
        b.write_all(b"ping").unwrap();
        while e.pending() > 0 {
            e.wait(Some(Duration::from_millis(50))).unwrap();
        }
        assert_eq!(*got.lock().unwrap(), b"ping", "{reaper:?}");
        // With nothing pending it returns at once.
        assert_eq!(e.wait(Some(Duration::from_millis(50))).unwrap(), 0);
        if reaper == ReaperMode::Always {
            // Futures, driven by the reaper thread on the same fallback.
            let f = e.read_at(&a, Vec::with_capacity(4), 0);
            b.write_all(b"pong").unwrap();
            let (r, buf) = futures::executor::block_on(f);
            assert_eq!(r.unwrap(), 4);
            assert_eq!(buf, b"pong");
        }
        e.run_until_idle().unwrap();
    }
}
