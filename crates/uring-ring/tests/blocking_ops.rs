//! What only the blocking backend and backend selection have: conversion
//! into `AnyRing`, `BackendChoice` parsing, `Auto`'s choice and its
//! fallback reason, `Send` markers. The ops themselves run on both backends
//! in `basic.rs`, `ops.rs`, `direct.rs`, `errors.rs`.

mod common;

use std::time::Duration;

use auraio_ring::{AnyRing, BackendChoice, BackendKind, BlockingRing, RingConfig};
use common::*;

#[test]
fn a_blocking_ring_converts_and_backend_choice_parses() {
    // (Sizes and threshold are checked on both backends in basic.rs.)
    let r: BlockingRing<()> = BlockingRing::new(&RingConfig {
        sq_entries: 64,
        ..Default::default()
    })
    .unwrap();
    let a: AnyRing<()> = r.into();
    assert_eq!(a.backend(), BackendKind::Blocking);
    assert_eq!(a.fallback_reason(), None, "chosen, not fallen back to");
    assert_eq!(
        "blocking".parse::<BackendChoice>().unwrap(),
        BackendChoice::Blocking
    );
    assert_eq!(
        "auto".parse::<BackendChoice>().unwrap(),
        BackendChoice::Auto
    );
    assert_eq!(
        "io_uring".parse::<BackendChoice>().unwrap(),
        BackendChoice::IoUring
    );
    assert!("nope".parse::<BackendChoice>().is_err());
    // Auto picks io_uring on this machine unless it is disabled.
    let auto: AnyRing<()> = AnyRing::new(&RingConfig::default(), BackendChoice::Auto).unwrap();
    println!(
        "Auto chose {} ({:?})",
        auto.backend(),
        auto.fallback_reason()
    );
    match auto.backend() {
        BackendKind::IoUring => assert!(auto.fallback_reason().is_none()),
        BackendKind::Blocking => assert!(auto.fallback_reason().is_some()),
    }
}

#[test]
fn blocking_and_any_ring_are_send() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<BlockingRing<u64>>();
    assert_send::<AnyRing<Box<dyn FnOnce(i32) + Send>>>();
    assert_send_sync::<std::sync::Mutex<AnyRing<u64>>>();
    let r = bring::<()>(8);
    assert_send_sync::<auraio_ring::Waiter>();
    let w = r.waiter();
    std::thread::spawn(move || w.wait(1, Some(Duration::from_millis(1))).unwrap())
        .join()
        .unwrap();
}

#[test]
fn bad_config_is_not_a_fallback_reason() {
    let e = AnyRing::<()>::new(
        &RingConfig {
            sq_entries: 0,
            ..Default::default()
        },
        BackendChoice::Auto,
    )
    .unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::InvalidInput,
        "bad config is not a fallback reason"
    );
}
