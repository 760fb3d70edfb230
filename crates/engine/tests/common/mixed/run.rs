//! The driver: sets up the file and the shadows, runs the threads, shuts
//! the engine down mid-stream and checks everything.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auraio_engine::Engine;

use super::completion::Counters;
use super::config::{MixedConfig, MixedReport};
use super::shadow::{lock, Chunk, Region};
use super::thread::Thread;
use super::{pattern, Rng};

/// Runs the workload on `engine` (pass the only handle: it is shut down
/// mid-stream and dropped) over a fresh file at `path`, checks everything
/// and returns what happened.
pub fn run_mixed(engine: Engine, path: &Path, cfg: &MixedConfig) -> MixedReport {
    assert!(cfg.region.is_multiple_of(cfg.chunk));
    let initial: Vec<Vec<u8>> = (0..cfg.threads)
        .map(|t| pattern(cfg.region, t as u8))
        .collect();
    {
        let f = std::fs::File::create(path).unwrap();
        for (t, data) in initial.iter().enumerate() {
            f.write_all_at(data, (t * cfg.region) as u64).unwrap();
        }
        f.sync_all().unwrap();
    }
    let file = Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap(),
    );
    let live = Arc::new(AtomicI64::new(0));
    let submitted = Arc::new(AtomicU64::new(0));
    let regions: Vec<Arc<Mutex<Region>>> = initial
        .iter()
        .map(|data| {
            Arc::new(Mutex::new(Region {
                content: data.clone(),
                known: vec![true; cfg.region],
                chunks: vec![Chunk::Free; cfg.region / cfg.chunk],
            }))
        })
        .collect();
    let counters: Vec<Arc<Counters>> = (0..cfg.threads)
        .map(|_| Arc::new(Counters::default()))
        .collect();
    let handles: Vec<_> = (0..cfg.threads)
        .map(|t| {
            let th = Thread {
                t,
                engine: engine.clone(),
                file: Arc::clone(&file),
                base: (t * cfg.region) as u64,
                region: Arc::clone(&regions[t]),
                counters: Arc::clone(&counters[t]),
                live: Arc::clone(&live),
                cfg: cfg.clone(),
                submitted: Arc::clone(&submitted),
                rng: Rng::new(cfg.seed ^ ((t as u64 + 1) * 0x1234_5678)),
                next_id: 0,
            };
            std::thread::Builder::new()
                .name(format!("mixed-{t}"))
                .spawn(move || th.run())
                .unwrap()
        })
        .collect();
    // Let the threads run, then shut down while they are still submitting.
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let done = match cfg.duration {
            Some(d) => start.elapsed() >= d,
            None => submitted.load(Ordering::Relaxed) >= cfg.total_ops,
        };
        let dead = handles.iter().any(|h| h.is_finished());
        if done || dead {
            break;
        }
    }
    let stats_before = engine.stats();
    engine.shutdown();
    let mut leftover = Vec::new();
    for h in handles {
        leftover.push(h.join().expect("a workload thread panicked"));
    }
    drop(engine);
    // Futures still held resolve (the engine delivered every op at
    // shutdown); resolve half, drop the other half.
    let mut resolved_late = 0;
    for (t, futs) in leftover.into_iter().enumerate() {
        for (k, f) in futs.into_iter().enumerate() {
            if k % 2 == 0 {
                super::block_on(f);
                resolved_late += 1;
            } else {
                // Already completed at shutdown: dropping it releases the
                // unclaimed result (the buffer) at once.
                counters[t].dropped.fetch_add(1, Ordering::Relaxed);
                drop(f);
            }
        }
    }
    // Every buffer is back (the engine is gone, nothing may hold one).
    assert_eq!(live.load(Ordering::SeqCst), 0, "buffers not released");
    let mut rep = MixedReport::default();
    for (t, c) in counters.iter().enumerate() {
        let errs = lock(&c.bad_errors).clone();
        assert!(errs.is_empty(), "thread {t}: unexpected errors: {errs:?}");
        assert_eq!(
            c.misrouted.load(Ordering::SeqCst),
            0,
            "thread {t}: misrouted"
        );
        assert_eq!(c.bad_data.load(Ordering::SeqCst), 0, "thread {t}: bad data");
        assert_eq!(
            c.outstanding_cb.load(Ordering::SeqCst),
            0,
            "thread {t}: a callback never ran"
        );
        let (acc, del, drp) = (
            c.accepted.load(Ordering::SeqCst),
            c.delivered.load(Ordering::SeqCst),
            c.dropped.load(Ordering::SeqCst),
        );
        assert_eq!(
            acc,
            del + drp,
            "thread {t}: accepted {acc} != delivered {del} + dropped futures {drp}"
        );
        rep.accepted += acc;
        rep.delivered += del;
        rep.dropped_futures += drp;
        rep.refused_after_shutdown += c.refused.load(Ordering::SeqCst);
        rep.ok_reads += c.ok_reads.load(Ordering::SeqCst);
        rep.ok_writes += c.ok_writes.load(Ordering::SeqCst);
        rep.short_reads += c.short_reads.load(Ordering::SeqCst);
        rep.short_writes += c.short_writes.load(Ordering::SeqCst);
        rep.canceled += c.canceled.load(Ordering::SeqCst);
        rep.cancels_issued += c.cancels.load(Ordering::SeqCst);
        rep.timeouts_set += c.timeouts.load(Ordering::SeqCst);
        rep.bytes_written += c.bytes_written.load(Ordering::SeqCst);
        rep.bytes_checked_in_reads += c.bytes_checked.load(Ordering::SeqCst);
    }
    // Final pass: the file holds what the successful writes wrote.
    for (t, r) in regions.iter().enumerate() {
        let r = lock(r);
        assert!(
            r.chunks.iter().all(|c| *c == Chunk::Free),
            "thread {t}: a chunk was never released: {:?}",
            r.chunks
        );
        let mut disk = vec![0u8; cfg.region];
        file.read_exact_at(&mut disk, (t * cfg.region) as u64)
            .unwrap();
        for (i, (&got, (&want, &known))) in disk
            .iter()
            .zip(r.content.iter().zip(r.known.iter()))
            .enumerate()
        {
            if known {
                assert_eq!(
                    got, want,
                    "thread {t}: byte {i} of its region differs from the last successful write"
                );
                rep.bytes_verified_at_end += 1;
            } else {
                rep.bytes_unknown_at_end += 1;
            }
        }
    }
    assert!(rep.ok_writes > 0 && rep.ok_reads > 0, "{rep:?}");
    assert!(rep.bytes_verified_at_end > 0, "{rep:?}");
    println!(
        "mixed workload: {rep:?}; {resolved_late} futures resolved after shutdown; \
         before shutdown: completions {}, peak in flight {}, limits {:?}",
        stats_before.total.completions,
        stats_before.total.peak_in_flight,
        stats_before
            .rings
            .iter()
            .map(|r| r.limit)
            .collect::<Vec<_>>()
    );
    rep
}
