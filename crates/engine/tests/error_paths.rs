//! Real error paths, no mocks: the kernel's own errors reach the callback or
//! future with the buffer: ENOSPC (and the real short write before it) on a
//! small tmpfs, EBADF, reads past EOF, unaligned O_DIRECT, and a file
//! truncated under in-flight reads.

mod common;

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_engine::{BackendChoice, BufferPool, Engine, ReaperMode, Request};
use common::*;

fn engine_on(backend: BackendChoice) -> Engine {
    Engine::builder()
        .rings(1)
        .queue_depth(64)
        .backend(backend)
        .reaper(ReaperMode::Auto)
        .build()
        .unwrap()
}

/// A tmpfs mounted for the test; unmounted on drop, also when the test
/// fails.
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a `size`-limited tmpfs on `path`; `Err` says why not.
    fn mount(path: &Path, size: &str) -> Result<Self, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let target = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let opts = CString::new(format!("size={size}")).map_err(|e| e.to_string())?;
        // SAFETY: all pointers are valid NUL-terminated strings for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!("mount: {}", io::Error::last_os_error()));
        }
        Ok(TmpfsMount {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        if let Ok(p) = CString::new(self.path.as_os_str().as_bytes()) {
            // SAFETY: a valid path string; MNT_DETACH also works while a
            // descriptor on the tmpfs is still open.
            let rc = unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "could not unmount {}: {}",
                    self.path.display(),
                    io::Error::last_os_error()
                );
            }
        }
    }
}

fn enospc_on(backend: BackendChoice) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = match TmpfsMount::mount(dir.path(), "1m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipping the ENOSPC test: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let p = mnt.path.join("fill");
    let file = open_rw(&make_file(&mnt.path, "fill", &[]));
    let e = engine_on(backend);
    // 48 KiB blocks do not divide 1 MiB: the block that crosses the end is
    // a real short write, the next one fails.
    const BS: usize = 48 * 1024;
    let mut reported = 0u64;
    let mut shorts = 0;
    let mut enospc = None;
    for i in 0..64u64 {
        let block = pattern(BS, i as u8);
        let (r, back) = block_on(e.write_at(&file, block.clone(), reported));
        assert_eq!(back, block, "the buffer comes back unchanged");
        match r {
            Ok(n) => {
                assert!(n > 0 && n <= BS, "{n}");
                shorts += usize::from(n < BS);
                reported += n as u64;
            }
            Err(err) => {
                enospc = Some(err);
                break;
            }
        }
    }
    let err = enospc.expect("a 1 MiB tmpfs fills up");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(reported <= 1 << 20, "{reported}");
    assert!(shorts >= 1, "the crossing write came back short");
    // The counts reported are what reached the file.
    assert_eq!(std::fs::metadata(&p).unwrap().len(), reported);
    let got = std::fs::read(&p).unwrap();
    let mut off = 0usize;
    let mut i = 0u8;
    while off < got.len() {
        let n = (got.len() - off).min(BS);
        assert_eq!(&got[off..off + n], &pattern(BS, i)[..n], "block {i}");
        off += n;
        i += 1;
    }
    drop(e);
    drop(file);
    drop(mnt);
}

#[test]
fn enospc_on_a_full_tmpfs_after_a_real_short_write() {
    enospc_on(BackendChoice::Auto);
}

#[test]
fn enospc_on_a_full_tmpfs_on_the_blocking_backend() {
    enospc_on(BackendChoice::Blocking);
}

