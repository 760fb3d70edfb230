//! The blocking backend runs every op for real on real files, with the
//! io_uring result convention.

mod common;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use auraio_ring::{
    AnyRing, BackendChoice, BackendKind, BlockingRing, Fd, Op, OpKind, OwnedBuf, Resources,
    RingConfig, RingKind, SubmitErrorKind,
};
use common::*;

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn write_then_read_back_many_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "rw");
    let mut r = bring::<u32>(16);
    assert_eq!(r.kind(), RingKind::Normal);
    const BS: usize = 4096;
    for i in 0..32u32 {
        r.submit(
            Op::write(fd(&file), pattern(BS, i as u8), u64::from(i) * BS as u64),
            i,
        )
        .unwrap();
        if r.in_flight() == r.capacity() {
            for c in any_wait_n(&mut r, 1) {
                assert_eq!(c.result, BS as i32, "write {}", c.token);
            }
        }
    }
    let mut left = r.in_flight() as usize;
    for c in any_wait_n(&mut r, left) {
        assert_eq!(c.result, BS as i32, "write {}", c.token);
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 * BS as u64);
    for i in 0..16u32 {
        r.submit(
            Op::read(fd(&file), Vec::with_capacity(BS), u64::from(i) * BS as u64),
            i,
        )
        .unwrap();
    }
    left = 16;
    for c in any_wait_n(&mut r, left) {
        assert_eq!(c.result, BS as i32);
        let v: Vec<u8> = c.resources.into_buf().unwrap();
        assert_eq!(v, pattern(BS, c.token as u8), "block {}", c.token);
    }
    assert_eq!(r.in_flight(), 0);
    let s = r.stats();
    assert_eq!(s.completions, 48);
    assert_eq!(s.sqes_submitted, 48);
    assert!(s.submit_calls >= 1 && s.submit_calls <= 48);
}

#[test]
fn writev_then_readv_round_trip_and_short_readv() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "v");
    let mut r = bring::<u32>(8);
    let parts = [pattern(100, 1), pattern(4096, 2), pattern(7, 3)];
    let bufs: Vec<Box<dyn OwnedBuf>> = parts
        .iter()
        .map(|p| Box::new(p.clone()) as Box<dyn OwnedBuf>)
        .collect();
    r.submit(
        Op::Writev {
            fd: fd(&file),
            bufs,
            offset: 10,
        },
        1,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    assert_eq!(c.result, total as i32);
    let back: Vec<Vec<u8>> = c.resources.into_bufs().unwrap();
    assert_eq!(back, parts.to_vec());
    assert_eq!(&std::fs::read(&path).unwrap()[10..], &parts.concat()[..]);

    // Read 3 x 2000 from offset 10: the file has 4203 bytes there.
    let mk = |n: usize| Box::new(Vec::<u8>::with_capacity(n)) as Box<dyn OwnedBuf>;
    r.submit(
        Op::Readv {
            fd: fd(&file),
            bufs: vec![mk(2000), mk(2000), mk(2000)],
            offset: 10,
        },
        2,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, total as i32, "short readv");
    let got: Vec<Vec<u8>> = c.resources.into_bufs().unwrap();
    assert_eq!(got.iter().map(|g| g.len()).sum::<usize>(), total);
    assert_eq!(got.concat(), parts.concat());
}

#[test]
fn fsync_fdatasync_fallocate_ftruncate() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "s");
    let mut r = bring::<u8>(8);
    for datasync in [false, true] {
        r.submit(
            Op::Fsync {
                fd: fd(&file),
                datasync,
            },
            0,
        )
        .unwrap();
        assert_eq!(any_wait_one(&mut r).result, 0, "fsync(datasync={datasync})");
    }
    r.submit(
        Op::Fsync {
            fd: Fd::Raw(-1),
            datasync: false,
        },
        1,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF);

    r.submit(
        Op::Fallocate {
            fd: fd(&file),
            mode: 0,
            offset: 4096,
            len: 1 << 20,
        },
        2,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    if c.result == -libc::EOPNOTSUPP {
        println!("SKIP fallocate: filesystem does not support it");
    } else {
        assert_eq!(c.result, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 + (1 << 20));
    }
    assert!(r.supports(OpKind::Ftruncate), "emulated on every kernel");
    r.submit(
        Op::Ftruncate {
            fd: fd(&file),
            len: 123,
        },
        3,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 123);
    // Lengths beyond i64 are EINVAL, not a wrapped negative.
    r.submit(
        Op::Ftruncate {
            fd: fd(&file),
            len: u64::MAX,
        },
        4,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EINVAL);
}

