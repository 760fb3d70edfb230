//! The real driver: the auraio engine doing the workload.
//!
//! `threads` submitting threads, thread `i` on ring `i % rings`. Each thread
//! keeps `limit + backlog` ops accepted by the engine, where `limit` is the
//! ring's current in-flight limit: the engine's backlog always holds a few
//! ops, so the controller sees demand above its limit and the device never
//! waits for the runner. The controller alone sets the concurrency.
//! Completions run in the threads' `wait` calls (no reaper threads).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use auraio_buffer_pool::{Buffer, BufferPool};
use auraio_controller::{read_trace, ControllerConfig, HistogramSnapshot, LatencyHistogram};
use auraio_engine::{Engine, EngineStats, ReaperMode, Request};

use crate::cli::RwMode;
use crate::converge::{is_holding_phase, Settled};
use crate::driver::{Driver, DriverReport, LiveStats};
use crate::offsets::OffsetGen;
use crate::summary::{LatencyStats, RingLine, TimelinePoint};

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
struct Counters {
    completed: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// The first failed completion's error, for the report.
    first_error: OnceLock<String>,
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

/// What the trace's tick records give the summary.
#[derive(Clone, Debug, Default)]
pub struct TickDigest {
    /// Sum of the rings' limits after every tick (full resolution).
    pub limit_series: Vec<(Duration, f64)>,
    /// The timeline in `bucket`-wide points (IOPS and P99 over each bucket,
    /// the limit in force at its end).
    pub timeline: Vec<TimelinePoint>,
    /// Completion latency over the whole run (every tick's histogram merged).
    pub latency: HistogramSnapshot,
    /// Time-averaged ops in flight, summed over rings (`None` without
    /// ticks).
    pub in_flight_mean: Option<f64>,
    /// Share of the run the device stood still with ops in flight (the
    /// samples' `stalled` over their intervals, all rings; `None` without
    /// ticks).
    pub stalled_share: Option<f64>,
    /// When every ring's controller had first reported a holding phase
    /// (see [`crate::converge::Settled`]).
    pub settled: Option<Settled>,
}

/// Digests the trace's per-ring tick records: ticks of the same moment
/// (`tick`-wide slots) are summed over rings; the plot timeline uses
/// `bucket`-wide points so a person can read it.
pub fn digest_ticks(
    ticks: &[auraio_controller::TickRecord],
    tick: Duration,
    bucket: Duration,
) -> TickDigest {
    let tick_us = tick.as_micros().max(1) as u64;
    let slot = |d: Duration| (d.as_micros() as u64 + tick_us / 2) / tick_us;
    // slot -> (now, limit per ring)
    let mut limits: BTreeMap<u64, (Duration, BTreeMap<u32, u32>)> = BTreeMap::new();
    let bucket_us = bucket.as_micros().max(1) as u64;
    // bucket -> (end, completions, interval sum of ring 0.., histogram, last limit per ring)
    struct B {
        end: Duration,
        completions: u64,
        covered: BTreeMap<u32, Duration>,
        hist: HistogramSnapshot,
    }
    let mut buckets: BTreeMap<u64, B> = BTreeMap::new();
    let mut latency = HistogramSnapshot::default();
    let mut last_limit: BTreeMap<u32, u32> = BTreeMap::new();
    // ring -> (Σ in_flight_avg × interval, Σ interval), seconds
    let mut in_flight: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    let (mut stalled, mut covered) = (Duration::ZERO, Duration::ZERO);
    // ring -> the first tick it reported a holding phase at
    let mut first_hold: BTreeMap<u32, Option<Duration>> = BTreeMap::new();
    for t in ticks {
        let s = &t.sample;
        let hold = first_hold.entry(t.ring).or_default();
        if hold.is_none() && is_holding_phase(&t.state.phase) {
            *hold = Some(s.now);
        }
        latency.merge(&s.latency);
        stalled += s.stalled;
        covered += s.interval;
        let f = in_flight.entry(t.ring).or_default();
        f.0 += s.in_flight_avg * s.interval.as_secs_f64();
        f.1 += s.interval.as_secs_f64();
        let e = limits
            .entry(slot(s.now))
            .or_insert((s.now, BTreeMap::new()));
        e.1.insert(t.ring, t.decision.in_flight_limit);
        // Rings tick a few µs apart: align on the tick slot first.
        let bk = (slot(s.now) * tick_us).saturating_sub(1) / bucket_us;
        let b = buckets.entry(bk).or_insert_with(|| B {
            end: Duration::from_micros((bk + 1) * bucket_us),
            completions: 0,
            covered: BTreeMap::new(),
            hist: HistogramSnapshot::default(),
        });
        b.completions += s.completions;
        *b.covered.entry(t.ring).or_default() += s.interval;
        b.hist.merge(&s.latency);
    }
    let mut limit_series = Vec::with_capacity(limits.len());
    let mut slot_limits: Vec<(Duration, u32)> = Vec::with_capacity(limits.len());
    for (_, (now, per_ring)) in limits {
        for (r, l) in per_ring {
            last_limit.insert(r, l);
        }
        let sum: u32 = last_limit.values().sum();
        limit_series.push((now, f64::from(sum)));
        slot_limits.push((now, sum));
    }
    let mut timeline = Vec::with_capacity(buckets.len());
    let mut li = 0;
    let mut cur_limit = 0;
    for (_, b) in buckets {
        while li < slot_limits.len() && slot_limits[li].0 <= b.end {
            cur_limit = slot_limits[li].1;
            li += 1;
        }
        // Rings tick in parallel: the bucket's time is the longest coverage.
        let covered = b.covered.values().max().copied().unwrap_or_default();
        timeline.push(TimelinePoint {
            t: b.end,
            iops: if covered.is_zero() {
                0.0
            } else {
                b.completions as f64 / covered.as_secs_f64()
            },
            limit: cur_limit,
            p99_ns: b.hist.p99_ns(),
        });
    }
    let in_flight_mean = (!in_flight.is_empty()).then(|| {
        in_flight
            .values()
            .map(|&(w, t)| if t > 0.0 { w / t } else { 0.0 })
            .sum()
    });
    let stalled_share =
        (!covered.is_zero()).then(|| (stalled.as_secs_f64() / covered.as_secs_f64()).min(1.0));
    // Settled once the last ring did; never if one ring never did.
    let settled_at = if first_hold.values().all(Option::is_some) {
        first_hold.values().flatten().max().copied()
    } else {
        None
    };
    let settled = settled_at.map(|at| Settled {
        at,
        limit: slot_limits
            .iter()
            .take_while(|&&(t, _)| t <= at)
            .last()
            .map_or(0, |&(_, l)| l),
    });
    TickDigest {
        limit_series,
        timeline,
        latency,
        in_flight_mean,
        stalled_share,
        settled,
    }
}

struct Worker {
    engine: Engine,
    ring: usize,
    file: Option<Arc<File>>,
    pool: BufferPool,
    gen: OffsetGen,
    bs: usize,
    backlog: u64,
    stop: Arc<AtomicBool>,
    counters: &'static [Counters],
    me: usize,
    app_hist: Option<&'static LatencyHistogram>,
    seq: u64,
}

impl Worker {
    fn run(mut self) -> io::Result<()> {
        let mut submitted: u64 = 0;
        let result = self.main_loop(&mut submitted);
        // Let every accepted op finish (its callback touches our counters).
        let deadline = Instant::now() + Duration::from_secs(30);
        while submitted > self.counters[self.me].completed.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            self.engine.wait(Some(Duration::from_millis(10)))?;
        }
        result
    }

