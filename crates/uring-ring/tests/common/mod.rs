//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::os::fd::{AsRawFd, FromRawFd};

use std::sync::OnceLock;
use std::time::Duration;

use auraio_ring::{
    AnyRing, BackendChoice, BackendKind, BlockingRing, Completion, Fd, IoBuf, IoBufMut, Op, Ring,
    RingConfig, SlotId,
};

/// Generates, for each named `fn name(b: BackendKind)` of the including
/// file, one test per backend: `io_uring::name` and `blocking::name`. The
/// io_uring test skips (printing why) where io_uring is unavailable. One
/// invocation per test file.
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod io_uring {
            $(
                #[test]
                fn $name() {
                    if crate::common::skip_without_io_uring() {
                        return;
                    }
                    super::$name(auraio_ring::BackendKind::IoUring);
                }
            )+
        }
        mod blocking {
            $(
                #[test]
                fn $name() {
                    super::$name(auraio_ring::BackendKind::Blocking);
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use backend_tests;

/// Why io_uring cannot be used on this machine (`None`: it can). Probed
/// once. Only "unavailable" errors (EPERM/EACCES/ENOSYS: seccomp,
/// `kernel.io_uring_disabled`, old kernels) skip; any other setup error is a
/// failure.
pub fn io_uring_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        match Ring::<()>::new(&RingConfig {
            sq_entries: 8,
            ..Default::default()
        }) {
            Ok(_) => None,
            Err(e) if auraio_ring::is_unavailable_error(&e) => {
                Some(format!("io_uring_setup failed: {e}"))
            }
            Err(e) => panic!("io_uring setup failed (not an unavailability error): {e}"),
        }
    })
    .as_deref()
}

/// For tests of io_uring-only behaviour: true (after printing why) when
/// io_uring is unavailable here and the test should return.
pub fn skip_without_io_uring() -> bool {
    match io_uring_unavailable() {
        Some(why) => {
            println!("SKIP: io_uring unavailable here: {why}");
            true
        }
        None => false,
    }
}

/// The [`BackendChoice`] that builds backend `b` and nothing else.
pub fn choice(b: BackendKind) -> BackendChoice {
    match b {
        BackendKind::IoUring => BackendChoice::IoUring,
        BackendKind::Blocking => BackendChoice::Blocking,
    }
}

/// A ring of backend `b` built from `cfg`.
pub fn any_ring_with<T>(b: BackendKind, cfg: &RingConfig) -> AnyRing<T> {
    let r = AnyRing::new(cfg, choice(b)).unwrap_or_else(|e| panic!("{b} ring: {e}"));
    assert_eq!(r.backend(), b);
    r
}

/// A ring of backend `b` with a small queue that submits every op at once.
pub fn any_ring<T>(b: BackendKind, sq: u32) -> AnyRing<T> {
    any_ring_with(
        b,
        &RingConfig {
            sq_entries: sq,
            batch_threshold: 1,
            ..Default::default()
        },
    )
}

/// A ring of backend `b` that signals an eventfd on completions.
pub fn eventfd_ring<T>(b: BackendKind) -> AnyRing<T> {
    any_ring_with(
        b,
        &RingConfig {
            sq_entries: 8,
            batch_threshold: 1,
            eventfd: true,
            ..Default::default()
        },
    )
}