#[test]
fn statx_openat_read_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o");
    let data = pattern(3000, 5);
    std::fs::write(&path, &data).unwrap();
    let mut r = bring::<u8>(8);
    r.submit(
        Op::Statx {
            dirfd: libc::AT_FDCWD,
            path: cpath(&path),
            flags: 0,
            mask: libc::STATX_SIZE,
        },
        0,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, 0);
    let st = c.resources.into_statx().unwrap();
    assert_eq!(st.stx_size, 3000);
    r.submit(
        Op::Statx {
            dirfd: libc::AT_FDCWD,
            path: cpath(&dir.path().join("missing")),
            flags: 0,
            mask: libc::STATX_SIZE,
        },
        0,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::ENOENT);

    let p = cpath(&path);
    r.submit(
        Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: p.clone(),
            flags: libc::O_RDONLY | libc::O_CLOEXEC,
            mode: 0,
        },
        1,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    assert!(c.result >= 0, "openat failed: {}", c.result);
    let newfd = c.result;
    match c.resources {
        Resources::Path(back) => assert_eq!(back, p),
        other => panic!("expected the path back, got {other:?}"),
    }
    r.submit(Op::read(Fd::Raw(newfd), Vec::with_capacity(3000), 0), 2)
        .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, 3000);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);
    r.submit(Op::Close { fd: Fd::Raw(newfd) }, 3).unwrap();
    assert_eq!(any_wait_one(&mut r).result, 0);
    r.submit(Op::read(Fd::Raw(newfd), Vec::with_capacity(10), 0), 4)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF);
}

#[test]
fn registered_files_are_emulated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, pa) = rw_file(&dir, "a");
    let (b, pb) = rw_file(&dir, "b");
    let mut r = bring::<u8>(8);
    assert!(r.update_file(0, 0).is_err(), "no table yet");
    r.register_files(&[a.as_raw_fd(), -1]).unwrap();
    assert!(
        r.register_files(&[a.as_raw_fd()]).is_err(),
        "already registered"
    );
    // The table holds its own reference: closing ours does not matter.
    drop(a);
    r.submit(Op::write(Fd::Fixed(0), pattern(600, 1), 0), 0)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, 600);
    assert_eq!(std::fs::read(&pa).unwrap(), pattern(600, 1));
    r.submit(Op::write(Fd::Fixed(1), pattern(10, 1), 0), 1)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF, "empty entry");
    r.submit(Op::write(Fd::Fixed(9), pattern(10, 1), 0), 1)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF, "out of range");
    assert!(r.update_file(5, b.as_raw_fd()).is_err());
    r.update_file(1, b.as_raw_fd()).unwrap();
    r.submit(Op::write(Fd::Fixed(1), pattern(700, 2), 0), 2)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, 700);
    assert_eq!(std::fs::read(&pb).unwrap(), pattern(700, 2));
    r.submit(Op::read(Fd::Fixed(1), Vec::with_capacity(700), 0), 3)
        .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, 700);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), pattern(700, 2));
    // Closing a fixed file frees its entry.
    r.submit(Op::Close { fd: Fd::Fixed(1) }, 4).unwrap();
    assert_eq!(any_wait_one(&mut r).result, 0);
    r.submit(Op::read(Fd::Fixed(1), Vec::with_capacity(10), 0), 5)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF);
    r.unregister_files().unwrap();
    assert!(r.unregister_files().is_err());
    r.submit(Op::read(Fd::Fixed(0), Vec::with_capacity(10), 0), 6)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EBADF);
    assert!(r.register_files(&[1_000_000]).is_err(), "bad fd refused");
}

