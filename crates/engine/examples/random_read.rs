//! Random 4 KiB O_DIRECT reads with a chosen controller; prints the limit
//! trajectory and IOPS.
//!
//! `cargo run --release --example random_read -- [controller] [secs] [file MiB] [demand]`
//! e.g. `aimd 5 256 256` or `fixed:64 3`. `AURAIO_TRACE=path` records a
//! trace; `AURAIO_INITIAL=n` sets the starting limit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auraio_engine::{BufferPool, ControllerConfig, Engine, ReaperMode};

struct Ctx {
    engine: Engine,
    file: File,
    pool: BufferPool,
    blocks: u64,
    seed: AtomicU64,
    stop: AtomicBool,
    done: AtomicU64,
    errors: AtomicU64,
}

fn next_offset(ctx: &Ctx) -> u64 {
    let mut z = ctx
        .seed
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % ctx.blocks) * 4096
}

fn issue(ctx: Arc<Ctx>) {
    if ctx.stop.load(Ordering::Relaxed) {
        return;
    }
    let buf = match ctx.pool.alloc(4096) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("alloc: {e}");
            return;
        }
    };
    let off = next_offset(&ctx);
    let c2 = Arc::clone(&ctx);
    let r = ctx.engine.read(&ctx.file, buf, off, move |r, _buf| {
        if !matches!(r, Ok(4096)) {
            c2.errors.fetch_add(1, Ordering::Relaxed);
        }
        c2.done.fetch_add(1, Ordering::Relaxed);
        issue(c2);
    });
    if let Err(e) = r {
        eprintln!("submit: {e}");
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let controller: ControllerConfig = args
        .first()
        .map(|s| s.parse())
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?
        .unwrap_or_default();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mib: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let demand: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("random.dat");
    {
        let mut f = File::create(&path)?;
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        for _ in 0..mib {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)?;
    let mut b = Engine::builder()
        .rings(1)
        .controller(controller.clone())
        .reaper(ReaperMode::Never);
    if let Ok(n) = std::env::var("AURAIO_INITIAL") {
        b = b.initial_in_flight(n.parse().unwrap_or(16));
    }
    if let Ok(t) = std::env::var("AURAIO_TRACE") {
        // Record a trace (JSON lines) of every tick and 1 in 64 reads.
        b = b.record_trace(t).trace_io_sample_every(64);
    }
    let engine = b.build()?;
    let ctx = Arc::new(Ctx {
        engine: engine.clone(),
        file,
        pool: BufferPool::with_defaults(),
        blocks: mib * 256,
        seed: AtomicU64::new(7),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    println!(
        "controller {controller}, {mib} MiB file, {demand} requests outstanding, {secs} s; initial limit {}",
        engine.in_flight_limit(0).unwrap_or(0)
    );
    for _ in 0..demand {
        issue(Arc::clone(&ctx));
    }
    let start = Instant::now();
    let mut next = Duration::from_millis(500);
    let mut last = (0u64, Duration::ZERO);
    while start.elapsed() < Duration::from_secs(secs) {
        engine.wait(Some(Duration::from_millis(5)))?;
        let el = start.elapsed();
        if el >= next {
            let done = ctx.done.load(Ordering::Relaxed);
            let st = engine.stats();
            let r = &st.rings[0];
            println!(
                "t={:>5.1}s limit={:>4} batch={:>3} iops={:>8.0} p99={:>6}us phase={}",
                el.as_secs_f64(),
                r.limit,
                r.batch,
                (done - last.0) as f64 / (el - last.1).as_secs_f64(),
                r.p99_ns / 1000,
                r.phase
            );
            last = (done, el);
            next += Duration::from_millis(500);
        }
    }
    ctx.stop.store(true, Ordering::Relaxed);
    engine.run_until_idle()?;
    let total = ctx.done.load(Ordering::Relaxed);
    println!(
        "total {} reads ({} errors) in {:.2} s = {:.0} IOPS; final limit {}",
        total,
        ctx.errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        total as f64 / start.elapsed().as_secs_f64(),
        engine.in_flight_limit(0).unwrap_or(0)
    );
    Ok(())
}
