//! Random 4 KiB reads from a page-cached file at a fixed depth through both
//! backends (io_uring and the blocking thread pool), printing IOPS, mean
//! latency and ops per hand-off.
//!
//! `cargo run --release -p auraio-ring --example backends -- [depth] [batch] [seconds]`

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use auraio_ring::{AnyRing, BackendChoice, Fd, Op, RingConfig};

fn arg(i: usize, default: u32) -> u32 {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let depth = arg(1, 32);
    let batch = arg(2, 8);
    let secs = arg(3, 2);
    const BS: usize = 4096;
    const BLOCKS: u64 = 16 * 1024; // 64 MiB
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    std::fs::write(&path, vec![0xA5u8; BS * BLOCKS as usize])?;
    let file = std::fs::File::open(&path)?;
    for choice in [BackendChoice::IoUring, BackendChoice::Blocking] {
        let mut ring: AnyRing<u64> = match AnyRing::new(
            &RingConfig {
                sq_entries: depth,
                batch_threshold: batch,
                ..Default::default()
            },
            choice,
        ) {
            Ok(r) => r,
            Err(e) => {
                println!("{choice}: unavailable ({e})");
                continue;
            }
        };
        let depth = depth.min(ring.capacity());
        let mut out = Vec::with_capacity(depth as usize);
        let (mut n, mut done, mut lat) = (0u64, 0u64, 0u64);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(u64::from(secs));
        while Instant::now() < end || ring.in_flight() > 0 {
            while Instant::now() < end && ring.in_flight() < depth {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let off = (rng % BLOCKS) * BS as u64;
                let op = Op::read(Fd::Raw(file.as_raw_fd()), Vec::with_capacity(BS), off);
                if ring.submit(op, n).is_err() {
                    break;
                }
                n += 1;
            }
            out.clear();
            ring.wait(1, Some(Duration::from_secs(1)), &mut out)?;
            for c in &out {
                assert_eq!(c.result, BS as i32);
                lat += c.latency_ns;
            }
            done += out.len() as u64;
        }
        let dt = t0.elapsed().as_secs_f64();
        let s = ring.stats();
        println!(
            "{:>8}: depth {depth:>3} batch {batch:>2}: {:>9.0} IOPS, mean latency {:>7.1} us, {:.1} ops per hand-off",
            ring.backend().name(),
            done as f64 / dt,
            lat as f64 / done.max(1) as f64 / 1000.0,
            s.sqes_per_submit()
        );
    }
    Ok(())
}
