//! Every op round-trips real data on real files.

mod common;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use auraio_ring::{Fd, Op, OpKind, OwnedBuf, Resources, SubmitErrorKind};
use common::*;

fn rw_file(dir: &tempfile::TempDir, name: &str) -> (std::fs::File, std::path::PathBuf) {
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

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn writev_then_readv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "v");
    let mut r = ring::<u32>(8);
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
}

#[test]
fn readv_sets_init_per_buffer_on_short_read() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "short");
    std::fs::write(dir.path().join("short"), pattern(150, 9)).unwrap();
    let mut r = ring::<()>(8);
    let mk = |n: usize| {
        let mut v = vec![0u8; n];
        v.clear();
        Box::new(v) as Box<dyn OwnedBuf>
    };
    r.submit(
        Op::Readv {
            fd: fd(&file),
            bufs: vec![mk(100), mk(100), mk(100)],
            offset: 0,
        },
        (),
    )
    .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 150);
    let got: Vec<Vec<u8>> = c.resources.into_bufs().unwrap();
    assert_eq!(got[0].len(), 100);
    assert_eq!(got[1].len(), 50);
    assert_eq!(got[2].len(), 0);
    assert_eq!([&got[0][..], &got[1][..]].concat(), pattern(150, 9));
}

#[test]
fn fsync_and_fdatasync_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "s");
    let mut r = ring::<bool>(8);
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

#[test]
fn fallocate_extends_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "a");
    let mut r = ring::<()>(8);
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

#[test]
fn ftruncate_sets_length_or_is_reported_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "t");
    std::fs::write(&path, pattern(10_000, 1)).unwrap();
    let mut r = ring::<()>(8);
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
}

#[test]
fn statx_reports_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_file, path) = rw_file(&dir, "x");
    std::fs::write(&path, pattern(4321, 1)).unwrap();
    let mut r = ring::<()>(8);
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

#[test]
fn openat_read_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o");
    let data = pattern(3000, 5);
    std::fs::write(&path, &data).unwrap();
    let mut r = ring::<u8>(8);
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
    r.submit(
        Op::read(
            Fd::Raw(newfd),
            vec![0u8; 0].into_iter().collect::<Vec<u8>>(),
            0,
        ),
        1,
    )
    .unwrap();
    // (an empty Vec has capacity 0: the read returns 0 bytes)
    assert_eq!(wait_one(&mut r).result, 0);
    r.submit(Op::read(Fd::Raw(newfd), Vec::with_capacity(3000), 0), 2)
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 3000);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), data);

    r.submit(Op::Close { fd: Fd::Raw(newfd) }, 3).unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    // The fd is gone now.
    r.submit(Op::read(Fd::Raw(newfd), Vec::with_capacity(10), 0), 4)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF);
}

#[test]
fn registered_files_register_update_unregister() {
    let dir = tempfile::tempdir().unwrap();
    let (a, pa) = rw_file(&dir, "a");
    let (b, pb) = rw_file(&dir, "b");
    let mut r = ring::<u8>(8);
    r.register_files(&[a.as_raw_fd(), -1]).unwrap();
    r.submit(Op::write(Fd::Fixed(0), pattern(600, 1), 0), 0)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 600);
    assert_eq!(std::fs::read(&pa).unwrap(), pattern(600, 1));

    // Slot 1 is empty: EBADF.
    r.submit(Op::write(Fd::Fixed(1), pattern(10, 1), 0), 1)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EBADF);

    r.update_file(1, b.as_raw_fd()).unwrap();
    r.submit(Op::write(Fd::Fixed(1), pattern(700, 2), 0), 2)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 700);
    assert_eq!(std::fs::read(&pb).unwrap(), pattern(700, 2));

    r.submit(Op::read(Fd::Fixed(1), Vec::with_capacity(700), 0), 3)
        .unwrap();
    let c = wait_one(&mut r);
    assert_eq!(c.result, 700);
    assert_eq!(c.resources.into_buf::<Vec<u8>>().unwrap(), pattern(700, 2));

    r.unregister_files().unwrap();
    r.submit(Op::read(Fd::Fixed(0), Vec::with_capacity(10), 0), 4)
        .unwrap();
    let res = wait_one(&mut r).result;
    assert!(
        res == -libc::EBADF || res == -libc::ENXIO,
        "fixed file after unregister: {res}"
    );
}

#[test]
fn read_fixed_write_fixed_on_registered_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let (file, path) = rw_file(&dir, "fx");
    let mut r = ring::<u8>(8);
    let mut buf = AlignedBuf::new(64 * 1024, 4096);
    let data = pattern(buf.as_slice().len(), 7);
    buf.as_mut_slice().copy_from_slice(&data);
    let iov = libc::iovec {
        iov_base: buf.addr() as *mut libc::c_void,
        iov_len: 64 * 1024,
    };
    // SAFETY: `buf`'s memory stays allocated until after unregister_buffers
    // below: it travels through the ring and comes back each time.
    unsafe { r.register_buffers(&[iov]).unwrap() };
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

    // A buffer outside the registered region is refused by the kernel.
    let other = AlignedBuf::new(4096, 4096);
    r.submit(
        Op::ReadFixed {
            fd: fd(&file),
            buf: Box::new(other),
            buf_index: 0,
            offset: 0,
        },
        2,
    )
    .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EFAULT);
    r.unregister_buffers().unwrap();
    drop(buf);
}

#[test]
fn probe_reports_the_basic_ops() {
    let r = ring::<()>(8);
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
    println!("supported ops: {all:?}");
}
