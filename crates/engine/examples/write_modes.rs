//! O_DIRECT versus buffered writes of the same data, timed and verified.
//!
//! `cargo run --release --example write_modes [MiB]` (default 64)

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auraio_engine::{BufferPool, Engine};

const BLOCK: usize = 256 * 1024;

fn fill(buf: &mut [u8], block: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((i as u64).wrapping_mul(31) ^ block.wrapping_mul(7919)) as u8;
    }
}

fn write_file(
    engine: &Engine,
    pool: &BufferPool,
    path: &Path,
    mib: u64,
    direct: bool,
) -> std::io::Result<Duration> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if direct {
        opts.custom_flags(libc::O_DIRECT);
    }
    let file = Arc::new(opts.open(path)?);
    let blocks = mib * (1 << 20) / BLOCK as u64;
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for b in 0..blocks {
        // Pool buffers are aligned for O_DIRECT.
        let mut buf = pool.alloc(BLOCK).map_err(std::io::Error::other)?;
        fill(&mut buf, b);
        let (f, er) = (Arc::clone(&file), Arc::clone(&errors));
        engine.write(&*file, buf, b * BLOCK as u64, move |res, _buf| {
            let _keep = f;
            if !matches!(res, Ok(n) if n == BLOCK) {
                er.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        engine.poll()?;
    }
    engine.run_until_idle()?;
    // Durable: both modes end with an fsync.
    let synced = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&synced);
    engine.fsync(&*file, move |r| {
        if r.is_ok() {
            s2.store(1, Ordering::Relaxed);
        }
    })?;
    engine.run_until_idle()?;
    let el = start.elapsed();
    if errors.load(Ordering::Relaxed) != 0 || synced.load(Ordering::Relaxed) != 1 {
        return Err(std::io::Error::other("a write or the fsync failed"));
    }
    Ok(el)
}

fn verify(path: &Path, mib: u64) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; BLOCK];
    let mut want = vec![0u8; BLOCK];
    for b in 0..mib * (1 << 20) / BLOCK as u64 {
        f.read_exact(&mut buf)?;
        fill(&mut want, b);
        if buf != want {
            return Err(std::io::Error::other(format!("block {b} differs")));
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir()?;
    let engine = Engine::new()?;
    let pool = BufferPool::with_defaults();
    for (name, direct) in [("buffered", false), ("O_DIRECT", true)] {
        let p = dir.path().join(format!("{name}.bin"));
        let el = match write_file(&engine, &pool, &p, mib, direct) {
            Ok(el) => el,
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                println!("{name:>9}: not supported on this filesystem ({e})");
                continue;
            }
            Err(e) => return Err(e),
        };
        verify(&p, mib)?;
        println!(
            "{name:>9}: {mib} MiB in {:>7.1} ms = {:>7.1} MiB/s (incl. fsync), verified",
            el.as_secs_f64() * 1e3,
            mib as f64 / el.as_secs_f64()
        );
    }
    let st = engine.stats();
    println!(
        "engine: {} writes+syncs, {} errors, peak in flight {}, p99 {} us",
        st.total.completions,
        st.total.errors,
        st.total.peak_in_flight,
        st.total.lifetime_p99_ns / 1000
    );
    Ok(())
}
