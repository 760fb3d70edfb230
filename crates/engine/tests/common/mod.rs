//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use auraio_engine::{Engine, ReaperMode};

pub mod mixed;

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

/// A buffer that holds a clone of an `Arc`, so a test can see whether the
/// engine still owns it (strong count).
pub struct Tracked {
    pub data: Vec<u8>,
    pub _tag: std::sync::Arc<()>,
}

impl Tracked {
    /// `data`, tagged with a clone of `tag`.
    pub fn new(data: Vec<u8>, tag: &std::sync::Arc<()>) -> Self {
        Tracked {
            data,
            _tag: std::sync::Arc::clone(tag),
        }
    }
}

/// Implements `IoBuf` and `IoBufMut` for a test buffer type by delegating
/// to its `data: Vec<u8>` field.
macro_rules! io_buf_via_data {
    ($t:ty) => {
        // SAFETY: delegates to the inner Vec, whose heap memory is stable.
        unsafe impl auraio_engine::IoBuf for $t {
            fn stable_ptr(&self) -> *const u8 {
                auraio_engine::IoBuf::stable_ptr(&self.data)
            }
            fn bytes_init(&self) -> usize {
                auraio_engine::IoBuf::bytes_init(&self.data)
            }
            fn bytes_total(&self) -> usize {
                auraio_engine::IoBuf::bytes_total(&self.data)
            }
        }

        // SAFETY: delegates to the inner Vec.
        unsafe impl auraio_engine::IoBufMut for $t {
            fn stable_mut_ptr(&mut self) -> *mut u8 {
                auraio_engine::IoBufMut::stable_mut_ptr(&mut self.data)
            }
            unsafe fn set_init(&mut self, pos: usize) {
                // SAFETY: forwarded contract.
                unsafe { auraio_engine::IoBufMut::set_init(&mut self.data, pos) }
            }
        }
    };
}
pub(crate) use io_buf_via_data;

io_buf_via_data!(Tracked);

/// xorshift64*: a tiny deterministic generator for test workloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Drives `fut` to completion on the current thread.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    futures::executor::block_on(fut)
}
