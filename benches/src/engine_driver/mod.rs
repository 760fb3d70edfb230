//! The real driver: the auraio engine doing the workload.
//!
//! `threads` submitting threads, thread `i` on ring `i % rings`. Each thread
//! keeps `limit + backlog` ops accepted by the engine, where `limit` is the
//! ring's current in-flight limit: the engine's backlog always holds a few
//! ops, so the controller sees demand above its limit and the device never
//! waits for the runner. The controller alone sets the concurrency.
//! Completions run in the threads' `wait` calls (no reaper threads).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use auraio_buffer_pool::BufferPool;
use auraio_controller::{read_trace, ControllerConfig, HistogramSnapshot, LatencyHistogram};
use auraio_engine::{Engine, EngineStats, ReaperMode};

use crate::cli::RwMode;
use crate::driver::{Driver, DriverReport, LiveStats};
use crate::offsets::OffsetGen;
use crate::summary::{LatencyStats, RingLine};

mod digest;
#[cfg(test)]
mod tests;
mod worker;

pub use digest::{digest_ticks, TickDigest};
use worker::Worker;

/// Everything the engine driver needs to know.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Pattern.
    pub rw: RwMode,
    /// Block size.
    pub bs: u64,
    /// O_DIRECT.
    pub direct: bool,
    /// Region of the file used.
    pub size: u64,
    /// Test file (ignored for `nop`).
    pub file: PathBuf,
    /// Submitting threads.
    pub threads: u32,
    /// Rings (default: one per thread).
    pub rings: Option<u32>,
    /// I/O backend.
    pub backend: auraio_engine::BackendChoice,
    /// Controller.
    pub controller: ControllerConfig,
    /// P99 ceiling.
    pub max_p99: Option<Duration>,
    /// Upper bound on the limit per ring.
    pub max_in_flight: Option<u32>,
    /// Ops kept in the backlog beyond the limit, per thread.
    pub backlog: u32,
    /// Offset seed.
    pub seed: u64,
    /// Trace file.
    pub trace: Option<PathBuf>,
    /// One I/O record in the trace per this many ops (0: none).
    pub trace_io_every: u32,
}

/// One op in this many has its application latency (call → callback) timed.
pub const APP_LAT_EVERY: u64 = 8;

/// Width of one plotted point: 10 ms ticks are too noisy to read.
pub const PLOT_BUCKET: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(super) struct Counters {
    pub(super) completed: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) errors: AtomicU64,
    /// The first failed completion's error, for the report.
    pub(super) first_error: OnceLock<String>,
}

/// The engine behind the [`Driver`] seam.
pub struct EngineDriver {
    opts: EngineOptions,
    engine: Option<Engine>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    stop: Arc<AtomicBool>,
    counters: &'static [Counters],
    app_hist: &'static LatencyHistogram,
    app_total: HistogramSnapshot,
    rings: u32,
    started: Option<Instant>,
}

impl EngineDriver {
    /// A driver; nothing happens before [`Driver::start`].
    pub fn new(opts: EngineOptions) -> Self {
        EngineDriver {
            opts,
            engine: None,
            workers: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            counters: &[],
            app_hist: Box::leak(Box::new(LatencyHistogram::new())),
            app_total: HistogramSnapshot::default(),
            rings: 0,
            started: None,
        }
    }

    fn open_file(&self) -> io::Result<File> {
        let o = &self.opts;
        let mut oo = OpenOptions::new();
        oo.read(true).write(o.rw.writes());
        if o.direct {
            oo.custom_flags(libc::O_DIRECT);
        }
        oo.open(&o.file).map_err(|e| {
            let hint = if o.direct && e.raw_os_error() == Some(libc::EINVAL) {
                " (the filesystem may not support O_DIRECT: try --buffered)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("opening {}: {e}{hint}", o.file.display()))
        })
    }

    fn totals(&self) -> (u64, u64, u64) {
        self.counters.iter().fold((0, 0, 0), |(a, b, c), x| {
            (
                a + x.completed.load(Ordering::Relaxed),
                b + x.bytes.load(Ordering::Relaxed),
                c + x.errors.load(Ordering::Relaxed),
            )
        })
    }
}

impl Driver for EngineDriver {
    fn start(&mut self) -> anyhow::Result<()> {
        let o = self.opts.clone();
        let file = if o.rw.uses_file() {
            Some(Arc::new(self.open_file()?))
        } else {
            None
        };
        let rings = o.rings.unwrap_or(o.threads).max(1);
        let mut b = Engine::builder()
            .rings(rings as usize)
            .controller(o.controller.clone())
            .reaper(ReaperMode::Never)
            .backend(o.backend);
        if let Some(p) = o.max_p99 {
            b = b.max_p99(p);
        }
        if let Some(m) = o.max_in_flight {
            b = b.max_in_flight(m);
        }
        if let Some(t) = &o.trace {
            if let Some(dir) = t.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            b = b
                .record_trace(t.clone())
                .trace_io_sample_every(o.trace_io_every)
                .trace_note(format!(
                    "auraio-bench rw={} bs={} direct={} threads={}",
                    o.rw.as_str(),
                    o.bs,
                    o.direct,
                    o.threads
                ));
        }
        let engine = b
            .build()
            .map_err(|e| anyhow::anyhow!("building the engine: {e}"))?;
        let pool = BufferPool::with_defaults();
        self.rings = engine.ring_count() as u32;
        // Leaked on purpose (a few bytes per run): callbacks then reach the
        // counters without a reference count to bump on every op.
        self.counters = Box::leak((0..o.threads).map(|_| Counters::default()).collect());
        self.started = Some(Instant::now());
        for t in 0..o.threads {
            let ring = (t % self.rings) as usize;
            let w = Worker {
                engine: engine.on_ring(ring)?,
                ring,
                file: file.clone(),
                pool: pool.clone(),
                gen: OffsetGen::new(o.rw, o.size, o.bs, o.seed, t, o.threads),
                bs: o.bs as usize,
                backlog: u64::from(o.backlog),
                stop: Arc::clone(&self.stop),
                counters: self.counters,
                me: t as usize,
                app_hist: (o.rw != RwMode::Nop).then_some(self.app_hist),
                seq: 0,
            };
            let h = std::thread::Builder::new()
                .name(format!("auraio-bench-{t}"))
                .spawn(move || w.run())?;
            self.workers.push(h);
        }
        self.engine = Some(engine);
        Ok(())
    }

