//! NOP submit + complete throughput: the auraio engine against a raw
//! `io-uring` loop at the same batch size. The raw loop is the baseline: it
//! is the least work the kernel interface allows, so the engine's number
//! over the raw number is the library's own per-op overhead.

use std::sync::atomic::{AtomicU64, Ordering};

use auraio_controller::ControllerConfig;
use auraio_engine::{Engine, ReaperMode, Request};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use io_uring::{opcode, IoUring};

/// Batch sizes compared (SQEs per `io_uring_enter`).
const BATCHES: [u32; 2] = [8, 32];

/// One round of the raw loop: push `batch` NOPs, one `submit_and_wait`,
/// reap every CQE.
fn raw_round(ring: &mut IoUring, batch: u32) {
    {
        let mut sq = ring.submission();
        for i in 0..batch {
            let nop = opcode::Nop::new().build().user_data(u64::from(i));
            // SAFETY: a NOP references no user memory, so nothing has to stay
            // alive until its completion; the ring has room for `batch` SQEs
            // because every round reaps all of its completions first.
            let pushed = unsafe { sq.push(&nop) };
            assert!(pushed.is_ok(), "submission queue full");
        }
    }
    let submitted = ring.submit_and_wait(batch as usize);
    assert!(submitted.is_ok(), "submit_and_wait: {submitted:?}");
    let mut reaped = 0;
    for cqe in ring.completion() {
        assert!(cqe.result() >= 0);
        reaped += 1;
    }
    assert_eq!(reaped, batch);
}

fn bench_raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    for batch in BATCHES {
        g.throughput(Throughput::Elements(u64::from(batch)));
        let Ok(mut ring) = IoUring::new(256) else {
            eprintln!("io_uring unavailable here: skipping the raw NOP bench");
            return;
        };
        g.bench_with_input(BenchmarkId::new("raw_io_uring", batch), &batch, |b, &n| {
            b.iter(|| raw_round(&mut ring, n))
        });
    }
    g.finish();
}

/// Completions seen by the engine benchmark's callbacks (a static, so the
/// callback captures nothing and costs no allocation of its own).
static DONE: AtomicU64 = AtomicU64::new(0);

/// One round through the engine: `batch` NOPs submitted (the batch threshold
/// hands them to the kernel in one `io_uring_enter`), then `wait` until all
/// of their callbacks ran.
fn engine_round(engine: &Engine, batch: u32) {
    let target = DONE.load(Ordering::Relaxed) + u64::from(batch);
    for _ in 0..batch {
        let r = engine.submit(Request::nop(), |_r: std::io::Result<()>| {
            DONE.fetch_add(1, Ordering::Relaxed);
        });
        assert!(r.is_ok(), "engine refused a NOP");
    }
    while DONE.load(Ordering::Relaxed) < target {
        let r = engine.wait(None);
        assert!(r.is_ok(), "wait: {r:?}");
    }
}

fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    for batch in BATCHES {
        g.throughput(Throughput::Elements(u64::from(batch)));
        let Some(engine) = nop_engine(batch) else {
            return;
        };
        g.bench_with_input(BenchmarkId::new("engine", batch), &batch, |b, &n| {
            b.iter(|| engine_round(&engine, n))
        });
    }
    g.finish();
}

/// One round through [`Engine::submit_batch`]: the same `batch` NOPs as
/// [`engine_round`], handed over in one call (one ring lock, no `OpHandle`
/// per op, one `io_uring_enter`), then `wait` until all callbacks ran.
fn engine_batch_round(engine: &Engine, batch: u32) {
    let target = DONE.load(Ordering::Relaxed) + u64::from(batch);
    let ops = (0..batch).map(|_| {
        (Request::nop(), |_r: std::io::Result<()>| {
            DONE.fetch_add(1, Ordering::Relaxed);
        })
    });
    let r = engine.submit_batch(ops);
    assert!(
        matches!(r, Ok(n) if n == batch as usize),
        "engine refused a NOP batch"
    );
    while DONE.load(Ordering::Relaxed) < target {
        let r = engine.wait(None);
        assert!(r.is_ok(), "wait: {r:?}");
    }
}

/// The engine every NOP bench uses, or `None` where none can be built: one
/// ring, the limit far above the batch so it never holds ops back, and the
/// batch threshold pinned to the raw loop's batch. A pinned batch is taken
/// as asked (the first NOP of a round is not sent ahead alone), so a round
/// is one `io_uring_enter`, as in the raw loop.
fn nop_engine(batch: u32) -> Option<Engine> {
    let engine = Engine::builder()
        .rings(1)
        .queue_depth(256)
        .controller(ControllerConfig::Fixed {
            in_flight: 256,
            batch,
        })
        .batch_threshold(Some(batch))
        .reaper(ReaperMode::Never)
        .build();
    match engine {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("engine unavailable here ({e}): skipping the engine NOP bench");
            None
        }
    }
}

fn bench_engine_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    for batch in BATCHES {
        g.throughput(Throughput::Elements(u64::from(batch)));
        let Some(engine) = nop_engine(batch) else {
            return;
        };
        g.bench_with_input(BenchmarkId::new("engine_batch", batch), &batch, |b, &n| {
            b.iter(|| engine_batch_round(&engine, n))
        });
    }
    g.finish();
}

/// criterion is built without its plotters backend (see the workspace
/// Cargo.toml), so no font is needed and no plots are drawn.
fn config() -> Criterion {
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_raw, bench_engine, bench_engine_batch
}

