//! Reaping and delivering completions: [`Shard::poll`], the batched
//! delivery of reaped completions, fault injection on them, and the
//! per-completion counters.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use auraio_ring::{Completion, Resources};

use crate::engine::Shared;
use crate::lean::FreeBatch;
use crate::op_state::{panic_message, Finish, Target};

use super::work::Failed;
use super::Shard;

impl Shard {
    /// Reaps what is ready (entering the kernel when ops are in flight),
    /// refills from the backlog, then delivers outside the lock.
    pub(crate) fn poll(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>) -> io::Result<usize> {
        buf.clear();
        let mut failed = Vec::new();
        let mut due = Vec::new();
        let res = {
            let mut core = self.lock();
            if core.closed {
                return Ok(0);
            }
            // Held completions that are due free their budget before the
            // refill below.
            self.take_held(false, &mut due);
            let res = core.ring.poll(buf);
            self.apply_faults(sh, buf, true);
            if !core.backlog.is_empty() {
                self.refill_locked(sh, &mut core, &mut failed);
                if core.ring.queued() > 0 {
                    let _ = core.ring.flush();
                }
            }
            self.mirror(&core);
            res
        };
        let n = buf.len() + failed.len() + due.len();
        self.deliver_held(sh, due);
        self.deliver_completions(sh, buf);
        self.deliver_failed(sh, failed);
        res.map(|_| n)
    }

    /// Flushes queued SQEs to the kernel.
    pub(crate) fn flush(&self) -> io::Result<u32> {
        let mut core = self.lock();
        if core.closed {
            return Ok(0);
        }
        core.ring.flush()
    }

