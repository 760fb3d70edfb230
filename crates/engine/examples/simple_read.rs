//! Reads a whole file in concurrent chunks, verifies it, and prints the
//! engine's statistics.
//!
//! `cargo run --example simple_read [FILE]` (default: a 64 MiB temp file)

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use auraio_engine::Engine;

const CHUNK: usize = 256 * 1024;

fn fnv1a(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn main() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = dir.path().join("data.bin");
            let mut f = std::fs::File::create(&p)?;
            let block: Vec<u8> = (0..1 << 20)
                .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
                .collect();
            for i in 0..64u8 {
                let mut b = block.clone();
                b[0] = i;
                f.write_all(&b)?;
            }
            f.sync_all()?;
            p
        }
    };
    let file = Arc::new(std::fs::File::open(&path)?);
    let size = file.metadata()?.len();
    let chunks = size.div_ceil(CHUNK as u64) as usize;

    let engine = Engine::new()?;
    let parts: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::new(Mutex::new(vec![None; chunks]));
    let start = Instant::now();
    for i in 0..chunks {
        let parts = Arc::clone(&parts);
        let f = Arc::clone(&file); // keep the file open until the callback
        engine.read(
            &*file,
            Vec::with_capacity(CHUNK),
            (i * CHUNK) as u64,
            move |res, buf| {
                let _keep = f;
                match res {
                    Ok(_) => parts.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(buf),
                    Err(e) => eprintln!("chunk {i}: {e}"),
                }
            },
        )?;
    }
    engine.run_until_idle()?;
    let elapsed = start.elapsed();
    // Let one controller tick publish the last completions, then snapshot.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let st = engine.stats();

    // Verify against a plain sequential read.
    let mut h_engine = 0xcbf2_9ce4_8422_2325u64;
    let mut got = 0u64;
    for p in parts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let Some(b) = p else {
            return Err(std::io::Error::other("a chunk failed"));
        };
        fnv1a(&mut h_engine, b);
        got += b.len() as u64;
    }
    let mut h_std = 0xcbf2_9ce4_8422_2325u64;
    let mut all = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut all)?;
    fnv1a(&mut h_std, &all);
    println!(
        "read {} in {chunks} chunks of {} KiB: {got} bytes in {:.1} ms ({:.0} MiB/s)",
        path.display(),
        CHUNK / 1024,
        elapsed.as_secs_f64() * 1e3,
        got as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
    if got != size || h_engine != h_std {
        return Err(std::io::Error::other("verification FAILED"));
    }
    println!("verified: checksum {h_engine:016x} matches a plain read");

    println!(
        "stats: completions {} bytes {} errors {} | peak in flight {} | SQEs/enter {:.1} | p50 {} us p99 {} us",
        st.total.completions,
        st.total.bytes,
        st.total.errors,
        st.total.peak_in_flight,
        st.total.sqes_per_enter,
        st.total.lifetime_p50_ns / 1000,
        st.total.lifetime_p99_ns / 1000
    );
    for r in &st.rings {
        println!(
            "  ring {}: limit {} batch {} phase {} completions {}",
            r.ring, r.limit, r.batch, r.phase, r.completions
        );
    }
    println!(
        "as JSON: {}",
        serde_json::to_string(&st.total).map_err(std::io::Error::other)?
    );
    Ok(())
}
