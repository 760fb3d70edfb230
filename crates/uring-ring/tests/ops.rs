//! Every op round-trips real data on real files, on both backends (the
//! blocking one emulates io_uring's results, registered files and buffers
//! included).

mod common;

use std::os::fd::AsRawFd;

use auraio_ring::{AnyRing, BackendKind, Fd, Op, OpKind, OwnedBuf, Resources, SubmitErrorKind};
use common::*;

backend_tests!(
    writev_then_readv_round_trip,
    readv_sets_init_per_buffer_on_short_read,
    fsync_and_fdatasync_succeed,
    fallocate_extends_the_file,
    ftruncate_sets_length_or_is_reported_unsupported,
    statx_reports_size,
    openat_read_close,
    registered_files_register_update_unregister,
    bad_registered_file_update_is_an_error_not_a_panic,
    read_fixed_write_fixed_on_registered_buffers,
    probe_reports_the_basic_ops,
);

/// Reads `file` at `offset` into empty `Vec`s of capacities `caps` with one
/// readv; returns its result and the buffers (init length set by the read).
fn readv_into_empty_vecs<T>(
    r: &mut AnyRing<T>,
    file: &std::fs::File,
    caps: &[usize],
    offset: u64,
    token: T,
) -> (i32, Vec<Vec<u8>>) {
    let bufs = caps
        .iter()
        .map(|&n| Box::new(Vec::<u8>::with_capacity(n)) as Box<dyn OwnedBuf>)
        .collect();
    r.submit(
        Op::Readv {
            fd: fd(file),
            bufs,
            offset,
        },
        token,
    )
    .unwrap();
    let c = wait_one(r);
    (c.result, c.resources.into_bufs().unwrap())
}

fn writev_then_readv_round_trip(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "v");
    let mut r = any_ring::<u32>(b, 8);
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
    let c = wait_one(&mut r);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    assert_eq!(c.result, total as i32);
    let back: Vec<Vec<u8>> = c.resources.into_bufs().unwrap();
    assert_eq!(back, parts.to_vec());
    assert_eq!(&std::fs::read(&path).unwrap()[10..], &parts.concat()[..]);

    let bufs: Vec<Box<dyn OwnedBuf>> = parts
        .iter()
        .map(|p| Box::new(vec![0u8; p.len()].into_boxed_slice()) as Box<dyn OwnedBuf>)
        .collect();
    r.submit(
        Op::Readv {
            fd: fd(&file),
            bufs,
            offset: 10,
        },
        2,
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.token, 2);
    assert_eq!(c.result, total as i32);
    let got: Vec<Box<[u8]>> = c.resources.into_bufs().unwrap();
    for (g, p) in got.iter().zip(parts.iter()) {
        assert_eq!(&g[..], &p[..]);
    }

    // Read 3 x 2000 from offset 10: the file has 4203 bytes there.
    let (result, got) = readv_into_empty_vecs(&mut r, &file, &[2000, 2000, 2000], 10, 3);
    assert_eq!(result, total as i32, "short readv");
    assert_eq!(got.iter().map(|g| g.len()).sum::<usize>(), total);
    assert_eq!(got.concat(), parts.concat());
}

fn readv_sets_init_per_buffer_on_short_read(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "short");
    std::fs::write(dir.path().join("short"), pattern(150, 9)).unwrap();
    let mut r = any_ring::<()>(b, 8);
    let (result, got) = readv_into_empty_vecs(&mut r, &file, &[100, 100, 100], 0, ());
    assert_eq!(result, 150);
    assert_eq!(got[0].len(), 100);
    assert_eq!(got[1].len(), 50);
    assert_eq!(got[2].len(), 0);
    assert_eq!([&got[0][..], &got[1][..]].concat(), pattern(150, 9));
}

fn fsync_and_fdatasync_succeed(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "s");
    let mut r = any_ring::<bool>(b, 8);
    r.submit(Op::write(fd(&file), pattern(512, 0), 0), false)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 512);
    for datasync in [false, true] {
        r.submit(
            Op::Fsync {
                fd: fd(&file),
                datasync,
            },
            datasync,
        )
        .unwrap();
        let c = wait_one(&mut r);
        assert_eq!(c.token, datasync);
        assert_eq!(c.result, 0, "fsync(datasync={datasync})");
    }
    // A bad fd makes the same op fail, so the zero above means something.
    r.submit(
        Op::Fsync {
            fd: Fd::Raw(-1),
            datasync: false,
        },
        true,
    )
    .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF);
}

