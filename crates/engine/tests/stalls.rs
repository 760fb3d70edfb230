//! The time the device stood still with ops in flight reaches the
//! controller's samples and the stats.

mod common;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auraio_engine::{Engine, ReaperMode, Request};
use common::*;

fn stalled_secs(e: &Engine) -> f64 {
    e.stats().rings[0].stalled_secs
}

/// Seconds this thread has spent runnable but waiting for a CPU
/// (`/proc/thread-self/schedstat`, second field); `None` where the kernel
/// does not report it.
fn run_delay_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

#[test]
fn a_long_wait_for_a_completion_shows_as_stalled_time() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    // NOP traffic for 100 ms: the ring learns its normal gaps (a few µs).
    let done = Arc::new(AtomicU64::new(0));
    let mut submitted = 0u64;
    let waited_from = run_delay_secs();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(100) {
        for _ in 0..8 {
            let d = Arc::clone(&done);
            e.submit(Request::nop(), move |r: std::io::Result<()>| {
                r.unwrap();
                d.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
            submitted += 1;
        }
        drive_until(&e, || done.load(Ordering::Relaxed) == submitted, "nops");
    }
    let waited = waited_from.zip(run_delay_secs()).map(|(a, b)| b - a);
    std::thread::sleep(Duration::from_millis(30));
    // NOP gaps are a few µs, far under the stall threshold (≥ 250 µs): if
    // the detector counted ordinary gaps, most of the 100 ms would show.
    // Not `== 0`: this thread reaps, and while the scheduler keeps it off
    // the CPU with NOPs in flight nothing is reaped, a gap the detector
    // cannot tell from a device stall (CI saw 9.7 ms, a loaded run 38 ms).
    // So the bound is the time it waited for a CPU (1.5x, as a gap runs
    // on to the next reap), plus 10 ms; 50 ms where that is not reported.
    let before = stalled_secs(&e);
    let allowed = 0.01 + waited.map_or(0.04, |w| 1.5 * w);
    assert!(
        before < allowed,
        "NOP traffic showed {before} s of stall (allowed {allowed} s: waited {waited:?} s for a CPU)"
    );
    // A read that waits 50 ms for its data: nothing completes meanwhile.
    let (rd, wr) = pipe();
    let got = Arc::new(AtomicU64::new(0));
    let g = Arc::clone(&got);
    e.read(&rd, vec![0u8; 4], 0, move |r: std::io::Result<usize>, _| {
        g.store(r.unwrap() as u64, Ordering::Relaxed);
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: `wr` is an open pipe write end; the buffer is 4 valid bytes.
    let n = unsafe { libc::write(wr.as_raw_fd(), b"late".as_ptr().cast(), 4) };
    assert_eq!(n, 4);
    drive_until(&e, || got.load(Ordering::Relaxed) == 4, "the late read");
    // The tick that follows publishes the gap.
    let deadline = Instant::now() + Duration::from_secs(2);
    while stalled_secs(&e) - before < 0.04 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = stalled_secs(&e) - before;
    assert!(
        (0.04..1.0).contains(&s),
        "the 50 ms wait showed {s} s of stall"
    );
}