#[test]
fn bad_descriptors_are_ebadf() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"0123456789");
    let ro = std::fs::File::open(&p).unwrap();
    let wo = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    for backend in [BackendChoice::Auto, BackendChoice::Blocking] {
        let e = engine_on(backend);
        let ebadf = |r: io::Result<usize>, what: &str| {
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::EBADF),
                "{what} on {backend}"
            );
        };
        // Never-open descriptors.
        let (r, b) = block_on(e.read_at(&-1, vec![1u8; 4], 0));
        ebadf(r, "read on -1");
        assert_eq!(b, vec![1u8; 4]);
        let (r, _) = block_on(e.write_at(&1_000_000, b"x".to_vec(), 0));
        ebadf(r, "write on a closed fd");
        // The wrong direction.
        let (r, b) = block_on(e.write_at(&ro, b"zz".to_vec(), 0));
        ebadf(r, "write to a read-only fd");
        assert_eq!(b, b"zz");
        let (r, b) = block_on(e.read_at(&wo, Vec::with_capacity(4), 0));
        ebadf(r, "read from a write-only fd");
        assert!(b.is_empty());
        // Through the callback face too.
        let got = Arc::new(Mutex::new(None));
        let g = Arc::clone(&got);
        e.write(&ro, b"cb".to_vec(), 0, move |r, b| {
            *g.lock().unwrap() = Some((r.map_err(|e| e.raw_os_error()), b));
        })
        .unwrap();
        drive_until(&e, || got.lock().unwrap().is_some(), "the callback");
        assert_eq!(
            got.lock().unwrap().take(),
            Some((Err(Some(libc::EBADF)), b"cb".to_vec()))
        );
    }
    assert_eq!(std::fs::read(&p).unwrap(), b"0123456789", "nothing written");
}

#[test]
fn reads_at_and_across_eof_report_the_real_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(1000, 3);
    let f = std::fs::File::open(make_file(dir.path(), "f", &data)).unwrap();
    for backend in [BackendChoice::Auto, BackendChoice::Blocking] {
        let e = engine_on(backend);
        let (r, b) = block_on(e.read_at(&f, Vec::with_capacity(64), 1 << 30));
        assert_eq!(r.unwrap(), 0, "past EOF: 0 bytes ({backend})");
        assert!(b.is_empty());
        let (r, b) = block_on(e.read_at(&f, Vec::with_capacity(4096), 600));
        assert_eq!(
            r.unwrap(),
            400,
            "across EOF: the bytes that exist ({backend})"
        );
        assert_eq!(b, &data[600..], "init length == count");
    }
}

#[test]
fn unaligned_o_direct_buffer_offset_or_length_is_einval() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(64 * 1024, 1));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
    {
        Ok(f) => f,
        Err(e) => {
            println!("skipping: O_DIRECT not supported in the temp dir: {e}");
            return;
        }
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; the fd is open.
    let fs_type = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(file.as_raw_fd(), &mut st) != 0 {
            panic!("fstatfs: {}", io::Error::last_os_error());
        }
        st.f_type
    };
    const EXT4: libc::__fsword_t = 0xEF53;
    const XFS: libc::__fsword_t = 0x5846_5342;
    if fs_type != EXT4 && fs_type != XFS {
        println!(
            "skipping: the temp dir's filesystem ({fs_type:#x}) may accept unaligned direct I/O"
        );
        return;
    }
    let pool = BufferPool::with_defaults();
    for backend in [BackendChoice::Auto, BackendChoice::Blocking] {
        let e = engine_on(backend);
        let einval = |r: io::Result<usize>, what: &str| {
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::EINVAL),
                "{what} ({backend})"
            );
        };
        // Sanity: everything aligned works.
        let (r, _) = block_on(e.read_at(&file, pool.alloc(4096).unwrap(), 4096));
        assert_eq!(r.unwrap(), 4096, "aligned O_DIRECT read ({backend})");
        // An unaligned offset.
        let (r, _) = block_on(e.read_at(&file, pool.alloc(4096).unwrap(), 1));
        einval(r, "read at offset 1");
        let (r, _) = block_on(e.write_at(&file, pool.alloc(4096).unwrap(), 513));
        einval(r, "write at offset 513");
        // An unaligned buffer: a window starting one byte into an aligned
        // buffer.
        let win = pool.alloc(8192).unwrap().slice(1..4097).unwrap();
        let (r, back) = block_on(e.read_at(&file, win, 0));
        einval(r, "read into a buffer at an odd address");
        assert_eq!(back.start(), 1, "the window comes back");
        // An unaligned length.
        let mut short = pool.alloc(4096).unwrap();
        short.truncate(100);
        let (r, _) = block_on(e.write_at(&file, short, 0));
        einval(r, "write of 100 bytes");
    }
}

