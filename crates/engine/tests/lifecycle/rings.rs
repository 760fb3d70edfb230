//! The rings: a pinned handle drives only its ring, SQPOLL is used or
//! falls back and is reported, round-robin spreads ops over the rings.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auraio_engine::{Engine, ReaperMode};

use crate::common::*;

#[test]
fn a_pinned_handle_drives_only_its_ring() {
    let e = engine(ReaperMode::Never);
    let (h0, h1) = (e.on_ring(0).unwrap(), e.on_ring(1).unwrap());
    let ran = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&ran);
    h0.nop(move |res| {
        res.unwrap();
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(h0.pending(), 1);
    assert_eq!(h1.pending(), 0);
    assert_eq!(e.pending(), 1);
    // Ring 1's driver neither reaps nor runs ring 0's callback.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(h1.poll().unwrap(), 0);
    assert_eq!(h1.wait(Some(Duration::from_millis(5))).unwrap(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    h0.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(e.pending(), 0);
}

#[test]
fn sqpoll_is_used_or_falls_back_and_is_reported() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .sqpoll(true)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let kind = e.ring_kind(0).unwrap();
    let reported = e.stats().rings[0].kind.clone();
    match kind {
        auraio_engine::RingKind::SqPoll => assert_eq!(reported, "sqpoll"),
        _ => {
            println!("SQPOLL not permitted here: fell back to a normal ring");
            assert_eq!(reported, "normal");
        }
    }
    let ran = Arc::new(AtomicU32::new(0));
    for _ in 0..10 {
        let r = Arc::clone(&ran);
        e.nop(move |res| {
            res.unwrap();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 10);
}

#[test]
fn round_robin_spreads_ops_over_the_rings() {
    let e = Engine::builder()
        .rings(2)
        .queue_depth(32)
        .ring_selection(auraio_engine::RingSelection::RoundRobin)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let mut rings = [0; 2];
    for _ in 0..10 {
        let h = e.nop(|r| r.unwrap()).unwrap();
        rings[h.ring()] += 1;
    }
    e.run_until_idle().unwrap();
    assert_eq!(rings, [5, 5]);
    let st = e.stats();
    assert_eq!(st.rings[0].completions, 5);
    assert_eq!(st.rings[1].completions, 5);
}
