//! `Engine::submit` (no handle) takes the lean path: its callback waits in
//! the ring's callback table instead of a control block. These tests hold
//! it to the same contract as every other op: exactly one completion each
//! (success, error, cancel at shutdown), captures dropped once, nothing
//! lost under backlog, re-entrancy, threads and panics.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use auraio_engine::{is_shutdown, ControllerConfig, Engine, ReaperMode, Request};
use common::*;

/// Counts calls and drops of the callbacks that capture it.
#[derive(Default)]
struct Counts {
    calls: AtomicUsize,
    ok: AtomicUsize,
    canceled: AtomicUsize,
    drops: AtomicUsize,
}

struct Guard(Arc<Counts>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, SeqCst);
    }
}

fn small_engine(limit: u32, reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(1)
        .queue_depth(16)
        .controller(ControllerConfig::Fixed {
            in_flight: limit,
            batch: 4,
        })
        .reaper(reaper)
        .build()
        .unwrap()
}

fn counted_nop(e: &Engine, c: &Arc<Counts>) {
    let g = Guard(Arc::clone(c));
    e.submit(Request::nop(), move |r: io::Result<()>| {
        let c = &g.0;
        c.calls.fetch_add(1, SeqCst);
        match r {
            Ok(()) => c.ok.fetch_add(1, SeqCst),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "{e}");
                c.canceled.fetch_add(1, SeqCst)
            }
        };
    })
    .unwrap();
}

/// Plain submits beyond the limit (lean ops in the ring, the rest in the
/// backlog with control blocks) each complete once, in every mix.
#[test]
fn plain_submits_under_backlog_complete_once() {
    let e = small_engine(4, ReaperMode::Never);
    let c = Arc::new(Counts::default());
    for _ in 0..20 {
        for _ in 0..37 {
            counted_nop(&e, &c);
        }
        e.run_until_idle().unwrap();
    }
    assert_eq!(c.calls.load(SeqCst), 740);
    assert_eq!(c.ok.load(SeqCst), 740);
    assert_eq!(c.drops.load(SeqCst), 740, "captures dropped once each");
    assert_eq!(e.stats().total.completions, 740);
    assert_eq!(e.pending(), 0);
}

/// Shutdown with plain submits queued, in the kernel and in the backlog:
/// every callback runs exactly once, later submits are refused cleanly.
#[test]
fn shutdown_completes_plain_submits_once() {
    let e = small_engine(8, ReaperMode::Never);
    let c = Arc::new(Counts::default());
    for _ in 0..100 {
        counted_nop(&e, &c);
    }
    e.shutdown();
    assert_eq!(c.calls.load(SeqCst), 100);
    assert_eq!(c.ok.load(SeqCst) + c.canceled.load(SeqCst), 100);
    assert_eq!(c.drops.load(SeqCst), 100);
    let g = Guard(Arc::clone(&c));
    let r = e.submit(Request::nop(), move |_r: io::Result<()>| {
        let _g = &g;
        panic!("a refused op's callback must never run");
    });
    match r {
        Err(err) => assert!(is_shutdown(err.error()), "{}", err.error()),
        Ok(()) => panic!("submit after shutdown was accepted"),
    }
    assert_eq!(c.drops.load(SeqCst), 101, "the refused callback is dropped");
}

/// Callbacks that submit more plain ops (while their batch's table
/// entries are still being delivered) and reads whose data is checked.
#[test]
fn chained_plain_reads_deliver_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(64 * 100, 9);
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = small_engine(8, ReaperMode::Never);
    let got = Arc::new(std::sync::Mutex::new(vec![0u8; data.len()]));
    let calls = Arc::new(AtomicUsize::new(0));

    fn step(
        e: Engine,
        file: Arc<std::fs::File>,
        i: u64,
        got: Arc<std::sync::Mutex<Vec<u8>>>,
        calls: Arc<AtomicUsize>,
    ) {
        let (e2, f2) = (e.clone(), Arc::clone(&file));
        e.submit(
            Request::read(&*file, Vec::with_capacity(64), i * 64),
            move |(r, buf): (io::Result<usize>, Vec<u8>)| {
                assert_eq!(r.unwrap(), 64);
                let at = i as usize * 64;
                got.lock().unwrap()[at..at + 64].copy_from_slice(&buf);
                calls.fetch_add(1, SeqCst);
                // Four chains of 25 reads each.
                if i + 4 < 100 {
                    step(e2, f2, i + 4, got, calls);
                }
            },
        )
        .unwrap();
    }
    for k in 0..4 {
        step(
            e.clone(),
            Arc::clone(&file),
            k,
            Arc::clone(&got),
            Arc::clone(&calls),
        );
    }
    e.run_until_idle().unwrap();
    assert_eq!(calls.load(SeqCst), 100);
    assert_eq!(*got.lock().unwrap(), data);
}