    pub(crate) fn deliver_completions(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>) {
        if buf.is_empty() {
            return;
        }
        // The shard's counters move once per batch, before any callback of
        // the batch runs (a callback that reads `stats()` sees itself).
        // The meter too: its latency histogram gets one update per run of
        // equal latencies (every op reaped together shares one reap time,
        // and a round's ops one hand-off time), not two RMWs per op.
        let (mut bytes, mut errors) = (0u64, 0u64);
        let mut run_latency = buf[0].latency_ns;
        let mut run_len = 0u64;
        for c in buf.iter() {
            if c.result < 0 {
                errors += 1;
            } else if c.token.info().counts_bytes() {
                bytes += c.result as u64;
            }
            if c.latency_ns != run_latency {
                self.meter.on_complete_n(run_latency, run_len, 0, 0);
                run_latency = c.latency_ns;
                run_len = 0;
            }
            run_len += 1;
        }
        self.meter
            .on_complete_n(run_latency, run_len, bytes, errors);
        self.count_completions(buf.len() as u64, bytes, errors);
        let mut done = 0;
        let mut free = FreeBatch::default();
        let mut items = buf.drain(..);
        // One `catch_unwind` for the whole batch rather than one per op
        // (which passes each op's result and callback through memory): a
        // panicking callback unwinds to here, is counted and reported, and
        // delivery resumes with the next completion. Every op is still
        // delivered once: the panicking one had its callback taken and its
        // phase set to `Done` before the callback ran.
        loop {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for c in items.by_ref() {
                    self.deliver_counted::<false>(
                        sh,
                        c.token,
                        c.result,
                        c.resources,
                        c.latency_ns,
                        &mut done,
                        &mut free,
                    );
                }
            }));
            match run {
                Ok(()) => break,
                Err(payload) => {
                    self.panics.fetch_add(1, Relaxed);
                    sh.report_panic(self.idx, &panic_message(payload.as_ref()));
                }
            }
        }
        drop(items);
        // The lean ops' table entries go back once the batch ran (their
        // callbacks were taken out before each ran, also a panicking one).
        self.cb_table.flush(&mut free);
        self.add_delivered(done);
    }

    /// Adds a batch of completions to the shard's counters.
    fn count_completions(&self, completions: u64, bytes: u64, errors: u64) {
        self.completions.fetch_add(completions, Relaxed);
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Relaxed);
        }
        if errors > 0 {
            self.errors.fetch_add(errors, Relaxed);
        }
    }

    /// Fault injection (tests only), on freshly reaped completions: rewrites
    /// results in place and, when `hold`, moves the completions to delay
    /// into the held queue. Called under the ring lock, before the backlog
    /// refill, so a held op never leaves a gap in the in-flight budget.
    pub(super) fn apply_faults(&self, sh: &Shared, buf: &mut Vec<Completion<Target>>, hold: bool) {
        if !sh.has_faults() || buf.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(buf.len());
        for mut c in buf.drain(..) {
            let Some(fault) = sh.fault_for(self.idx, &c.token.info(), c.result, c.latency_ns)
            else {
                kept.push(c);
                continue;
            };
            if let Some(r) = fault.result {
                c.result = r;
            }
            match fault.delay.filter(|d| hold && !d.is_zero()) {
                Some(d) => {
                    if let Some(back) = self.hold(c, d) {
                        kept.push(back);
                    }
                }
                None => kept.push(c),
            }
        }
        *buf = kept;
    }

    /// Counts one completion, feeds the meter and trace, and delivers it.
    pub(super) fn deliver_one(
        &self,
        sh: &Shared,
        token: Target,
        result: i32,
        resources: Resources,
        latency_ns: u64,
        done: &mut u64,
    ) {
        let ok = result >= 0;
        let bytes = completed_bytes(&token, result);
        self.count_completions(1, bytes, u64::from(!ok));
        // (Guarded: `finish` frees a lean op's entry itself.)
        let mut free = FreeBatch::default();
        self.deliver_counted::<true>(sh, token, result, resources, latency_ns, done, &mut free);
    }

    /// Feeds the meter (only when `GUARDED`: the unguarded caller feeds it
    /// once per batch) and trace and delivers one completion already
    /// counted in the shard's counters. A panicking callback is caught
    /// and reported here when `GUARDED`; otherwise it unwinds to the
    /// caller, which must catch it (see
    /// [`deliver_completions`](Self::deliver_completions)).
    /// Unguarded, a lean op's table entry is recorded in `free`, which the
    /// caller flushes.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn deliver_counted<const GUARDED: bool>(
        &self,
        sh: &Shared,
        token: Target,
        result: i32,
        resources: Resources,
        latency_ns: u64,
        done: &mut u64,
        free: &mut FreeBatch,
    ) {
        if GUARDED {
            // (The unguarded caller, `deliver_completions`, fed the meter
            // for its whole batch.)
            let bytes = completed_bytes(&token, result);
            self.meter.on_complete(latency_ns, bytes, result < 0);
        }
        let ok = result >= 0;
        if let Some(ctl) = token.ctl_ref() {
            if ctl.info.traced {
                sh.trace_io(self.idx, ctl, latency_ns, result);
            }
        }
        let res = if ok {
            Ok(result as u32)
        } else {
            Err(io::Error::from_raw_os_error(-result))
        };
        if GUARDED {
            self.finish(sh, token, res, resources, done);
        } else {
            self.count_finish(&token, done);
            token.finish_unguarded(&self.cb_table, free, res, resources);
        }
    }

    pub(crate) fn deliver_failed(&self, sh: &Shared, failed: Vec<Failed>) {
        let mut done = 0;
        for f in failed {
            self.finish(sh, f.target, f.result, f.resources, &mut done);
        }
        self.add_delivered(done);
    }

    /// Delivers one completion. A future's op is counted delivered here
    /// (before its waker runs, so a woken task that checks `pending()` sees
    /// it); a callback's is added to `done`, which the caller counts once
    /// its whole batch ran (so an op chained from a callback is accepted
    /// before its parent stops counting as pending).
    fn finish(
        &self,
        sh: &Shared,
        target: Target,
        result: io::Result<u32>,
        resources: Resources,
        done: &mut u64,
    ) {
        self.count_finish(&target, done);
        if let Finish::Panicked(msg) = target.finish(&self.cb_table, result, resources) {
            self.panics.fetch_add(1, Relaxed);
            sh.report_panic(self.idx, &msg);
        }
    }

    /// The counters of one completion about to be delivered: registered
    /// resources released, and the op counted delivered (a future's now,
    /// a callback's in `done`; see [`finish`](Self::finish)).
    #[inline]
    fn count_finish(&self, target: &Target, done: &mut u64) {
        // The kernel is done with the registered resources of this op.
        if target.info().fixed_buf {
            self.fixed_bufs.fetch_sub(1, Relaxed);
        }
        if target.info().fixed_file {
            self.fixed_files.fetch_sub(1, Relaxed);
        }
        if target.is_future() {
            self.add_delivered(1);
        } else {
            *done += 1;
        }
    }
}

/// Bytes a completion transferred, for the stats: the result of a
/// successful read or write (0 for errors and for ops that move no data).
#[inline]
fn completed_bytes(token: &Target, result: i32) -> u64 {
    if result >= 0 && token.info().counts_bytes() {
        result as u64
    } else {
        0
    }
}
