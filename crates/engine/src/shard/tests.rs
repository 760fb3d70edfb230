//! Tests of the shard's internals (the backlog gauges).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// The backlog gauges (`backlog_len` and the meter's, which the
/// controller's samples report) follow the backlog as it grows and
/// drains, though `mirror` stores them only when the length changes.
#[test]
fn backlog_gauges_follow_the_backlog() {
    let Ok(e) = crate::Engine::builder()
        .rings(1)
        .queue_depth(8)
        .controller(auraio_controller::ControllerConfig::Fixed {
            in_flight: 1,
            batch: 1,
        })
        .reaper(crate::ReaperMode::Never)
        .build()
    else {
        eprintln!("io_uring unavailable: skipped");
        return;
    };
    let shard = &e.sh().rings[0];
    for _ in 0..4 {
        e.submit(crate::Request::nop(), |r: std::io::Result<()>| r.unwrap())
            .unwrap();
    }
    assert_eq!(shard.backlog_len.load(Relaxed), 3);
    let s = shard.meter.take_sample(Duration::from_secs(1), 1);
    assert_eq!(s.backlog, 3, "the sample sees the backlog");
    e.run_until_idle().unwrap();
    assert_eq!(shard.backlog_len.load(Relaxed), 0);
    // The first sample after draining still reports the interval's
    // peak; the next one the empty backlog.
    let _ = shard.meter.take_sample(Duration::from_secs(2), 0);
    let s = shard.meter.take_sample(Duration::from_secs(3), 0);
    assert_eq!(s.backlog, 0, "the gauge went back to 0");
}
