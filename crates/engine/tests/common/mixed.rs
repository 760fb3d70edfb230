//! The mixed stress workload: threads submitting reads and writes of random
//! sizes at random offsets in their own region of a real file, through both
//! faces, with random cancels, per-op timeouts and dropped futures, while
//! the controller retunes; the engine is shut down mid-stream. Used by
//! `stress_mixed.rs` (io_uring and the blocking backend) and by the seccomp
//! fallback test.
//!
//! What it checks (every check can fail):
//! - every accepted op completes exactly once: callbacks run and futures
//!   resolve exactly as many times as ops were accepted (dropped futures
//!   aside, whose ops are tracked by their buffers), each with its own
//!   buffer (a misrouted completion is caught by the op id in the buffer);
//! - every buffer comes back: a live-buffer counter returns to 0 after the
//!   engine is gone, and every chunk is released (buffers release their
//!   chunk on drop, also those of dropped futures, dropped by the engine);
//! - data: a shadow copy of each region records what successful writes put
//!   there; reads during the run and a final pass over the file (plain
//!   `pread`, not the engine) must match it byte for byte, except bytes a
//!   failed or abandoned write may or may not have touched (counted).

use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use auraio_engine::{is_shutdown, Engine, OpHandle, Request};

use super::{pattern, Rng};