fn fallocate_extends_the_file(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "a");
    let mut r = any_ring::<()>(b, 8);
    if !r.supports(OpKind::Fallocate) {
        println!("SKIP: IORING_OP_FALLOCATE not supported by this kernel");
        return;
    }
    r.submit(
        Op::Fallocate {
            fd: fd(&file),
            mode: 0,
            offset: 4096,
            len: 1 << 20,
        },
        (),
    )
    .unwrap();
    let c = wait_one(&mut r);
    if c.result == -libc::EOPNOTSUPP {
        println!("SKIP: filesystem does not support fallocate");
        return;
    }
    assert_eq!(c.result, 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 + (1 << 20));
}

fn ftruncate_sets_length_or_is_reported_unsupported(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "t");
    std::fs::write(&path, pattern(10_000, 1)).unwrap();
    let mut r = any_ring::<()>(b, 8);
    if b == BackendKind::Blocking {
        assert!(r.supports(OpKind::Ftruncate), "emulated on every kernel");
    }
    let op = Op::Ftruncate {
        fd: fd(&file),
        len: 123,
    };
    if !r.supports(OpKind::Ftruncate) {
        println!("SKIP: IORING_OP_FTRUNCATE needs Linux 6.9+; checking the Unsupported error");
        let e = r.submit(op, ()).unwrap_err();
        assert!(matches!(
            e.kind,
            SubmitErrorKind::Unsupported(OpKind::Ftruncate)
        ));
        return;
    }
    r.submit(op, ()).unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 123);
    // Lengths beyond i64 are EINVAL, not a wrapped negative.
    r.submit(
        Op::Ftruncate {
            fd: fd(&file),
            len: u64::MAX,
        },
        (),
    )
    .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EINVAL);
}

fn statx_reports_size(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (_file, path) = rw_file(&dir, "x");
    std::fs::write(&path, pattern(4321, 1)).unwrap();
    let mut r = any_ring::<()>(b, 8);
    r.submit(
        Op::Statx {
            dirfd: libc::AT_FDCWD,
            path: cpath(&path),
            flags: 0,
            mask: libc::STATX_SIZE,
        },
        (),
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 0);
    let st = c.resources.into_statx().unwrap();
    assert_ne!(st.stx_mask & libc::STATX_SIZE, 0);
    assert_eq!(st.stx_size, 4321);

    // And a missing file gives ENOENT.
    r.submit(
        Op::Statx {
            dirfd: libc::AT_FDCWD,
            path: cpath(&dir.path().join("missing")),
            flags: 0,
            mask: libc::STATX_SIZE,
        },
        (),
    )
    .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::ENOENT);
}

fn openat_read_close(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o");
    let data = pattern(3000, 5);
    std::fs::write(&path, &data).unwrap();
    let mut r = any_ring::<u8>(b, 8);
    let p = cpath(&path);
    r.submit(
        Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: p.clone(),
            flags: libc::O_RDONLY | libc::O_CLOEXEC,
            mode: 0,
        },
        0,
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert!(c.result >= 0, "openat failed: {}", c.result);
    let newfd = c.result;
    match c.resources {
        Resources::Path(back) => assert_eq!(back, p),
        other => panic!("expected the path back, got {other:?}"),
    }
    // An empty Vec has capacity 0: the read returns 0 bytes.
    r.submit(Op::read(Fd::Raw(newfd), Vec::new(), 0), 1)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    r.submit(Op::read(Fd::Raw(newfd), Vec::with_capacity(3000), 0), 2)
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 3000);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);

    let ours = std::fs::canonicalize(&path).unwrap();
    let fd_link = format!("/proc/self/fd/{newfd}");
    assert_eq!(std::fs::read_link(&fd_link).unwrap(), ours);
    r.submit(Op::Close { fd: Fd::Raw(newfd) }, 3).unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    // The fd is gone now: its number is free, or (tests run in parallel
    // threads) another test already reuses it for a different file.
    // Reading through the number would race with that test.
    match std::fs::read_link(&fd_link) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        Ok(other) => assert_ne!(other, ours, "fd {newfd} still open on our file"),
    }
}