/// CPU-time mode, for `perf stat` (criterion's wall clock moves 5-30 % with
/// the other jobs on a shared machine; CPU time per NOP much less):
/// `AURAIO_NOP_CPU=<raw|engine|engine_batch>:<batch>:<rounds>` runs exactly
/// that many rounds of that bench's loop once, with no criterion around it,
/// and prints the wall rate. Example (3.2 M NOPs):
///
/// ```sh
/// AURAIO_NOP_CPU=engine:32:100000 perf stat -e task-clock target/release/deps/nop-<hash>
/// ```
///
/// CPU ns per NOP = task-clock (ms) × 10⁶ / (batch × rounds).
fn cpu_mode(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let (Some(&kind), Some(Ok(batch)), Some(Ok(rounds))) = (
        parts.first(),
        parts.get(1).map(|b| b.parse::<u32>()),
        parts.get(2).map(|r| r.parse::<u64>()),
    ) else {
        eprintln!(
            "AURAIO_NOP_CPU must be <raw|engine|engine_batch>:<batch>:<rounds>, got {spec:?}"
        );
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    match kind {
        "raw" => {
            let Ok(mut ring) = IoUring::new(256) else {
                eprintln!("io_uring unavailable here");
                std::process::exit(1);
            };
            for _ in 0..rounds {
                raw_round(&mut ring, batch);
            }
        }
        "engine" | "engine_batch" => {
            let Some(engine) = nop_engine(batch) else {
                std::process::exit(1);
            };
            for _ in 0..rounds {
                if kind == "engine" {
                    engine_round(&engine, batch);
                } else {
                    engine_batch_round(&engine, batch);
                }
            }
        }
        other => {
            eprintln!("unknown NOP bench {other:?} (raw, engine or engine_batch)");
            std::process::exit(2);
        }
    }
    let nops = rounds * u64::from(batch);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{kind}/{batch}: {nops} NOPs in {secs:.3} s wall = {:.2} M NOP/s",
        nops as f64 / secs / 1e6
    );
}

/// The engine loops the ratio table compares with the raw loop.
const ENGINE_KINDS: [&str; 2] = ["engine", "engine_batch"];

/// Interleaved pairs per ratio…
const RATIO_PAIRS: usize = 15;
/// …each side running for about this long.
const RATIO_SIDE: std::time::Duration = std::time::Duration::from_millis(40);

/// Seconds `rounds` rounds of `kind` take.
fn time_rounds(kind: &str, ring: &mut IoUring, engine: &Engine, batch: u32, rounds: u64) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        match kind {
            "raw" => raw_round(ring, batch),
            "engine" => engine_round(engine, batch),
            _ => engine_batch_round(engine, batch),
        }
    }
    start.elapsed().as_secs_f64()
}

/// Median and range of `v` (sorted in place; `v` is not empty).
fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The target's ratio, engine ÷ raw, from interleaved runs. criterion
/// measures `raw_io_uring/B` and `engine/B` a minute apart, and on a
/// shared machine the other jobs move a rate 5-30 % in that time; here
/// each pair runs the raw loop and an engine loop back to back for
/// ≈ 40 ms each (alternating which goes first), so a drift hits both
/// sides of a pair alike. Printed after criterion's report.
fn ratio_table() {
    let Ok(mut ring) = IoUring::new(256) else {
        eprintln!("io_uring unavailable here: no ratio table");
        return;
    };
    println!(
        "\nengine ÷ raw io-uring loop, same batch: {RATIO_PAIRS} interleaved pairs of ≈ {} ms a side",
        RATIO_SIDE.as_millis()
    );
    println!("  (median ratio, range; M NOP/s are the medians of each side)");
    for batch in BATCHES {
        let Some(engine) = nop_engine(batch) else {
            return;
        };
        // Rounds for ≈ RATIO_SIDE of the raw loop (after a warm-up).
        let probe = 2_000;
        time_rounds("raw", &mut ring, &engine, batch, probe);
        let per_round = time_rounds("raw", &mut ring, &engine, batch, probe) / probe as f64;
        let rounds = ((RATIO_SIDE.as_secs_f64() / per_round.max(1e-9)) as u64).max(100);
        let nops = (rounds * u64::from(batch)) as f64;
        for kind in ENGINE_KINDS {
            time_rounds(kind, &mut ring, &engine, batch, rounds / 4);
            let (mut ratios, mut raw_rates, mut eng_rates) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..RATIO_PAIRS {
                let (raw, eng) = if i % 2 == 0 {
                    let r = time_rounds("raw", &mut ring, &engine, batch, rounds);
                    (r, time_rounds(kind, &mut ring, &engine, batch, rounds))
                } else {
                    let e = time_rounds(kind, &mut ring, &engine, batch, rounds);
                    (time_rounds("raw", &mut ring, &engine, batch, rounds), e)
                };
                ratios.push(raw / eng);
                raw_rates.push(nops / raw / 1e6);
                eng_rates.push(nops / eng / 1e6);
            }
            let (m, lo, hi) = median_range(&mut ratios);
            let (raw_m, ..) = median_range(&mut raw_rates);
            let (eng_m, ..) = median_range(&mut eng_rates);
            println!(
                "  {:<12} batch {batch:>2}: {:5.1} %  ({:.1}-{:.1} %)   raw {raw_m:.2} vs {eng_m:.2} M NOP/s",
                kind,
                m * 100.0,
                lo * 100.0,
                hi * 100.0
            );
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("AURAIO_NOP_CPU") {
        cpu_mode(&spec);
        return;
    }
    // `AURAIO_NOP_RATIO=only`: the ratio table alone; `=off`: criterion
    // alone.
    let ratio = std::env::var("AURAIO_NOP_RATIO").unwrap_or_default();
    if ratio != "only" {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // Only under `cargo bench` (cargo passes `--bench`; `cargo test` runs
    // this binary without it, as a smoke test of each bench).
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if (bench_mode || ratio == "only") && ratio != "off" {
        ratio_table();
    }
}
