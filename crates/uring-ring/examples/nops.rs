//! Pushes NOPs through one ring at a fixed depth and prints the rate and the
//! SQEs per `io_uring_enter`.
//!
//! `cargo run --release -p auraio-ring --example nops -- [depth] [batch] [count]`

use std::time::Instant;

use auraio_ring::{Op, Ring, RingConfig};

fn arg(i: usize, default: u32) -> u32 {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let depth = arg(1, 64);
    let batch = arg(2, 8);
    let count = u64::from(arg(3, 2_000_000));
    let mut ring: Ring<u64> = Ring::new(&RingConfig {
        sq_entries: depth,
        batch_threshold: batch,
        ..Default::default()
    })?;
    let depth = depth.min(ring.capacity());
    let mut out = Vec::with_capacity(depth as usize);
    let (mut sent, mut done, mut lat_sum) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    while done < count {
        while sent < count && ring.in_flight() < depth {
            ring.submit(Op::Nop, sent).map_err(std::io::Error::from)?;
            sent += 1;
        }
        out.clear();
        ring.wait(1, None, &mut out)?;
        for c in &out {
            lat_sum += c.latency_ns;
        }
        done += out.len() as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let s = ring.stats();
    println!(
        "depth {depth} batch {batch}: {:.2} M nops/s, {} enters, {:.1} SQEs/submit, mean latency {:.0} ns",
        count as f64 / secs / 1e6,
        s.enter_calls,
        s.sqes_per_submit(),
        lat_sum as f64 / count as f64
    );
    Ok(())
}