#[test]
fn a_file_truncated_under_in_flight_reads_gives_short_reads_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    const SIZE: usize = 4 << 20;
    const BS: usize = 4096;
    let data = Arc::new(pattern(SIZE, 7));
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = Engine::builder()
        .rings(2)
        .queue_depth(128)
        .reaper(ReaperMode::Always)
        .build()
        .unwrap();
    const N: usize = 3000;
    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let (full, short, zero, garbage) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut rng = Rng::new(77);
    let truncator = {
        let p = p.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(2 << 20).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            f.set_len(512 << 10).unwrap();
        })
    };
    let mut truncated_at = None;
    for i in 0..N {
        if truncated_at.is_none() && truncator.is_finished() {
            truncated_at = Some(i);
        }
        let off = rng.below((SIZE / BS) as u64) * BS as u64;
        let (c, data) = (Arc::clone(&calls), Arc::clone(&data));
        let (full, short, zero, garbage) = (
            Arc::clone(&full),
            Arc::clone(&short),
            Arc::clone(&zero),
            Arc::clone(&garbage),
        );
        let after = truncated_at.is_some();
        e.submit(
            Request::read(&*file, Vec::with_capacity(BS), off),
            move |(r, b): (io::Result<usize>, Vec<u8>)| {
                c[i].fetch_add(1, Ordering::SeqCst);
                let n = r.expect("reads of a shrinking file do not fail");
                assert_eq!(b.len(), n, "init length == count");
                let want = &data[off as usize..][..n];
                // Bytes come from the file or (a page being truncated) are
                // zero, never anything else.
                if b.iter().zip(want).any(|(g, w)| g != w && *g != 0) {
                    garbage.fetch_add(1, Ordering::SeqCst);
                }
                if after {
                    // Submitted after the last truncation: exact.
                    let exact = if off >= 512 << 10 { 0 } else { BS };
                    if n != exact || b[..] != *want {
                        garbage.fetch_add(1, Ordering::SeqCst);
                    }
                }
                match n {
                    0 => zero.fetch_add(1, Ordering::SeqCst),
                    BS => full.fetch_add(1, Ordering::SeqCst),
                    _ => short.fetch_add(1, Ordering::SeqCst),
                };
            },
        )
        .unwrap();
    }
    truncator.join().unwrap();
    // A last batch, certainly after the truncation.
    let late = Arc::new(Mutex::new(Vec::new()));
    for k in 0..64u64 {
        let l = Arc::clone(&late);
        let off = k * 16 * BS as u64;
        e.read(&*file, Vec::with_capacity(BS), off, move |r, b| {
            l.lock()
                .unwrap()
                .push((off, r.map_err(|e| e.to_string()), b.len()));
        })
        .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while e.pending() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reads never completed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "read {i} completed once");
    }
    assert_eq!(
        garbage.load(Ordering::SeqCst),
        0,
        "a read returned wrong bytes"
    );
    assert_eq!(
        e.stats().total.callback_panics,
        0,
        "a callback check failed"
    );
    for (off, r, len) in late.lock().unwrap().iter() {
        let exact = if *off >= 512 << 10 { 0 } else { BS };
        assert_eq!((r.clone(), *len), (Ok(exact), exact), "late read at {off}");
    }
    let (f, s, z) = (
        full.load(Ordering::SeqCst),
        short.load(Ordering::SeqCst),
        zero.load(Ordering::SeqCst),
    );
    println!("{f} full, {s} short, {z} empty; truncation seen from op {truncated_at:?}");
    assert_eq!(f + s + z, N as u64);
    assert!(z > 0, "reads beyond the new end returned 0 bytes");
}
