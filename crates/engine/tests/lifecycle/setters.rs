//! Runtime setters: batch, limits and p99 target take effect, limit changes
//! apply the controller's batch at once, pinned batches stay.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auraio_engine::{ControllerConfig, Engine, ReaperMode};

use crate::eventually;

#[test]
fn runtime_setters_take_effect() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 8,
            batch: 4,
        })
        .build()
        .unwrap();
    e.set_batch_threshold(Some(3));
    assert_eq!(e.batch_threshold(0), Some(3));
    assert_eq!(e.batch_threshold(1), Some(3));
    e.set_max_in_flight(2);
    assert_eq!(
        e.in_flight_limit(0),
        Some(2),
        "limit clamped to the new max"
    );
    e.set_max_in_flight(64);
    e.set_min_in_flight(16);
    assert_eq!(
        e.in_flight_limit(1),
        Some(16),
        "limit raised to the new min"
    );
    e.set_max_p99(Duration::from_millis(5));
    let ticks = |e: &Engine| e.stats().rings[0].window_secs;
    let before = ticks(&e);
    eventually(|| ticks(&e) > before, "a few ticks");
    assert_eq!(e.batch_threshold(0), Some(3), "override survives ticks");
    e.set_batch_threshold(None);
    eventually(
        || e.batch_threshold(0) == Some(4),
        "controller decides again",
    );
    assert!(e.on_ring(2).is_err());
    let pinned = e.on_ring(1).unwrap();
    let h = pinned.nop(|r| r.unwrap()).unwrap();
    assert_eq!(h.ring(), 1);
    pinned.run_until_idle().unwrap();
}

#[test]
fn limit_setters_apply_the_controllers_batch_at_once() {
    // Ticks far apart: only the setter itself can change the batch here.
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 8,
            batch: 4,
        })
        .tick_interval(Duration::from_secs(3600))
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    assert_eq!(e.batch_threshold(0), Some(4));
    // The fixed policy clamps its batch into [1, limit].
    e.set_max_in_flight(2);
    assert_eq!(e.in_flight_limit(0), Some(2));
    assert_eq!(
        e.batch_threshold(0),
        Some(2),
        "the batch follows the controller's new decision without a tick"
    );
    e.set_max_in_flight(64);
    assert_eq!(e.in_flight_limit(0), Some(8));
    assert_eq!(e.batch_threshold(0), Some(4));
    // A pinned batch is not overridden by a limit change.
    e.set_batch_threshold(Some(3));
    e.set_max_in_flight(2);
    assert_eq!(e.batch_threshold(0), Some(3));
    // Ops still flow with the new settings.
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let d = Arc::clone(&done);
        e.nop(move |r| {
            r.unwrap();
            d.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 5);
}