fn registered_files_register_update_unregister(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (fa, pa) = rw_file(&dir, "a");
    let (fb, pb) = rw_file(&dir, "b");
    let mut r = any_ring::<u8>(b, 8);
    assert!(r.update_file(0, 0).is_err(), "no table yet");
    r.register_files(&[fa.as_raw_fd(), -1]).unwrap();
    assert!(
        r.register_files(&[fa.as_raw_fd()]).is_err(),
        "already registered"
    );
    // The table holds its own reference: closing ours does not matter.
    drop(fa);
    r.submit(Op::write(Fd::Fixed(0), pattern(600, 1), 0), 0)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 600);
    assert_eq!(std::fs::read(&pa).unwrap(), pattern(600, 1));

    r.submit(Op::write(Fd::Fixed(1), pattern(10, 1), 0), 1)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF, "empty entry");
    r.submit(Op::write(Fd::Fixed(9), pattern(10, 1), 0), 1)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF, "out of range");

    assert!(r.update_file(5, fb.as_raw_fd()).is_err());
    r.update_file(1, fb.as_raw_fd()).unwrap();
    r.submit(Op::write(Fd::Fixed(1), pattern(700, 2), 0), 2)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 700);
    assert_eq!(std::fs::read(&pb).unwrap(), pattern(700, 2));

    r.submit(Op::read(Fd::Fixed(1), Vec::with_capacity(700), 0), 3)
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 700);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), pattern(700, 2));

    // Closing a fixed file frees its entry.
    r.submit(Op::Close { fd: Fd::Fixed(1) }, 4).unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    r.submit(Op::read(Fd::Fixed(1), Vec::with_capacity(10), 0), 5)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF);

    r.unregister_files().unwrap();
    assert!(r.unregister_files().is_err());
    r.submit(Op::read(Fd::Fixed(0), Vec::with_capacity(10), 0), 6)
        .unwrap();
    let res = wait_one(&mut r).result;
    if b == BackendKind::Blocking {
        assert_eq!(res, -libc::EBADF);
    } else {
        assert!(
            res == -libc::EBADF || res == -libc::ENXIO,
            "fixed file after unregister: {res}"
        );
    }
    assert!(r.register_files(&[1_000_000]).is_err(), "bad fd refused");
}

fn bad_registered_file_update_is_an_error_not_a_panic(b: BackendKind) {
    let mut r = any_ring::<()>(b, 8);
    // No table registered yet.
    assert!(r.update_file(0, 0).is_err());
    r.register_files(&[-1, -1]).unwrap();
    // Out of range.
    assert!(r.update_file(5, 0).is_err());
    // Clearing an entry works.
    r.update_file(1, -1).unwrap();
    r.unregister_files().unwrap();
    assert!(r.unregister_files().is_err());
}

fn read_fixed_write_fixed_on_registered_buffers(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "fx");
    let mut r = any_ring::<u8>(b, 8);
    let mut buf = AlignedBuf::new(64 * 1024, 4096);
    let data = pattern(buf.as_slice().len(), 7);
    buf.as_mut_slice().copy_from_slice(&data);
    let iov = libc::iovec {
        iov_base: buf.addr() as *mut libc::c_void,
        iov_len: 64 * 1024,
    };
    // SAFETY: `buf`'s memory stays allocated until after unregister_buffers
    // below: it travels through the ring and comes back each time.
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
    let c = wait_one(&mut r);
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
    let c = wait_one(&mut r);
    assert_eq!(c.result, 64 * 1024);
    let buf: AlignedBuf = c.resources.into_buf().unwrap();
    assert_eq!(buf.as_slice(), &data[..]);

    // A buffer outside the registered region, or a bad index: EFAULT, as
    // the kernel says.
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
    assert_eq!(wait_one(&mut r).result, -libc::EFAULT);
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
    assert_eq!(wait_one(&mut r).result, -libc::EFAULT);
    r.unregister_buffers().unwrap();
    assert!(r.unregister_buffers().is_err());
    drop(buf);
}

fn probe_reports_the_basic_ops(b: BackendKind) {
    let r = any_ring::<()>(b, 8);
    for k in [
        OpKind::Nop,
        OpKind::Read,
        OpKind::Write,
        OpKind::Readv,
        OpKind::Writev,
        OpKind::Fsync,
        OpKind::AsyncCancel,
        OpKind::LinkTimeout,
    ] {
        assert!(r.supports(k), "{k} should be supported on this kernel");
    }
    let all: Vec<_> = OpKind::ALL.iter().filter(|k| r.supports(**k)).collect();
    println!("{b}: supported ops: {all:?}");
}