    fn main_loop(&mut self, submitted: &mut u64) -> io::Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let limit = u64::from(self.engine.in_flight_limit(self.ring).unwrap_or(1));
            let target = limit + self.backlog;
            let done = self.counters[self.me].completed.load(Ordering::Acquire);
            let mut outstanding = *submitted - done;
            while outstanding < target {
                self.submit_one()?;
                *submitted += 1;
                outstanding += 1;
            }
            self.engine.wait(Some(Duration::from_millis(5)))?;
        }
        Ok(())
    }

    fn submit_one(&mut self) -> io::Result<()> {
        let c: &'static Counters = &self.counters[self.me];
        // Application latency on one op in APP_LAT_EVERY: two clock reads
        // per op are a visible cost at a few hundred thousand IOPS.
        self.seq = self.seq.wrapping_add(1);
        let app = self
            .app_hist
            .filter(|_| self.seq.is_multiple_of(APP_LAT_EVERY));
        let t0 = app.map(|_| Instant::now());
        let done = move |res: io::Result<usize>| {
            match res {
                Ok(n) => {
                    c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    if c.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        let _ = c.first_error.set(e.to_string());
                    }
                }
            }
            if let (Some(h), Some(t0)) = (app, t0) {
                h.record(t0.elapsed().as_nanos() as u64);
            }
            c.completed.fetch_add(1, Ordering::Release);
        };
        let Some(file) = &self.file else {
            return self
                .engine
                .submit(Request::nop(), move |r: io::Result<()>| done(r.map(|()| 0)))
                .map(drop)
                .map_err(|e| e.into_parts().0);
        };
        let req = self.gen.next_req();
        let buf: Buffer = self
            .pool
            .alloc(self.bs)
            .map_err(|e| io::Error::other(format!("buffer pool: {e}")))?;
        let cb = move |r: io::Result<usize>, _buf: Buffer| done(r);
        let r = if req.write {
            self.engine.write(&**file, buf, req.offset, cb)
        } else {
            self.engine.read(&**file, buf, req.offset, cb)
        };
        r.map(drop).map_err(|e| e.into_parts().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auraio_controller::{ControllerState, Decision, Sample, TickRecord};

    fn tick(ring: u32, now_ms: u64, completions: u64, limit: u32, lat_ns: u64) -> TickRecord {
        let mut latency = HistogramSnapshot::default();
        for _ in 0..completions {
            latency.record(lat_ns);
        }
        TickRecord {
            ring,
            sample: Sample {
                now: Duration::from_millis(now_ms),
                interval: Duration::from_millis(10),
                completions,
                latency,
                ..Default::default()
            },
            decision: Decision {
                in_flight_limit: limit,
                batch_threshold: 8,
            },
            state: ControllerState {
                name: "test".into(),
                phase: "probing".into(),
                reason: String::new(),
            },
        }
    }

    #[test]
    fn ticks_of_two_rings_are_summed_and_bucketed() {
        // Ring 1 ticks a few µs after ring 0, like the engine's tick loop.
        let mut ticks = Vec::new();
        for i in 1..=10u64 {
            let mut t = tick(0, 10 * i, 100, 4 + i as u32, 100_000);
            // Ring 0 keeps 3 in flight for the first half, 5 after, and
            // its device stands still for 1 ms in every other tick.
            t.sample.in_flight_avg = if i <= 5 { 3.0 } else { 5.0 };
            if i % 2 == 0 {
                t.sample.stalled = Duration::from_millis(1);
            }
            ticks.push(t);
            let mut t = tick(1, 10 * i, 50, 2, 1_000_000);
            t.sample.now += Duration::from_micros(30);
            t.sample.in_flight_avg = 2.0;
            ticks.push(t);
        }
        let d = digest_ticks(&ticks, Duration::from_millis(10), Duration::from_millis(50));
        // One limit point per tick, summed over rings.
        assert_eq!(d.limit_series.len(), 10);
        assert_eq!(d.limit_series[0].1, 5.0 + 2.0);
        assert_eq!(d.limit_series[9].1, 14.0 + 2.0);
        // Two 50 ms buckets of 5 ticks: 750 completions in 50 ms.
        assert_eq!(d.timeline.len(), 2, "{:?}", d.timeline);
        assert!(
            (d.timeline[0].iops - 15_000.0).abs() < 1.0,
            "{:?}",
            d.timeline[0]
        );
        assert_eq!(d.timeline[0].t, Duration::from_millis(50));
        assert_eq!(d.timeline[0].limit, 9 + 2);
        // One third of the completions are slow: P99 is ring 1's 1 ms (±3 %).
        let p99 = d.timeline[1].p99_ns as f64;
        assert!((p99 - 1e6).abs() < 0.03e6, "{p99}");
        assert_eq!(d.latency.count(), 1500);
        let s = lat_stats(&d.latency);
        assert_eq!(s.samples, 1500);
        assert!(s.min <= 103_000 && s.max >= 970_000, "{s:?}");
        // Time-averaged in flight, summed over rings: 4 + 2.
        let m = d.in_flight_mean.unwrap();
        assert!((m - 6.0).abs() < 1e-9, "{m}");
        // 5 ms stalled over 20 ring-ticks of 10 ms.
        let s = d.stalled_share.unwrap();
        assert!((s - 0.025).abs() < 1e-9, "{s}");
    }

    #[test]
    fn settled_is_when_the_last_ring_first_held_and_a_late_reprobe_does_not_move_it() {
        let phase = |mut t: TickRecord, p: &str| {
            t.state.phase = p.into();
            t
        };
        let mut ticks = Vec::new();
        for i in 1..=10u64 {
            // Ring 0 settles at 30 ms (limit 64), re-probes at 80 ms; ring 1
            // settles at 50 ms (limit 32).
            let p0 = match i {
                3..=7 => "steady",
                _ => "probing",
            };
            let p1 = if i >= 5 { "settling" } else { "baseline" };
            let l0 = if i >= 3 { 64 } else { 16 };
            let l1 = if i >= 5 { 32 } else { 16 };
            ticks.push(phase(tick(0, 10 * i, 10, l0, 100_000), p0));
            ticks.push(phase(tick(1, 10 * i, 10, l1, 100_000), p1));
        }
        let d = digest_ticks(&ticks, Duration::from_millis(10), Duration::from_millis(50));
        assert_eq!(
            d.settled,
            Some(Settled {
                at: Duration::from_millis(50),
                limit: 64 + 32,
            })
        );
        // A ring that never holds: never settled.
        let mut never: Vec<_> = ticks.iter().filter(|t| t.ring == 1).cloned().collect();
        never.push(phase(tick(2, 100, 10, 8, 100_000), "fixed"));
        let d = digest_ticks(&never, Duration::from_millis(10), Duration::from_millis(50));
        assert_eq!(d.settled, None);
    }

    #[test]
    fn no_ticks_no_points() {
        let d = digest_ticks(&[], Duration::from_millis(10), Duration::from_millis(50));
        assert!(d.limit_series.is_empty() && d.timeline.is_empty() && d.latency.is_empty());
        assert_eq!(d.settled, None);
        assert!(d.in_flight_mean.is_none() && d.stalled_share.is_none());
    }

    #[test]
    fn nop_workload_runs_through_the_engine() {
        // A tiny real run: skips (with a reason) where io_uring is unavailable.
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.jsonl");
        let mut d = EngineDriver::new(EngineOptions {
            rw: RwMode::Nop,
            bs: 4096,
            direct: false,
            size: 4096,
            file: dir.path().join("unused"),
            threads: 1,
            rings: Some(1),
            backend: auraio_engine::BackendChoice::Auto,
            controller: "fixed:8".parse().unwrap(),
            max_p99: None,
            max_in_flight: None,
            backlog: 4,
            seed: 1,
            trace: Some(trace.clone()),
            trace_io_every: 0,
        });
        if let Err(e) = d.start() {
            eprintln!("skipping: engine cannot start here: {e:#}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        let live = d.live();
        let r = d.stop().unwrap();
        assert!(r.ops > 0 && r.ops >= live.ops, "{r:?}");
        assert_eq!(r.errors, 0);
        assert_eq!(r.final_limit, 8);
        assert_eq!(r.rings, 1);
        assert_eq!(r.ring_lines.len(), 1);
        assert!(trace.exists());
    }

    #[test]
    fn reads_a_real_file_through_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        crate::prep::prepare_file(&file, 1 << 20, true, &mut |_| {}).unwrap();
        let mut d = EngineDriver::new(EngineOptions {
            rw: RwMode::RandRead,
            bs: 4096,
            direct: false,
            size: 1 << 20,
            file,
            threads: 2,
            rings: None,
            backend: auraio_engine::BackendChoice::Auto,
            controller: "aimd".parse().unwrap(),
            max_p99: None,
            max_in_flight: None,
            backlog: 4,
            seed: 1,
            trace: None,
            trace_io_every: 0,
        });
        if let Err(e) = d.start() {
            eprintln!("skipping: engine cannot start here: {e:#}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        let r = d.stop().unwrap();
        assert!(r.ops > 0, "{r:?}");
        assert_eq!(r.errors, 0);
        assert_eq!(r.bytes, r.ops * 4096);
        assert_eq!(r.rings, 2);
        let app = r.app_latency.expect("app latency measured");
        // Each of the 2 threads times every 8th of its own ops.
        let expect = r.ops / APP_LAT_EVERY;
        assert!(
            app.samples + 2 >= expect && app.samples <= expect + 2,
            "{} app samples for {} ops",
            app.samples,
            r.ops
        );
        assert!(!r.notes.is_empty(), "no trace: a note says so");
    }
}
