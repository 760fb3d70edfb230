//! Copies a file with async/await under tokio, several chunks in flight, and
//! verifies the copy.
//!
//! `cargo run --release --example async_copy [SRC DST]` (default: a 32 MiB
//! temp file)

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use auraio_engine::Engine;

const CHUNK: u64 = 1 << 20;
const WORKERS: u64 = 8;

fn main() -> std::io::Result<()> {
    let tmp = tempfile::tempdir()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, dst) = if args.len() == 2 {
        (args[0].clone().into(), args[1].clone().into())
    } else {
        let src = tmp.path().join("src.bin");
        let mut f = std::fs::File::create(&src)?;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let data: Vec<u8> = (0..32 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        f.write_all(&data)?;
        (src, tmp.path().join("dst.bin"))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let engine = Engine::new()?;
    let start = Instant::now();
    let copied = rt.block_on(copy(engine.clone(), &src, &dst))?;
    let el = start.elapsed();
    println!(
        "copied {} -> {}: {copied} bytes in {:.1} ms ({:.0} MiB/s)",
        src.display(),
        dst.display(),
        el.as_secs_f64() * 1e3,
        copied as f64 / (1 << 20) as f64 / el.as_secs_f64()
    );
    let (a, b) = (std::fs::read(&src)?, std::fs::read(&dst)?);
    if a != b {
        return Err(std::io::Error::other("verification FAILED: copy differs"));
    }
    println!("verified: {} bytes identical", a.len());
    let st = engine.stats();
    println!(
        "engine: {} ops, peak in flight {}, errors {}",
        st.total.completions, st.total.peak_in_flight, st.total.errors
    );
    Ok(())
}

async fn copy(
    engine: Engine,
    src: &std::path::Path,
    dst: &std::path::Path,
) -> std::io::Result<u64> {
    let src = Arc::new(std::fs::File::open(src)?);
    let dst = Arc::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dst)?,
    );
    let len = src.metadata()?.len();
    let chunks = len.div_ceil(CHUNK);
    // WORKERS tasks, each copying every WORKERS-th chunk: read, then write
    // the same buffer back out.
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (engine, src, dst) = (engine.clone(), Arc::clone(&src), Arc::clone(&dst));
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(CHUNK as usize);
            let mut copied = 0u64;
            let mut c = w;
            while c < chunks {
                buf.clear();
                let (res, b) = engine.read_at(&*src, buf, c * CHUNK).await;
                let n = res?;
                let (res, b) = engine.write_at(&*dst, b, c * CHUNK).await;
                if res? != n {
                    return Err(std::io::Error::other("short write"));
                }
                copied += n as u64;
                buf = b;
                c += WORKERS;
            }
            Ok::<u64, std::io::Error>(copied)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(std::io::Error::other)??;
    }
    engine.fsync_async(&*dst).await?;
    Ok(total)
}
