//! [`Shared`]: the state behind every engine handle, the tick and reaper
//! threads and the futures; the `Handle` that shuts it down when dropped.

use std::fs::File;
use std::io::{self, BufWriter};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use auraio_controller::{ControllerState, Decision, IoRecord, Sample, TickRecord, TraceWriter};

use crate::config::{ReaperMode, RingSelection};
use crate::op_state::{OpCtl, OpInfo};
use crate::shard::Shard;

use super::lock;
use super::threads::reaper_loop;
#[cfg(doc)]
use super::Engine;

#[derive(Default)]
pub(super) struct Threads {
    pub(super) tick: Option<JoinHandle<()>>,
    reapers: Vec<JoinHandle<()>>,
}

type TraceSink = TraceWriter<BufWriter<File>>;

/// State shared by every handle, the tick and reaper threads and futures.
pub(crate) struct Shared {
    pub(crate) rings: Vec<Shard>,
    pub(super) selection: RingSelection,
    pub(super) rr: AtomicUsize,
    pub(crate) closed: AtomicBool,
    pub(super) start: Instant,
    pub(super) tick: Duration,
    pub(super) stop_tick: Mutex<bool>,
    pub(super) stop_cv: Condvar,
    pub(super) threads: Mutex<Threads>,
    pub(super) reapers_started: AtomicBool,
    pub(super) reaper_mode: ReaperMode,
    pub(crate) batch_override: AtomicU32,
    pub(super) trace: Option<Mutex<TraceSink>>,
    pub(super) trace_io_every: u32,
    pub(crate) fault: Option<crate::config::FaultInjector>,
    pub(crate) fault_plan: Option<crate::config::FaultPlan>,
    /// Completions seen by the fault hook/plan (their `FaultPoint::seq`).
    pub(super) fault_seq: AtomicU64,
    pub(super) trace_errors: AtomicU64,
    pub(super) panic_reported: AtomicBool,
    pub(super) tick_panic_reported: AtomicBool,
    pub(super) stop_run: AtomicBool,
    pub(crate) controller_name: String,
    pub(super) wait_cursor: AtomicUsize,
}

impl Shared {
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn id(&self) -> usize {
        self as *const Shared as usize
    }

    pub(crate) fn trace_errors(&self) -> u64 {
        self.trace_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn trace_io(&self, ring: u32, ctl: &OpCtl, latency_ns: u64, result: i32) {
        if let Some(t) = &self.trace {
            let info = &ctl.info;
            let (t_submit_ns, in_flight_at_submit) = ctl.submit_stamp();
            let rec = IoRecord {
                ring,
                t_submit_ns,
                latency_ns,
                op: info.kind.name().to_string(),
                len: info.len,
                in_flight_at_submit,
                result: i64::from(result),
            };
            if lock(t).io(&rec).is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn trace_tick(
        &self,
        ring: u32,
        sample: &Sample,
        decision: Decision,
        state: &ControllerState,
    ) {
        if let Some(t) = &self.trace {
            let rec = TickRecord {
                ring,
                sample: sample.clone(),
                decision,
                state: state.clone(),
            };
            if lock(t).tick(&rec).is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// True when a fault hook or plan is configured (tests only).
    pub(crate) fn has_faults(&self) -> bool {
        self.fault.is_some() || self.fault_plan.is_some()
    }

    /// Shortens `op` in place when the fault plan says so (tests only);
    /// `false`, `op` untouched, without a plan (the normal case). In place:
    /// the submit paths keep an op where its request put it.
    #[inline(always)]
    pub(crate) fn maybe_shorten(&self, op: &mut auraio_ring::Op) -> bool {
        match &self.fault_plan {
            Some(p) => p.maybe_shorten_in_place(op),
            None => false,
        }
    }

    /// May an op described by `info` take the lean path (see `crate::lean`)?
    /// Only one that nothing else needs to observe: no per-op timeout, not
    /// traced, not rewritten by a fault plan, no fault hook, no registered
    /// buffer or file (counted per op for unregistering). (A caller that
    /// hands out a handle has its own reason to say no.)
    #[inline(always)]
    pub(crate) fn lean_allowed(&self, info: &OpInfo, has_timeout: bool) -> bool {
        !has_timeout
            && !info.traced
            && !info.shortened
            && !info.fixed_buf
            && !info.fixed_file
            && !self.has_faults()
    }

    /// The fault to apply to one completion (`None`: no fault injection
    /// configured, the normal case).
    pub(crate) fn fault_for(
        &self,
        ring: u32,
        info: &OpInfo,
        result: i32,
        latency_ns: u64,
    ) -> Option<crate::config::Fault> {
        if !self.has_faults() {
            return None;
        }
        let point = crate::config::FaultPoint {
            ring,
            op: info.kind,
            result,
            latency_ns,
            seq: self.fault_seq.fetch_add(1, Ordering::Relaxed),
            len: info.len,
        };
        let mut f = crate::config::Fault::none();
        if let Some(p) = &self.fault_plan {
            f = p.decide(&point);
        }
        if let Some(hook) = &self.fault {
            f = f.or(hook(&point));
        }
        Some(f)
    }

    pub(crate) fn report_panic(&self, ring: u32, msg: &str) {
        if !self.panic_reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "auraio: a completion callback panicked on ring {ring} ({msg}); the engine \
                 keeps running. Later panics are only counted (EngineStats::callback_panics)."
            );
        }
    }

    /// Starts one reaper thread per ring (once).
    pub(super) fn start_reapers(self: &Arc<Self>) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) || self.reapers_started.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let mut handles = Vec::with_capacity(self.rings.len());
        for idx in 0..self.rings.len() {
            let sh = Arc::clone(self);
            let h = thread::Builder::new()
                .name(format!("auraio-reap-{idx}"))
                .spawn(move || reaper_loop(sh, idx))?;
            handles.push(h);
        }
        lock(&self.threads).reapers.extend(handles);
        Ok(())
    }

    pub(crate) fn cancel(&self, ctl: &Arc<OpCtl>) -> io::Result<()> {
        if ctl.owner != self.id() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this operation belongs to another engine",
            ));
        }
        match self.rings.get(ctl.ring as usize) {
            Some(shard) => shard.cancel(self, ctl),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "operation handle names no ring of this engine",
            )),
        }
    }

    /// Stops the threads, fails the backlog, drains every ring; every
    /// accepted op gets its one completion. Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        *lock(&self.stop_tick) = true;
        self.stop_cv.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = thread::current().id();
        if let Some(t) = threads.tick {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        // Wake reapers blocked in the kernel.
        for shard in &self.rings {
            let _ = shard.with_ring(|r| r.notify());
        }
        for shard in &self.rings {
            shard.shutdown(self);
        }
        for r in threads.reapers {
            if r.thread().id() != me {
                let _ = r.join();
            }
        }
        if let Some(t) = &self.trace {
            if lock(t).flush().is_err() {
                self.trace_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Shuts the engine down when the last [`Engine`] clone is dropped.
pub(super) struct Handle {
    pub(super) sh: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.sh.shutdown();
    }
}