    fn live(&mut self) -> LiveStats {
        let (ops, bytes, errors) = self.totals();
        let snap = self.app_hist.swap();
        self.app_total.merge(&snap);
        let (limit, batch, p99) = match &self.engine {
            Some(e) => {
                let s = e.stats();
                (
                    s.total.limit,
                    s.rings.first().map_or(0, |r| r.batch),
                    s.total.p99_ns,
                )
            }
            None => (0, 0, 0),
        };
        LiveStats {
            ops,
            bytes,
            errors,
            limit,
            batch,
            p99_ns: p99,
        }
    }

    fn stop(&mut self) -> anyhow::Result<DriverReport> {
        self.stop.store(true, Ordering::Release);
        let mut first_err = None;
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert_with(|| anyhow::anyhow!("worker: {e}"));
                }
                Err(_) => {
                    first_err.get_or_insert_with(|| anyhow::anyhow!("a worker thread panicked"));
                }
            }
        }
        let elapsed = self.started.map_or(Duration::ZERO, |s| s.elapsed());
        let Some(engine) = self.engine.take() else {
            anyhow::bail!("the driver was not started");
        };
        let stats = engine.stats();
        engine.shutdown();
        drop(engine);
        if let Some(e) = first_err {
            return Err(e);
        }
        let snap = self.app_hist.swap();
        self.app_total.merge(&snap);
        let (ops, bytes, errors) = self.totals();
        let mut report = DriverReport {
            ops,
            bytes,
            errors,
            rings: self.rings,
            app_latency: (!self.app_total.is_empty()).then(|| lat_stats(&self.app_total)),
            final_limit: stats.total.limit,
            final_batch: stats.rings.first().map_or(0, |r| r.batch),
            ring_lines: ring_lines(&stats, elapsed),
            elapsed: Some(elapsed),
            ..Default::default()
        };
        if stats.backend != "io_uring" {
            report.notes.push(format!(
                "engine backend: {}{}",
                stats.backend,
                stats
                    .fallback_reason
                    .as_deref()
                    .map(|r| format!(" (fell back: {r})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(first) = self.counters.iter().find_map(|c| c.first_error.get()) {
            if ops > 0 && errors == ops {
                anyhow::bail!("every one of the {ops} ops failed; the first with: {first}");
            }
            report.notes.push(format!(
                "{errors} of {ops} ops failed; the first with: {first}"
            ));
        }
        match &self.opts.trace {
            Some(path) => match read_trace(path) {
                Ok(trace) => {
                    let tick = Duration::from_millis(trace.header.tick_ms.max(1));
                    let d = digest_ticks(&trace.ticks, tick, PLOT_BUCKET.max(tick));
                    report.timeline = d.timeline;
                    report.limit_series = d.limit_series;
                    report.latency = lat_stats(&d.latency);
                    report.in_flight_mean = d.in_flight_mean;
                    report.stalled_share = d.stalled_share;
                    report.settled = d.settled;
                }
                Err(e) => report.notes.push(format!(
                    "could not read back the trace {}: {e}",
                    path.display()
                )),
            },
            None => report
                .notes
                .push("no trace recorded: completion latencies unavailable".into()),
        }
        Ok(report)
    }
}

/// Latency summary of a histogram.
pub fn lat_stats(h: &HistogramSnapshot) -> LatencyStats {
    LatencyStats {
        samples: h.count(),
        min: h.min_ns(),
        mean: h.mean_ns(),
        p50: h.p50_ns(),
        p99: h.p99_ns(),
        p999: h.p999_ns(),
        max: h.max_ns(),
    }
}

fn ring_lines(s: &EngineStats, elapsed: Duration) -> Vec<RingLine> {
    let secs = elapsed.as_secs_f64();
    s.rings
        .iter()
        .map(|r| RingLine {
            ring: r.ring,
            ops: r.completions,
            iops: if secs > 0.0 {
                r.completions as f64 / secs
            } else {
                0.0
            },
            limit: r.limit,
            batch: r.batch,
            phase: r.phase.clone(),
            p99_ns: r.p99_ns,
            in_flight_peak: r.peak_in_flight,
            sqes_per_enter: r.sqes_per_enter,
            errors: r.errors,
        })
        .collect()
}
