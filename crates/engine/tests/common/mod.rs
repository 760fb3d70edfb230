//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use auraio_engine::{Engine, ReaperMode};

/// Deterministic file content: byte `i` is a function of `i`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(seed as u32 * 7) % 251) as u8)
        .collect()
}

/// Creates `name` in `dir` with `data`.
pub fn make_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    p
}

pub fn open_rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

/// A small engine for tests: 2 rings, 64 slots, callbacks on the caller's
/// thread unless `reaper` says otherwise.
pub fn engine(reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(2)
        .queue_depth(64)
        .reaper(reaper)
        .build()
        .unwrap()
}

/// A pipe (read end, write end). A read on the read end blocks until data
/// is written: an op that stays in flight until cancelled.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded; both fds are new and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Drives the engine until `done()` or the deadline; panics on timeout.
pub fn drive_until(engine: &Engine, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        engine.wait(Some(Duration::from_millis(50))).unwrap();
    }
}
