//! The engine's background threads: the per-ring reapers (started with the
//! first future) and the controller tick thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use auraio_ring::Completion;

use crate::op_state::Target;

use super::{lock, Shared};

/// How long a background reaper blocks in the kernel before re-checking for
/// shutdown (it is also woken by a NOP at shutdown).
const REAPER_WAIT: Duration = Duration::from_millis(50);

pub(super) fn reaper_loop(sh: Arc<Shared>, idx: usize) {
    let shard = &sh.rings[idx];
    let mut buf: Vec<Completion<Target>> = Vec::with_capacity(64);
    let mut reported = false;
    while !sh.closed.load(Ordering::Acquire) {
        match shard.poll(&sh, &mut buf) {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                if !reported {
                    eprintln!("auraio: reaper for ring {idx}: poll failed: {e}");
                    reported = true;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
        if sh.closed.load(Ordering::Acquire) {
            break;
        }
        // Completions held back by fault injection are delivered by a poll
        // once due: do not sleep past that.
        let slice = shard.held_due_in().map_or(REAPER_WAIT, |d| {
            d.clamp(Duration::from_micros(50), REAPER_WAIT)
        });
        if shard.waiter.wait(1, Some(slice)).is_err() {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

pub(super) fn tick_loop(sh: Arc<Shared>) {
    let mut next = Instant::now() + sh.tick;
    loop {
        {
            let mut stop = lock(&sh.stop_tick);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = sh
                    .stop_cv
                    .wait_timeout(stop, next - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        let now_i = Instant::now();
        next += sh.tick;
        if next < now_i {
            next = now_i + sh.tick;
        }
        let now = sh.start.elapsed();
        for shard in &sh.rings {
            // A panicking controller (e.g. a custom one) must not take the
            // tick thread down: the ring keeps its last decision.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.tick(&sh, now)));
            if r.is_err() && !sh.tick_panic_reported.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "auraio: the controller of ring {} panicked during a tick; \
                     its ring keeps the last decision",
                    shard.idx
                );
            }
        }
    }
}
