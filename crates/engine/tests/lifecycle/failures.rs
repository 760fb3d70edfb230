//! Failures from inside: a panicking callback, a panicking controller and
//! injected faults are contained, counted and reach the right callbacks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use auraio_engine::{Engine, ReaperMode};

use crate::common::*;
use crate::eventually;

#[test]
fn a_panicking_callback_is_caught_and_counted() {
    let e = engine(ReaperMode::Never);
    e.nop(|_| panic!("boom (expected by the test)")).unwrap();
    e.run_until_idle().unwrap();
    let st = e.stats();
    assert_eq!(st.total.callback_panics, 1);
    // Still works.
    let ran = Arc::new(AtomicU32::new(0));
    let r2 = Arc::clone(&ran);
    e.nop(move |r| {
        r.unwrap();
        r2.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(e.stats().total.completions, 2);
}

/// Ticks seen by [`Grenade`]s.
static GRENADE_TICKS: AtomicU32 = AtomicU32::new(0);

/// A controller that panics from its third tick on.
#[derive(Debug)]
struct Grenade(u32);

impl auraio_engine::Controller for Grenade {
    fn tick(&mut self, _s: &auraio_engine::controller::Sample) -> auraio_engine::Decision {
        self.0 += 1;
        GRENADE_TICKS.fetch_add(1, Ordering::SeqCst);
        assert!(self.0 < 3, "controller bug (expected by the test)");
        self.current()
    }
    fn state(&self) -> auraio_engine::ControllerState {
        auraio_engine::ControllerState {
            name: "grenade".into(),
            phase: "ticking".into(),
            reason: String::new(),
        }
    }
    fn current(&self) -> auraio_engine::Decision {
        auraio_engine::Decision {
            in_flight_limit: 6,
            batch_threshold: 2,
        }
    }
}

#[test]
fn a_panicking_controller_does_not_stop_the_engine() {
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .controller_factory(|_| Box::new(Grenade(0)))
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    assert_eq!(e.in_flight_limit(0), Some(6));
    // The tick thread survives the panics and keeps ticking.
    eventually(
        || GRENADE_TICKS.load(Ordering::SeqCst) >= 6,
        "ticks after the panic",
    );
    let n = Arc::new(AtomicU32::new(0));
    for _ in 0..20 {
        let n = Arc::clone(&n);
        e.nop(move |r| {
            r.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 20);
    assert_eq!(e.in_flight_limit(0), Some(6), "last decision kept");
}

#[test]
fn injected_faults_reach_the_right_callbacks_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(64 * 1024, 5));
    let f = std::fs::File::open(&p).unwrap();
    let seq = Arc::new(AtomicU32::new(0));
    let s2 = Arc::clone(&seq);
    let e = Engine::builder()
        .rings(1)
        .queue_depth(32)
        .reaper(ReaperMode::Never)
        // Every read that returned a full 1 KiB is turned into EIO.
        .fault_injector(move |pt| {
            s2.fetch_add(1, Ordering::SeqCst);
            (pt.op == auraio_engine::OpKind::Read && pt.result == 1024).then_some(-libc::EIO)
        })
        .build()
        .unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..64u64 {
        let o = Arc::clone(&outcomes);
        // 1 KiB reads, except every 4th is 512 B (not rewritten).
        let len = if i % 4 == 3 { 512 } else { 1024 };
        e.read(&f, Vec::with_capacity(len), i * 1024, move |r, _| {
            o.lock().unwrap().push((i, r.map_err(|e| e.raw_os_error())));
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    let mut got = outcomes.lock().unwrap().clone();
    got.sort();
    assert_eq!(got.len(), 64, "each callback once");
    for (i, r) in got {
        if i % 4 == 3 {
            assert_eq!(r, Ok(512), "op {i}");
        } else {
            assert_eq!(r, Err(Some(libc::EIO)), "op {i}");
        }
    }
    assert_eq!(seq.load(Ordering::SeqCst), 64);
    assert_eq!(e.stats().total.errors, 48);
}