/// Waits until `n` ops are running on the blocking backend's workers (not
/// merely queued). Panics on an io_uring ring.
pub fn wait_running<T>(r: &AnyRing<T>, n: u32) {
    let AnyRing::Blocking(b) = r else {
        panic!("blocking backend expected")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.running() < n {
        assert!(std::time::Instant::now() < deadline, "ops never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A blocking-backend ring with one worker, so a second op waits for the
/// first.
pub fn one_worker<T>(sq: u32) -> AnyRing<T> {
    let cfg = RingConfig {
        sq_entries: sq,
        batch_threshold: 1,
        ..Default::default()
    };
    BlockingRing::with_max_workers(&cfg, 1).unwrap().into()
}

/// What keeps the ops of a [`stalled_ring`] pending: nothing on io_uring;
/// on the blocking backend, a read of a private empty pipe occupying the
/// only worker.
pub struct Stall {
    busy: Option<(SlotId, std::fs::File, std::fs::File)>,
}

/// A ring of backend `b` on which a read of an empty pipe stays pending,
/// so it can still be cancelled or time out. io_uring parks such a read in
/// the kernel, where a cancel interrupts it. The blocking backend cannot
/// interrupt a syscall once a worker runs it, so its ring gets a single
/// worker, kept busy by a read (token `busy_token`) of a pipe the [`Stall`]
/// owns: ops submitted next wait in the queue, where a cancel reaches them.
pub fn stalled_ring<T>(b: BackendKind, sq: u32, busy_token: T) -> (AnyRing<T>, Stall) {
    match b {
        BackendKind::IoUring => (any_ring(b, sq), Stall { busy: None }),
        BackendKind::Blocking => {
            let mut r = one_worker(sq);
            let (rd, wr) = pipe();
            let id = r
                .submit(Op::read(fd(&rd), vec![0u8; 1], 0), busy_token)
                .unwrap();
            wait_running(&r, 1);
            (
                r,
                Stall {
                    busy: Some((id, rd, wr)),
                },
            )
        }
    }
}

impl Stall {
    /// Ops in flight that belong to the stall: 1 on blocking, 0 on io_uring.
    pub fn extra(&self) -> u32 {
        u32::from(self.busy.is_some())
    }

    /// Lets the busy read finish and reaps it (checks it read its byte).
    /// Call once every op of the test was reaped.
    pub fn release<T>(self, r: &mut AnyRing<T>) {
        if let Some((id, _rd, wr)) = self.busy {
            write_all(&wr, b"x");
            let c = wait_one(r);
            assert_eq!((c.slot, c.result), (id, 1), "the stall's read finishes");
        }
        assert_eq!(r.in_flight(), 0);
    }
}

/// Polls and waits briefly a few times and returns everything that showed
/// up (tests assert it is empty: no completion twice, no internal CQE
/// leaked).
pub fn settle<T>(r: &mut AnyRing<T>) -> Vec<Completion<T>> {
    let mut out = Vec::new();
    for _ in 0..5 {
        r.poll(&mut out).unwrap();
        r.wait(1, Some(Duration::from_millis(20)), &mut out)
            .unwrap();
    }
    out
}

/// `path` as a C string.
pub fn cpath(p: &std::path::Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn fd(f: &impl AsRawFd) -> Fd {
    Fd::Raw(f.as_raw_fd())
}

/// `poll(2)` for `POLLIN` on `fd`: 1 when readable within `timeout_ms`,
/// 0 when not.
pub fn poll_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> i32 {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Test-only aligned buffer (O_DIRECT needs aligned memory).
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
    init: usize,
}

// SAFETY: the buffer exclusively owns its allocation.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `len` zeroed bytes aligned to `align`, all counted as initialized.
    pub fn new(len: usize, align: usize) -> Self {
        let layout = Layout::from_size_align(len, align).unwrap();
        assert!(len > 0);
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        AlignedBuf {
            ptr,
            layout,
            init: len,
        }
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `init` bytes are initialized (zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr, self.init) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we have `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

// SAFETY: heap memory that does not move with the value; `init <= total`.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.layout.size()
    }
}

// SAFETY: same pointer, writable for its whole size.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos);
    }
}

/// A pipe: (read end, write end).
pub fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0);
    // SAFETY: fresh fds we own.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

pub fn write_all(f: &std::fs::File, data: &[u8]) {
    use std::io::Write;
    let mut f = f;
    f.write_all(data).unwrap();
}

/// A blocking-backend ring (through `AnyRing`) with a small queue.
pub fn bring<T>(sq: u32) -> AnyRing<T> {
    any_ring(BackendKind::Blocking, sq)
}

/// Waits for exactly one completion on any backend.
pub fn wait_one<T>(ring: &mut AnyRing<T>) -> Completion<T> {
    let mut out = Vec::new();
    let n = ring
        .wait(1, Some(std::time::Duration::from_secs(10)), &mut out)
        .unwrap();
    assert_eq!(n, 1, "expected one completion");
    out.pop().unwrap()
}

/// Waits until `n` completions were collected on any backend.
pub fn wait_n<T>(ring: &mut AnyRing<T>, n: usize) -> Vec<Completion<T>> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.len() < n {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        ring.wait(
            (n - out.len()) as u32,
            Some(std::time::Duration::from_secs(1)),
            &mut out,
        )
        .unwrap();
    }
    out
}

/// A read/write file in `dir`, created empty.
pub fn rw_file(dir: &tempfile::TempDir, name: &str) -> (std::fs::File, std::path::PathBuf) {
    let path = dir.path().join(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (f, path)
}

/// A buffer that carries an `Arc` so tests can see who still holds it.
pub struct TrackedBuf {
    pub data: Box<[u8]>,
    _alive: std::sync::Arc<()>,
}

// SAFETY: delegates to the boxed slice, whose heap memory does not move.
unsafe impl IoBuf for TrackedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.len()
    }
}

// SAFETY: same memory, writable for its whole length.
unsafe impl IoBufMut for TrackedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

pub fn tracked(len: usize) -> (TrackedBuf, std::sync::Arc<()>) {
    let alive = std::sync::Arc::new(());
    (
        TrackedBuf {
            data: vec![0u8; len].into_boxed_slice(),
            _alive: alive.clone(),
        },
        alive,
    )
}
