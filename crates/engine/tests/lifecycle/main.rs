//! Re-entrancy, cancel, dropped futures, shutdown, panics, threads, stats,
//! traces: the engine's lifecycle guarantees.

#[path = "../common/mod.rs"]
mod common;

mod cancel_and_drop;
mod delivery;
mod failures;
mod observability;
mod rings;
mod setters;
mod shutdown;

use std::time::Duration;

use auraio_engine::{ControllerConfig, Engine, ReaperMode};

/// Waits (up to 10 s) for `cond`, which a background thread makes true.
fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn fixed_engine(limit: u32, reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: limit,
            batch: 1,
        })
        .reaper(reaper)
        .build()
        .unwrap()
}
