//! Driving completions from the caller's thread: [`Engine::poll`],
//! [`Engine::wait`], [`Engine::run`], `flush`, `pending` and `shutdown`.

use std::cell::Cell;
use std::io;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use auraio_ring::Completion;

use crate::op_state::Target;
use crate::shard::Shard;

use super::Engine;

/// Longest single block in [`Engine::wait`] before re-checking all rings.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// How long `Engine::wait` sleeps between polls on a kernel without timed
/// waits (no `IORING_FEAT_EXT_ARG`, before Linux 5.11).
const UNTIMED_SLICE: Duration = Duration::from_micros(200);

/// Blocks on `waiter` until a completion may be ready or `slice` passed.
/// On a kernel without timed waits (before Linux 5.11) it cannot block in
/// the kernel with a timeout, so it sleeps a short while instead, as the
/// reapers do: the caller polls again either way.
fn block_on_ring(waiter: &auraio_ring::Waiter, slice: Duration) -> io::Result<()> {
    match waiter.wait(1, Some(slice)) {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            thread::sleep(slice.min(UNTIMED_SLICE));
            Ok(())
        }
        r => r,
    }
}
/// Block slice when several rings have ops in flight (the caller can only
/// block on one ring at a time).
const MULTI_RING_SLICE: Duration = Duration::from_millis(1);

thread_local! {
    static POLL_BUF: Cell<Vec<Completion<Target>>> = const { Cell::new(Vec::new()) };
}

impl Engine {
    // ----- driving completions ------------------------------------------------

    /// The rings this handle drives: its pinned ring, or all of them.
    fn driven(&self) -> &[Shard] {
        let rings = &self.sh().rings;
        match self.pinned {
            Some(p) => &rings[p..=p],
            None => rings,
        }
    }

    /// Reaps every ready completion (entering the kernel when ops are in
    /// flight), runs their callbacks / wakes their futures, and refills from
    /// the backlogs. Never blocks. Returns completions delivered.
    ///
    /// Drives every ring, or only the pinned ring of a handle from
    /// [`on_ring`](Self::on_ring) (one thread per ring, no contention).
    pub fn poll(&self) -> io::Result<usize> {
        let sh = self.sh();
        let mut buf = POLL_BUF.with(|b| b.take());
        let mut total = 0;
        let mut first_err = None;
        for shard in self.driven() {
            match shard.poll(sh, &mut buf) {
                Ok(n) => total += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        buf.clear();
        POLL_BUF.with(|b| b.set(buf));
        match first_err {
            Some(e) if total == 0 => Err(e),
            _ => Ok(total),
        }
    }

    /// Like [`poll`](Self::poll), but if nothing is ready and ops are
    /// pending, blocks in the kernel until at least one completion is
    /// delivered or `timeout` passes (`None`: no limit). Returns at once
    /// with 0 when nothing is pending. Same rings as `poll`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let sh = self.sh();
        let rings = self.driven();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let n = self.poll()?;
            if n > 0 {
                return Ok(n);
            }
            if self.pending() == 0 || sh.closed.load(Ordering::Acquire) {
                return Ok(0);
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(0);
                    }
                    d - now
                }
                None => WAIT_SLICE,
            };
            // Completions held back by fault injection are delivered by a
            // poll once due: do not block past that.
            let remaining = match rings.iter().filter_map(|s| s.held_due_in()).min() {
                Some(d) => remaining.min(d.max(Duration::from_micros(50))),
                None => remaining,
            };
            let mut busy = rings
                .iter()
                .filter(|s| s.in_flight.load(Ordering::Relaxed) > 0);
            let first = busy.next();
            let more = busy.count();
            match first {
                None => {
                    // Pending ops are being delivered by another thread.
                    thread::sleep(remaining.min(Duration::from_micros(100)));
                }
                Some(only) if more == 0 => {
                    // Block in the kernel (never busy-peek): GETEVENTS runs
                    // completion work and returns when a CQE is posted.
                    block_on_ring(&only.waiter, remaining.min(WAIT_SLICE))?;
                }
                Some(_) => {
                    // Several rings busy: block on each in turn, briefly.
                    let k = more + 1;
                    let c = sh.wait_cursor.fetch_add(1, Ordering::Relaxed) % k;
                    if let Some(s) = rings
                        .iter()
                        .filter(|s| s.in_flight.load(Ordering::Relaxed) > 0)
                        .nth(c)
                    {
                        block_on_ring(&s.waiter, remaining.min(MULTI_RING_SLICE))?;
                    }
                }
            }
        }
    }

    /// Runs callbacks until [`stop`](Self::stop) is called (from any thread
    /// or a callback) or the engine shuts down.
    pub fn run(&self) -> io::Result<()> {
        let sh = self.sh();
        loop {
            if sh.stop_run.swap(false, Ordering::AcqRel) || sh.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.pending() == 0 {
                let _ = self.poll()?;
                thread::sleep(Duration::from_millis(1));
            } else {
                self.wait(Some(Duration::from_millis(10)))?;
            }
        }
    }

    /// Makes [`run`](Self::run) return.
    pub fn stop(&self) {
        self.sh().stop_run.store(true, Ordering::Release);
    }

    /// Drives completions until no op is pending (on the rings this handle
    /// drives).
    pub fn run_until_idle(&self) -> io::Result<()> {
        while self.pending() > 0 {
            self.wait(Some(Duration::from_millis(100)))?;
        }
        Ok(())
    }

    /// Hands every queued SQE to the kernel now (normally batched up to the
    /// threshold and flushed by `poll`/`wait`).
    pub fn flush(&self) -> io::Result<()> {
        for shard in self.driven() {
            shard.flush()?;
        }
        Ok(())
    }

    /// Ops accepted and not yet completed (delivered): on every ring, or on
    /// the pinned ring of a handle from [`on_ring`](Self::on_ring).
    pub fn pending(&self) -> usize {
        self.driven().iter().map(Shard::pending).sum::<u64>() as usize
    }

    /// Shuts the engine down now (also done when the last clone is dropped):
    /// later submissions fail with an error that [`is_shutdown`](crate::is_shutdown)
    /// recognises; every accepted op gets its one completion
    /// (`ECANCELED` for those not finished).
    pub fn shutdown(&self) {
        self.sh().shutdown();
    }

    /// True after [`shutdown`](Self::shutdown).
    pub fn is_shut_down(&self) -> bool {
        self.sh().closed.load(Ordering::Acquire)
    }
}