/// Workload shape.
#[derive(Clone, Debug)]
pub struct MixedConfig {
    /// Submitting threads (each owns one region of the file).
    pub threads: usize,
    /// Shut the engine down once this many ops were submitted in total…
    pub total_ops: u64,
    /// …or, when set, once this much time has passed (soak).
    pub duration: Option<Duration>,
    /// Bytes per thread region.
    pub region: usize,
    /// Bytes per chunk (a chunk has one write, or any reads, in flight).
    pub chunk: usize,
    /// Ops (callbacks + live futures) a thread keeps outstanding at most.
    pub max_outstanding: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl MixedConfig {
    /// The CI size: a few seconds in debug on a loaded 2-core machine.
    pub fn ci(threads: usize, total_ops: u64) -> Self {
        MixedConfig {
            threads,
            total_ops,
            duration: None,
            region: 256 * 1024,
            chunk: 16 * 1024,
            max_outstanding: 48,
            seed: 0x5EED,
        }
    }
}

/// What a run did (all asserted consistent before it is returned).
#[derive(Clone, Debug, Default)]
pub struct MixedReport {
    pub accepted: u64,
    pub delivered: u64,
    pub dropped_futures: u64,
    pub refused_after_shutdown: u64,
    pub ok_reads: u64,
    pub ok_writes: u64,
    pub short_reads: u64,
    pub short_writes: u64,
    pub canceled: u64,
    pub cancels_issued: u64,
    pub timeouts_set: u64,
    pub bytes_written: u64,
    pub bytes_checked_in_reads: u64,
    pub bytes_verified_at_end: u64,
    pub bytes_unknown_at_end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Free,
    Writing,
    Reading(u32),
}

/// The shadow of one thread's region.
struct Region {
    content: Vec<u8>,
    known: Vec<bool>,
    chunks: Vec<Chunk>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters shared by a thread's ops (callbacks may run on any thread).
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    outstanding_cb: AtomicUsize,
    ok_reads: AtomicU64,
    ok_writes: AtomicU64,
    short_reads: AtomicU64,
    short_writes: AtomicU64,
    canceled: AtomicU64,
    cancels: AtomicU64,
    timeouts: AtomicU64,
    bytes_written: AtomicU64,
    bytes_checked: AtomicU64,
    misrouted: AtomicU64,
    bad_data: AtomicU64,
    bad_errors: Mutex<Vec<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

/// A buffer that knows its op: it checks routing, and on drop (wherever
/// that happens: a callback, a future's owner, or the engine for a dropped
/// future) releases its chunk and the live count.
pub struct StressBuf {
    id: u64,
    data: Vec<u8>,
    kind: Kind,
    region: Arc<Mutex<Region>>,
    chunk: usize,
    /// Position in the region and requested length.
    off: usize,
    len: usize,
    /// Its result was applied to the shadow (writes).
    applied: bool,
    live: Arc<AtomicI64>,
}

super::io_buf_via_data!(StressBuf);

impl Drop for StressBuf {
    fn drop(&mut self) {
        let mut r = lock(&self.region);
        match self.kind {
            Kind::Write => {
                if !self.applied {
                    // A failed or abandoned write may or may not have
                    // reached the file: those bytes are unknown from now on.
                    for k in &mut r.known[self.off..self.off + self.len] {
                        *k = false;
                    }
                }
                r.chunks[self.chunk] = Chunk::Free;
            }
            Kind::Read => {
                r.chunks[self.chunk] = match r.chunks[self.chunk] {
                    Chunk::Reading(n) if n > 1 => Chunk::Reading(n - 1),
                    _ => Chunk::Free,
                };
            }
        }
        drop(r);
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn note_error(c: &Counters, e: &io::Error, what: &str) {
    match e.raw_os_error() {
        Some(libc::ECANCELED) => {
            c.canceled.fetch_add(1, Ordering::Relaxed);
        }
        // io-wq interrupts a cancelled op that is already running.
        Some(libc::EINTR) => {}
        _ => lock(&c.bad_errors).push(format!("{what}: {e}")),
    }
}

/// Applies one completion; `id` is the op the completion was meant for.
fn complete(c: &Counters, id: u64, res: io::Result<usize>, mut buf: StressBuf) {
    c.delivered.fetch_add(1, Ordering::Relaxed);
    if buf.id != id {
        c.misrouted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match (buf.kind, res) {
        (Kind::Write, Ok(n)) => {
            if n > buf.len {
                c.bad_data.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if n < buf.len {
                c.short_writes.fetch_add(1, Ordering::Relaxed);
            }
            {
                let mut r = lock(&buf.region);
                let off = buf.off;
                r.content[off..off + n].copy_from_slice(&buf.data[..n]);
                for k in &mut r.known[off..off + n] {
                    *k = true;
                }
                // A short write left the rest as it was: known state kept.
            }
            buf.applied = true;
            c.ok_writes.fetch_add(1, Ordering::Relaxed);
            c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        }
        (Kind::Read, Ok(n)) => {
            if n > buf.len || buf.data.len() != n {
                // The count and the buffer's init length must agree.
                c.bad_data.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if n < buf.len {
                c.short_reads.fetch_add(1, Ordering::Relaxed);
            }
            let r = lock(&buf.region);
            let off = buf.off;
            let mut bad = false;
            let mut checked = 0;
            for (i, b) in buf.data.iter().enumerate() {
                if r.known[off + i] {
                    checked += 1;
                    bad |= r.content[off + i] != *b;
                }
            }
            drop(r);
            if bad {
                c.bad_data.fetch_add(1, Ordering::Relaxed);
            }
            c.ok_reads.fetch_add(1, Ordering::Relaxed);
            c.bytes_checked.fetch_add(checked, Ordering::Relaxed);
        }
        (k, Err(e)) => note_error(c, &e, if k == Kind::Read { "read" } else { "write" }),
    }
}

type LocalFut = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Thread {
    t: usize,
    engine: Engine,
    file: Arc<std::fs::File>,
    base: u64,
    region: Arc<Mutex<Region>>,
    counters: Arc<Counters>,
    live: Arc<AtomicI64>,
    cfg: MixedConfig,
    submitted: Arc<AtomicU64>,
    rng: Rng,
    next_id: u64,
}

impl Thread {
    /// Picks a chunk and an extent in it; reserves the chunk for a write
    /// (it must be free) or a read (it must not be being written).
    fn reserve(&mut self, kind: Kind) -> Option<(usize, usize, usize)> {
        let n_chunks = self.cfg.region / self.cfg.chunk;
        let chunk = self.rng.below(n_chunks as u64) as usize;
        let in_chunk = self.rng.below(self.cfg.chunk as u64) as usize;
        let max_len = self.cfg.chunk - in_chunk;
        let len = 1 + self.rng.below(max_len as u64) as usize;
        let off = chunk * self.cfg.chunk + in_chunk;
        let mut r = lock(&self.region);
        let st = r.chunks[chunk];
        r.chunks[chunk] = match (kind, st) {
            (Kind::Write, Chunk::Free) => Chunk::Writing,
            (Kind::Read, Chunk::Free) => Chunk::Reading(1),
            (Kind::Read, Chunk::Reading(n)) => Chunk::Reading(n + 1),
            _ => return None,
        };
        Some((chunk, off, len))
    }

    fn buffer(&mut self, kind: Kind, chunk: usize, off: usize, len: usize) -> StressBuf {
        self.next_id += 1;
        let id = ((self.t as u64) << 48) | self.next_id;
        let data = match kind {
            Kind::Write => {
                let seed = self.rng.next();
                (0..len)
                    .map(|i| (seed as usize).wrapping_add(i * 7) as u8)
                    .collect()
            }
            Kind::Read => Vec::with_capacity(len),
        };
        self.live.fetch_add(1, Ordering::SeqCst);
        StressBuf {
            id,
            data,
            kind,
            region: Arc::clone(&self.region),
            chunk,
            off,
            len,
            applied: false,
            live: Arc::clone(&self.live),
        }
    }

    fn request(&mut self, buf: StressBuf) -> Request<(io::Result<usize>, StressBuf)> {
        let pos = self.base + buf.off as u64;
        let req = match buf.kind {
            Kind::Read => Request::read(&*self.file, buf, pos),
            Kind::Write => Request::write(&*self.file, buf, pos),
        };
        if self.rng.pct(10) {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            req.with_timeout(Duration::from_micros(self.rng.below(3000)))
        } else {
            req
        }
    }

    fn refused(&self, e: &io::Error) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        if !is_shutdown(e) {
            lock(&self.counters.bad_errors).push(format!("refused: {e}"));
        }
    }

    fn run(mut self) -> Vec<LocalFut> {
        let mut futs: Vec<LocalFut> = Vec::new();
        let mut handles: Vec<OpHandle> = Vec::new();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let c = Arc::clone(&self.counters);
        let mut i: u64 = 0;
        loop {
            i += 1;
            // Drive: poll our futures, reap, and keep the outstanding count
            // bounded.
            futs.retain_mut(|f| f.as_mut().poll(&mut cx).is_pending());
            if i.is_multiple_of(16) {
                let _ = self.engine.poll();
            }
            if c.outstanding_cb.load(Ordering::Relaxed) + futs.len() >= self.cfg.max_outstanding {
                if self.engine.is_shut_down() {
                    // Everything accepted has completed; our futures
                    // resolve on their next poll.
                    futs.retain_mut(|f| f.as_mut().poll(&mut cx).is_pending());
                    if c.outstanding_cb.load(Ordering::Relaxed) + futs.len()
                        >= self.cfg.max_outstanding
                    {
                        std::thread::yield_now();
                        continue;
                    }
                } else {
                    let _ = self.engine.wait(Some(Duration::from_millis(2)));
                    continue;
                }
            }
            if self.t == 0 && i.is_multiple_of(300) {
                // Retune by hand too, racing the tick thread's decisions.
                match self.rng.below(4) {
                    0 => self.engine.set_max_in_flight(2 + self.rng.below(40) as u32),
                    1 => self.engine.set_max_in_flight(u32::MAX),
                    2 => self
                        .engine
                        .set_batch_threshold(Some(1 + self.rng.below(8) as u32)),
                    _ => self.engine.set_batch_threshold(None),
                }
            }
            let roll = self.rng.below(100);
            let kind = if roll < 50 { Kind::Write } else { Kind::Read };
            if roll >= 97 {
                // Now and then an fsync (not chunk-bound).
                let c2 = Arc::clone(&c);
                c.outstanding_cb.fetch_add(1, Ordering::Relaxed);
                match self.engine.fsync(&*self.file, move |r| {
                    c2.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = r {
                        note_error(&c2, &e, "fsync");
                    }
                    c2.outstanding_cb.fetch_sub(1, Ordering::Relaxed);
                }) {
                    Ok(_) => {
                        c.accepted.fetch_add(1, Ordering::Relaxed);
                        self.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        c.outstanding_cb.fetch_sub(1, Ordering::Relaxed);
                        self.refused(e.error());
                        break;
                    }
                }
                continue;
            }
            let Some((chunk, off, len)) = self.reserve(kind) else {
                continue;
            };
            let buf = self.buffer(kind, chunk, off, len);
            let id = buf.id;
            let req = self.request(buf);
            let as_future = self.rng.pct(35);
            if as_future {
                let fut = self.engine.call(req);
                c.accepted.fetch_add(1, Ordering::Relaxed);
                self.submitted.fetch_add(1, Ordering::Relaxed);
                if fut.ring().is_none() {
                    // Refused (after shutdown): resolves at once with the
                    // buffer and the error.
                    c.accepted.fetch_sub(1, Ordering::Relaxed);
                    let (r, b) = super::block_on(fut);
                    drop(b);
                    match r {
                        Err(e) => {
                            self.refused(&e);
                            break;
                        }
                        Ok(_) => lock(&c.bad_errors).push("refused future succeeded".into()),
                    }
                    continue;
                }
                if self.rng.pct(10) {
                    fut.cancel();
                    c.cancels.fetch_add(1, Ordering::Relaxed);
                }
                let c2 = Arc::clone(&c);
                let wrapped: LocalFut = Box::pin(async move {
                    let (r, b) = fut.await;
                    complete(&c2, id, r, b);
                });
                if self.rng.pct(15) {
                    // Dropped before (or after) it completes: the op is
                    // cancelled; the engine keeps and then drops the buffer.
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    drop(wrapped);
                } else {
                    futs.push(wrapped);
                }
                if futs.len() > 8 && self.rng.pct(5) {
                    let k = self.rng.below(futs.len() as u64) as usize;
                    // Dropping a wrapped future that already completed
                    // would lose its delivery: poll it once first.
                    let mut f = futs.swap_remove(k);
                    if f.as_mut().poll(&mut cx).is_pending() {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(f);
                }
            } else {
                let c2 = Arc::clone(&c);
                c.outstanding_cb.fetch_add(1, Ordering::Relaxed);
                let r = self.engine.submit_with_handle(req, move |(r, b)| {
                    complete(&c2, id, r, b);
                    c2.outstanding_cb.fetch_sub(1, Ordering::Relaxed);
                });
                match r {
                    Ok(h) => {
                        c.accepted.fetch_add(1, Ordering::Relaxed);
                        self.submitted.fetch_add(1, Ordering::Relaxed);
                        if self.rng.pct(8) {
                            let _ = self.engine.cancel(&h);
                            c.cancels.fetch_add(1, Ordering::Relaxed);
                        } else if self.rng.pct(10) {
                            handles.push(h);
                        }
                    }
                    Err(e) => {
                        c.outstanding_cb.fetch_sub(1, Ordering::Relaxed);
                        let (e, (_r, b)) = e.into_parts();
                        drop(b);
                        self.refused(&e);
                        break;
                    }
                }
                if handles.len() > 16 {
                    // Cancel an older op: in the backlog, in the kernel, or
                    // already done (then a no-op).
                    let k = self.rng.below(handles.len() as u64) as usize;
                    let h = handles.swap_remove(k);
                    let _ = self.engine.cancel(&h);
                    c.cancels.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        futs
    }
}

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

/// `Poll` helper for tests that drive one future by hand.
pub fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    Pin::new(f).poll(&mut cx)
}
