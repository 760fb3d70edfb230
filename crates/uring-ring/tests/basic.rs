//! Round trips of the plain data ops on real files.

mod common;

use auraio_ring::{Op, Resources, RingKind};
use common::*;

#[test]
fn nop_completes_with_zero_and_token() {
    let mut r = ring::<u64>(8);
    assert_eq!(r.kind(), RingKind::Normal);
    let id = r.submit(Op::Nop, 42).unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.token, 42);
    assert_eq!(c.slot, id);
    assert_eq!(c.result, 0);
    assert!(matches!(c.resources, Resources::None));
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn write_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut r = ring::<&'static str>(8);
    let data = pattern(10_000, 3);
    r.submit(Op::write(fd(&file), data.clone(), 100), "w")
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.token, "w");
    assert_eq!(c.result, data.len() as i32);
    let back: Vec<u8> = c.resources.into_buf().unwrap();
    assert_eq!(back, data, "the written buffer comes back intact");

    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[100..], &data[..]);

    r.submit(
        Op::read(fd(&file), Vec::<u8>::with_capacity(data.len()), 100),
        "r",
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, data.len() as i32);
    let got: Vec<u8> = c.resources.into_buf().unwrap();
    assert_eq!(got, data);
}