/// Two submitting threads, a reaper delivering on its own thread: every
/// plain submit completes once.
#[test]
fn plain_submits_from_threads_with_a_reaper() {
    let e = small_engine(16, ReaperMode::Always);
    let c = Arc::new(Counts::default());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (e, c) = (e.clone(), Arc::clone(&c));
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    counted_nop(&e, &c);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.calls.load(SeqCst) < 10_000 {
        assert!(std::time::Instant::now() < deadline, "ops were lost");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    e.shutdown();
    assert_eq!(c.calls.load(SeqCst), 10_000);
    assert_eq!(c.ok.load(SeqCst), 10_000);
    assert_eq!(c.drops.load(SeqCst), 10_000);
}

/// `submit_batch` (no handles) takes the lean path as `submit` does: a
/// batch beyond the limit (lean ops first, then the backlog) with a
/// panicking callback in it completes every op once, round after round.
#[test]
fn plain_batches_complete_once_with_a_panic_inside() {
    let e = small_engine(8, ReaperMode::Never);
    let c = Arc::new(Counts::default());
    for round in 0..30 {
        let batch = (0..21).map(|i| {
            let g = Guard(Arc::clone(&c));
            (Request::nop(), move |r: io::Result<()>| {
                let c = &g.0;
                c.calls.fetch_add(1, SeqCst);
                r.unwrap();
                c.ok.fetch_add(1, SeqCst);
                if i == 5 && round % 4 == 0 {
                    panic!("batch callback panic (expected by the test)");
                }
            })
        });
        assert_eq!(e.submit_batch(batch).unwrap(), 21);
        e.run_until_idle().unwrap();
    }
    assert_eq!(c.calls.load(SeqCst), 630);
    assert_eq!(c.ok.load(SeqCst), 630);
    assert_eq!(c.drops.load(SeqCst), 630);
    assert_eq!(e.stats().total.callback_panics, 8);
    assert_eq!(e.pending(), 0);
}

/// The meter is fed once per run of equal latencies of a delivered batch
/// (`IoMeter::on_complete_n`): the controller's samples still count every
/// completion once, with its bytes and errors, in a mix of plain NOPs,
/// reads and failing reads.
#[test]
fn batched_meter_counts_every_completion_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(8192, 3));
    let f = std::fs::File::open(&p).unwrap();
    // Reading a write-only file fails in the kernel (EBADF).
    let wo = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let tp = dir.path().join("trace.jsonl");
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 64,
            batch: 8,
        })
        .reaper(ReaperMode::Never)
        .tick_interval(std::time::Duration::from_millis(2))
        .record_trace(&tp)
        .build()
        .unwrap();
    let c = Arc::new(Counts::default());
    let (rounds, nops, reads, bad) = (25u64, 5u64, 2u64, 1u64);
    for _ in 0..rounds {
        for _ in 0..nops {
            counted_nop(&e, &c);
        }
        for i in 0..reads {
            let c = Arc::clone(&c);
            e.submit(
                Request::read(&f, vec![0u8; 1024], i * 1024),
                move |(r, _buf): (io::Result<usize>, Vec<u8>)| {
                    assert_eq!(r.unwrap(), 1024);
                    c.calls.fetch_add(1, SeqCst);
                },
            )
            .unwrap();
        }
        for _ in 0..bad {
            let c = Arc::clone(&c);
            e.submit(
                Request::read(&wo, vec![0u8; 512], 0),
                move |(r, _buf): (io::Result<usize>, Vec<u8>)| {
                    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
                    c.calls.fetch_add(1, SeqCst);
                },
            )
            .unwrap();
        }
        e.run_until_idle().unwrap();
    }
    let total = rounds * (nops + reads + bad);
    assert_eq!(c.calls.load(SeqCst) as u64, total);
    // Let a few ticks take the meter's last completions into a sample.
    std::thread::sleep(std::time::Duration::from_millis(60));
    let st = e.stats();
    assert_eq!(st.total.completions, total);
    assert_eq!(st.total.errors, rounds * bad);
    drop(e);
    let t = auraio_engine::controller::read_trace(&tp).unwrap();
    let sum = |g: fn(&auraio_engine::controller::Sample) -> u64| -> u64 {
        t.ticks.iter().map(|k| g(&k.sample)).sum()
    };
    assert_eq!(sum(|s| s.completions), total, "completions in samples");
    assert_eq!(sum(|s| s.latency.count()), total, "latencies in samples");
    assert_eq!(sum(|s| s.bytes), rounds * reads * 1024, "bytes in samples");
    assert_eq!(sum(|s| s.errors), rounds * bad, "errors in samples");
}