#[test]
fn registered_buffers_are_emulated() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "fx");
    let mut r = bring::<u8>(8);
    let mut buf = AlignedBuf::new(64 * 1024, 4096);
    let data = pattern(64 * 1024, 7);
    buf.as_mut_slice().copy_from_slice(&data);
    let iov = libc::iovec {
        iov_base: buf.addr() as *mut libc::c_void,
        iov_len: 64 * 1024,
    };
    // SAFETY: `buf` stays allocated until after unregister_buffers below.
    unsafe {
        assert!(r.register_buffers(&[]).is_err());
        r.register_buffers(&[iov]).unwrap();
        assert!(r.register_buffers(&[iov]).is_err(), "already registered");
    }
    r.submit(
        Op::WriteFixed {
            fd: fd(&file),
            buf: Box::new(buf),
            buf_index: 0,
            offset: 0,
        },
        0,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, 64 * 1024);
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let mut buf: AlignedBuf = c.resources.into_buf().unwrap();
    buf.as_mut_slice().fill(0);
    r.submit(
        Op::ReadFixed {
            fd: fd(&file),
            buf: Box::new(buf),
            buf_index: 0,
            offset: 0,
        },
        1,
    )
    .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, 64 * 1024);
    let buf: AlignedBuf = c.resources.into_buf().unwrap();
    assert_eq!(buf.as_slice(), &data[..]);
    // Outside the region, or a bad index: EFAULT, like the kernel.
    r.submit(
        Op::ReadFixed {
            fd: fd(&file),
            buf: Box::new(AlignedBuf::new(4096, 4096)),
            buf_index: 0,
            offset: 0,
        },
        2,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EFAULT);
    r.submit(
        Op::WriteFixed {
            fd: fd(&file),
            buf: Box::new(vec![1u8; 8]),
            buf_index: 3,
            offset: 0,
        },
        3,
    )
    .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EFAULT);
    r.unregister_buffers().unwrap();
    assert!(r.unregister_buffers().is_err());
    drop(buf);
}

#[test]
fn o_direct_aligned_round_trip_and_misaligned_einval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            println!("SKIP: O_DIRECT not supported here ({e})");
            return;
        }
    };
    let mut r = bring::<u32>(16);
    const BS: usize = 4096;
    for i in 0..16 {
        let mut b = AlignedBuf::new(BS, 4096);
        b.as_mut_slice().copy_from_slice(&pattern(BS, i as u8));
        r.submit(Op::write(fd(&file), b, (i * BS) as u64), i as u32)
            .unwrap();
    }
    for c in any_wait_n(&mut r, 16) {
        assert_eq!(c.result, BS as i32, "write {}", c.token);
    }
    for i in 0..16 {
        r.submit(
            Op::read(fd(&file), AlignedBuf::new(BS, 4096), (i * BS) as u64),
            i as u32,
        )
        .unwrap();
    }
    for c in any_wait_n(&mut r, 16) {
        assert_eq!(c.result, BS as i32);
        let b: AlignedBuf = c.resources.into_buf().unwrap();
        assert_eq!(b.as_slice(), &pattern(BS, c.token as u8)[..]);
    }
    r.submit(Op::read(fd(&file), AlignedBuf::new(4095, 4096), 1), 99)
        .unwrap();
    let c = any_wait_one(&mut r);
    assert_eq!(c.result, -libc::EINVAL, "misaligned O_DIRECT read");
    let b: AlignedBuf = c.resources.into_buf().unwrap();
    assert_eq!(b.as_slice().len(), 4095);
}

