//! Reads every file under a directory with high concurrency.
//!
//! `cargo run --release --example bulk_reader [DIR]` (default: a generated
//! temp tree of 400 files, 4 KiB to 1 MiB)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use auraio_engine::{BufferPool, Engine};

const CHUNK: usize = 128 * 1024;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn generate(root: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut x = 12345u64;
    for d in 0..8 {
        let sub = root.join(format!("dir{d}")).join("nested");
        std::fs::create_dir_all(&sub)?;
        for f in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 4096 + (x % (1 << 20)) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ x) as u8).collect();
            std::fs::File::create(sub.join(format!("file{f}.bin")))?.write_all(&data)?;
            total += len as u64;
        }
    }
    Ok(total)
}

fn main() -> std::io::Result<()> {
    let tmp = tempfile::tempdir()?;
    let (root, expected) = match std::env::args().nth(1) {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let total = generate(tmp.path())?;
            (tmp.path().to_path_buf(), Some(total))
        }
    };
    let mut files = Vec::new();
    walk(&root, &mut files)?;
    let engine = Engine::new()?;
    let pool = BufferPool::with_defaults();
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut expected_from_meta = 0u64;
    let start = Instant::now();
    let mut ops = 0u64;
    for p in &files {
        let f = match std::fs::File::open(p) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                eprintln!("skip {}: {e}", p.display());
                continue;
            }
        };
        let len = f.metadata()?.len();
        expected_from_meta += len;
        let mut off = 0u64;
        while off < len {
            let n = CHUNK.min((len - off) as usize);
            let buf = pool.alloc(n).map_err(std::io::Error::other)?;
            let (b, er, keep) = (Arc::clone(&bytes), Arc::clone(&errors), Arc::clone(&f));
            // Every chunk of every file is submitted at once: the engine holds
            // what exceeds the in-flight limit in its backlog.
            engine.read(&*f, buf, off, move |res, _buf| {
                let _file_stays_open = keep;
                match res {
                    Ok(n) => {
                        b.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        er.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
            ops += 1;
            off += n as u64;
        }
        // Reap as we go so callbacks (and buffers) do not pile up.
        engine.poll()?;
    }
    engine.run_until_idle()?;
    let el = start.elapsed();
    let got = bytes.load(Ordering::Relaxed);
    let st = engine.stats();
    println!(
        "{} files, {} reads, {:.1} MiB in {:.1} ms = {:.0} MiB/s; errors {}",
        files.len(),
        ops,
        got as f64 / (1 << 20) as f64,
        el.as_secs_f64() * 1e3,
        got as f64 / (1 << 20) as f64 / el.as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "peak in flight {} (sum over {} rings), limits now {:?}, SQEs/enter {:.1}",
        st.total.peak_in_flight,
        st.rings.len(),
        st.rings.iter().map(|r| r.limit).collect::<Vec<_>>(),
        st.total.sqes_per_enter
    );
    if got != expected_from_meta || expected.is_some_and(|e| e != got) {
        return Err(std::io::Error::other(format!(
            "verification FAILED: read {got} bytes, files hold {expected_from_meta}"
        )));
    }
    println!("verified: bytes read = total file size ({got})");
    Ok(())
}
