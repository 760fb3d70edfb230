//! One submitting thread: random reads, writes and fsyncs through both
//! faces, with cancels, timeouts, dropped futures and manual retuning.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use auraio_engine::{is_shutdown, Engine, OpHandle, Request};

use super::buf::{Kind, StressBuf};
use super::completion::{complete, note_error, Counters};
use super::config::MixedConfig;
use super::shadow::{lock, Chunk, Region};
use super::Rng;

type LocalFut = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(super) struct Thread {
    pub(super) t: usize,
    pub(super) engine: Engine,
    pub(super) file: Arc<std::fs::File>,
    pub(super) base: u64,
    pub(super) region: Arc<Mutex<Region>>,
    pub(super) counters: Arc<Counters>,
    pub(super) live: Arc<AtomicI64>,
    pub(super) cfg: MixedConfig,
    pub(super) submitted: Arc<AtomicU64>,
    pub(super) rng: Rng,
    pub(super) next_id: u64,
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

    pub(super) fn run(mut self) -> Vec<LocalFut> {
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