#[test]
fn errors_come_back_as_results_or_typed_errors() {
    let mut r = bring::<u8>(8);
    r.submit(Op::read(Fd::Raw(-1), Vec::with_capacity(16), 0), 1)
        .unwrap();
    r.submit(Op::write(Fd::Raw(1_000_000), vec![1u8; 16], 0), 2)
        .unwrap();
    let mut got = any_wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::EBADF);
    assert_eq!(got[1].result, -libc::EBADF);
    let v: Vec<u8> = got.remove(0).resources.into_buf().unwrap();
    assert!(v.is_empty(), "init length untouched on error");

    // Offsets beyond i64 are EINVAL (u64::MAX means "file position").
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "e");
    r.submit(Op::write(fd(&file), vec![1u8; 4], 1 << 63), 3)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, -libc::EINVAL);
    r.submit(Op::write(fd(&file), vec![7u8; 4], u64::MAX), 4)
        .unwrap();
    assert_eq!(any_wait_one(&mut r).result, 4, "current file position");

    r.disable_op(OpKind::Fallocate);
    let e = r
        .submit(
            Op::Fallocate {
                fd: Fd::Raw(0),
                mode: 0,
                offset: 0,
                len: 1,
            },
            5,
        )
        .unwrap_err();
    assert!(matches!(
        e.kind,
        SubmitErrorKind::Unsupported(OpKind::Fallocate)
    ));
    assert_eq!(e.token, 5);
    let bufs: Vec<Box<dyn OwnedBuf>> = (0..2000)
        .map(|_| Box::new(vec![0u8; 1]) as Box<dyn OwnedBuf>)
        .collect();
    let e = r
        .submit(
            Op::Writev {
                fd: Fd::Raw(1),
                bufs,
                offset: 0,
            },
            6,
        )
        .unwrap_err();
    assert!(matches!(e.kind, SubmitErrorKind::InvalidInput(_)));
    assert_eq!(r.in_flight(), 0);

    let id = r.submit(Op::Nop, 7).unwrap();
    assert_eq!(any_wait_one(&mut r).result, 0);
    assert_eq!(
        r.cancel(id).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );

    let e = AnyRing::<()>::new(
        &RingConfig {
            sq_entries: 0,
            ..Default::default()
        },
        BackendChoice::Blocking,
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
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

#[test]
fn full_ring_refuses_with_token_back_and_pipes_ignore_offsets() {
    let mut r = bring::<u32>(8);
    let (rd, wr) = pipe();
    for i in 0..8 {
        let one: Box<[u8]> = vec![0u8; 1].into_boxed_slice();
        // Offsets on a pipe are ignored, as io_uring does.
        r.submit(Op::read(fd(&rd), one, 4096), i).unwrap();
    }
    let e = r
        .submit(Op::read(fd(&rd), Vec::with_capacity(8), 0), 99)
        .unwrap_err();
    assert!(matches!(e.kind, SubmitErrorKind::Full));
    assert_eq!(e.token, 99);
    write_all(&wr, &[7u8; 8]);
    let got = any_wait_n(&mut r, 8);
    assert!(got.iter().all(|c| c.result == 1));
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn latency_covers_submit_to_done_and_eventfd_signals() {
    let mut r: AnyRing<()> = AnyRing::new(
        &RingConfig {
            sq_entries: 8,
            batch_threshold: 1,
            eventfd: true,
            ..Default::default()
        },
        BackendChoice::Blocking,
    )
    .unwrap();
    let efd = r.eventfd().expect("eventfd");
    let (rd, wr) = pipe();
    let t0 = Instant::now();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    let mut pfd = libc::pollfd {
        fd: efd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 10_000) },
        1,
        "eventfd readable"
    );
    let c = any_wait_one(&mut r);
    let outer = t0.elapsed();
    assert_eq!(c.result, 4);
    assert!(c.latency_ns >= 30_000_000, "latency {} ns", c.latency_ns);
    assert!(c.latency_ns <= outer.as_nanos() as u64);
    assert!(r.now_ns() >= c.latency_ns);
}

#[test]
fn latency_starts_at_the_hand_off_to_the_pool() {
    let mut r: BlockingRing<()> = BlockingRing::new(&RingConfig {
        sq_entries: 8,
        batch_threshold: 8,
        ..Default::default()
    })
    .unwrap();
    let (rd, wr) = pipe();
    r.submit(Op::read(fd(&rd), vec![0u8; 4], 0), ()).unwrap();
    assert_eq!(r.queued(), 1, "below the threshold the op waits locally");
    std::thread::sleep(Duration::from_millis(20));
    let t_flush = Instant::now();
    assert_eq!(r.flush().unwrap(), 1);
    std::thread::sleep(Duration::from_millis(30));
    write_all(&wr, b"late");
    let mut out = Vec::new();
    assert_eq!(
        r.wait(1, Some(Duration::from_secs(10)), &mut out).unwrap(),
        1
    );
    let since_flush = t_flush.elapsed().as_nanos() as u64;
    assert_eq!(out[0].result, 4);
    // The syscall could not return before the write, 30 ms after the
    // hand-off; the 20 ms queued before the hand-off are not counted.
    assert!(out[0].latency_ns >= 30_000_000, "{} ns", out[0].latency_ns);
    assert!(
        out[0].latency_ns <= since_flush,
        "{} ns > {since_flush} ns",
        out[0].latency_ns
    );
}

#[test]
fn sizes_and_threshold_mirror_the_ring() {
    let r: BlockingRing<()> = BlockingRing::new(&RingConfig {
        sq_entries: 64,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(r.capacity(), 64);
    assert_eq!(r.sq_entries(), 64);
    assert_eq!(r.cq_entries(), 128);
    assert_eq!(r.batch_threshold(), 8);
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
