//! Every operation through the engine, on real files in a temp dir, through
//! both faces (callback + `poll/wait`, and futures under `block_on`).

mod common;

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auraio_engine::{Engine, OpKind, ReaperMode, Request};
use common::*;

/// Runs `req` through the callback face and returns its output.
fn via_callback<O: Send + 'static>(engine: &Engine, req: Request<O>) -> O {
    let slot = Arc::new(Mutex::new(None));
    let s2 = Arc::clone(&slot);
    engine
        .submit(req, move |out| *s2.lock().unwrap() = Some(out))
        .map_err(|e| e.to_string())
        .unwrap();
    drive_until(engine, || slot.lock().unwrap().is_some(), "callback");
    let out = slot.lock().unwrap().take().unwrap();
    out
}

/// Runs `req` through the async face (`block_on`) and returns its output.
fn via_future<O: 'static>(engine: &Engine, req: Request<O>) -> O {
    futures::executor::block_on(engine.call(req))
}

/// Both faces, each on a fresh engine; the callback engine has no reaper.
fn both<O: Send + 'static>(mk: impl Fn() -> Request<O>, check: impl Fn(O, &str)) {
    let cb_engine = engine(ReaperMode::Never);
    check(via_callback(&cb_engine, mk()), "callback");
    let fut_engine = engine(ReaperMode::Auto);
    check(via_future(&fut_engine, mk()), "future");
}

#[test]
fn write_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = open_rw(&p);
    let data = pattern(10_000, 3);
    both(
        || Request::write(&file, data.clone(), 0),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap(), data.len(), "{face}");
            assert_eq!(buf, data, "{face}: buffer comes back unchanged");
        },
    );
    assert_eq!(std::fs::read(&p).unwrap(), data);
    both(
        || Request::read(&file, Vec::with_capacity(20_000), 0),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap(), data.len(), "{face}: short read at EOF");
            assert_eq!(buf, data, "{face}: init length set to bytes read");
        },
    );
    // Offset read.
    both(
        || Request::read(&file, vec![0u8; 100], 5000),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap(), 100, "{face}");
            assert_eq!(&buf[..], &data[5000..5100], "{face}");
        },
    );
}

#[test]
fn callback_convenience_methods() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = open_rw(&p);
    let e = engine(ReaperMode::Never);
    let done = Arc::new(Mutex::new(Vec::<String>::new()));
    let d = Arc::clone(&done);
    e.write(&file, b"hello, world".to_vec(), 0, move |r, buf| {
        d.lock()
            .unwrap()
            .push(format!("write {} {}", r.unwrap(), buf.len()));
    })
    .unwrap();
    e.run_until_idle().unwrap();
    let d = Arc::clone(&done);
    e.fsync(&file, move |r| {
        r.unwrap();
        d.lock().unwrap().push("fsync".into());
    })
    .unwrap();
    let d = Arc::clone(&done);
    e.fdatasync(&file, move |r| {
        r.unwrap();
        d.lock().unwrap().push("fdatasync".into());
    })
    .unwrap();
    e.run_until_idle().unwrap();
    let d = Arc::clone(&done);
    e.read(&file, vec![0u8; 5], 7, move |r, buf| {
        d.lock().unwrap().push(format!(
            "read {} {}",
            r.unwrap(),
            String::from_utf8(buf).unwrap()
        ));
    })
    .unwrap();
    e.run_until_idle().unwrap();
    let got = done.lock().unwrap().clone();
    assert_eq!(got[0], "write 12 12");
    assert!(got.contains(&"fsync".to_string()) && got.contains(&"fdatasync".to_string()));
    assert_eq!(got[3], "read 5 world");
    assert_eq!(e.pending(), 0);
}

#[test]
fn readv_and_writev() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = open_rw(&p);
    let a = pattern(3000, 1);
    let b = pattern(5000, 2);
    both(
        || Request::writev(&file, vec![a.clone(), b.clone()], 0),
        |(r, bufs): (io::Result<usize>, Vec<Vec<u8>>), face| {
            assert_eq!(r.unwrap(), 8000, "{face}");
            assert_eq!(bufs, vec![a.clone(), b.clone()], "{face}");
        },
    );
    let on_disk = std::fs::read(&p).unwrap();
    assert_eq!(&on_disk[..3000], &a[..]);
    assert_eq!(&on_disk[3000..], &b[..]);
    both(
        || Request::readv(&file, vec![vec![0u8; 1000], vec![0u8; 7000]], 0),
        |(r, bufs): (io::Result<usize>, Vec<Vec<u8>>), face| {
            assert_eq!(r.unwrap(), 8000, "{face}");
            assert_eq!(&bufs[0][..], &on_disk[..1000], "{face}");
            assert_eq!(&bufs[1][..], &on_disk[1000..], "{face}");
        },
    );
}

#[test]
fn fsync_fdatasync_fallocate_ftruncate() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"abc");
    let file = open_rw(&p);
    both(
        || Request::fsync(&file),
        |r, face| r.unwrap_or_else(|e| panic!("{face}: {e}")),
    );
    both(
        || Request::fdatasync(&file),
        |r, face| r.unwrap_or_else(|e| panic!("{face}: {e}")),
    );
    both(
        || Request::fallocate(&file, 0, 0, 1 << 20),
        |r, face| r.unwrap_or_else(|e| panic!("{face}: {e}")),
    );
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        1 << 20,
        "fallocate extends"
    );
    let probe = engine(ReaperMode::Never);
    let supported = {
        let r = probe.submit(Request::ftruncate(&file, 4096), |_| {});
        match r {
            Ok(_) => {
                probe.run_until_idle().unwrap();
                true
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::Unsupported);
                println!("skipping ftruncate: {}", e.error());
                false
            }
        }
    };
    if supported {
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4096);
        both(
            || Request::ftruncate(&file, 100),
            |r, face| r.unwrap_or_else(|e| panic!("{face}: {e}")),
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 100);
    }
}

#[test]
fn statx_openat_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(12_345, 9);
    let p = make_file(dir.path(), "f", &data);
    both(
        || Request::statx(None, &p, 0, libc::STATX_SIZE),
        |r, face| {
            let st = r.unwrap_or_else(|e| panic!("{face}: {e}"));
            assert_eq!(st.stx_size, 12_345, "{face}");
        },
    );
    // Relative to a directory fd.
    let d = std::fs::File::open(dir.path()).unwrap();
    both(
        || Request::statx(Some(d.as_fd()), "f", 0, libc::STATX_SIZE),
        |r, face| assert_eq!(r.unwrap().stx_size, 12_345, "{face}"),
    );
    both(
        || Request::statx(None, dir.path().join("missing"), 0, libc::STATX_SIZE),
        |r, face| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOENT), "{face}"),
    );
    let e = engine(ReaperMode::Never);
    let fd = via_callback(&e, Request::openat(None, &p, libc::O_RDONLY, 0)).unwrap();
    let (r, buf) = via_callback(&e, Request::read(&fd, vec![0u8; 100], 0));
    assert_eq!(r.unwrap(), 100);
    assert_eq!(&buf[..], &data[..100]);
    via_callback(&e, Request::close(fd)).unwrap();
    // Async face.
    let e2 = engine(ReaperMode::Auto);
    let fd = futures::executor::block_on(e2.openat_async(Some(d.as_fd()), "f", libc::O_RDONLY, 0))
        .unwrap();
    let raw = fd.as_raw_fd();
    assert!(raw >= 0);
    futures::executor::block_on(e2.close_async(fd)).unwrap();
    // Interior NUL: refused at submit, callback never called.
    let err = e
        .submit(Request::openat(None, "a\0b", libc::O_RDONLY, 0), |_| {
            panic!("must not be called")
        })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = e
        .submit(Request::statx(None, "a\0b", 0, libc::STATX_SIZE), |_| {
            panic!("must not be called")
        })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn fixed_buffers_and_fixed_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(8192, 5);
    let p = make_file(dir.path(), "f", &data);
    let file = open_rw(&p);
    let e = engine(ReaperMode::Never);
    // Two buffers, registered by address; the boxes themselves are then
    // moved into the ops (the memory does not move).
    let bufs: Vec<Box<[u8]>> = vec![
        vec![0u8; 4096].into_boxed_slice(),
        vec![7u8; 4096].into_boxed_slice(),
    ];
    let iovecs: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: the boxes outlive the registration (unregistered below before
    // they drop) and are only touched through the ops while in flight.
    unsafe { e.register_buffers(&iovecs).unwrap() };
    let mut it = bufs.into_iter();
    let (b0, b1) = (it.next().unwrap(), it.next().unwrap());
    let (r, b0) = via_callback(&e, Request::read_fixed(&file, b0, 0, 4096));
    assert_eq!(r.unwrap(), 4096);
    assert_eq!(&b0[..], &data[4096..]);
    let (r, b1) = via_callback(&e, Request::write_fixed(&file, b1, 1, 0));
    assert_eq!(r.unwrap(), 4096);
    assert_eq!(&std::fs::read(&p).unwrap()[..4096], &[7u8; 4096][..]);
    // A buffer outside the registered one: the kernel refuses it.
    let (r, _) = via_callback(&e, Request::read_fixed(&file, vec![0u8; 64], 0, 0));
    assert!(r.is_err(), "unregistered memory must fail");
    e.unregister_buffers().unwrap();
    drop((b0, b1));

    let fixed = e.register_files(&[file.as_raw_fd()]).unwrap();
    let (r, buf) = via_callback(&e, Request::read(&fixed[0], vec![0u8; 10], 5000));
    assert_eq!(r.unwrap(), 10);
    assert_eq!(&buf[..], &data[5000..5010]);
    e.unregister_files().unwrap();
}

#[test]
fn linked_ops_run_in_order_and_a_failed_first_cancels_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = open_rw(&p);
    let e = engine(ReaperMode::Never);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (o1, o2) = (Arc::clone(&order), Arc::clone(&order));
    e.submit_linked(
        Request::write(&file, b"linked".to_vec(), 0),
        move |(r, _b): (io::Result<usize>, Vec<u8>)| {
            o1.lock().unwrap().push(format!("w{}", r.unwrap()))
        },
        Request::fsync(&file),
        move |r: io::Result<()>| o2.lock().unwrap().push(format!("s{}", r.is_ok())),
    )
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        vec!["w6".to_string(), "strue".to_string()]
    );
    assert_eq!(std::fs::read(&p).unwrap(), b"linked");

    // A write on a read-only fd fails; the kernel cancels the second.
    let ro = std::fs::File::open(&p).unwrap();
    let e = engine(ReaperMode::Auto);
    let (fa, fb) = e.call_linked(
        Request::write(&ro, b"nope".to_vec(), 0),
        Request::fsync(&file),
    );
    let ((r1, _), r2) = futures::executor::block_on(async { (fa.await, fb.await) });
    assert_eq!(r1.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(r2.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn per_op_timeout_cancels_a_stuck_read() {
    let (rd, _wr) = pipe();
    both(
        || Request::read(&rd, vec![0u8; 16], 0).with_timeout(Duration::from_millis(30)),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::ECANCELED),
                "{face}"
            );
            assert_eq!(buf.capacity(), 16, "{face}: buffer comes back");
        },
    );
    // A timeout that does not fire.
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"quick");
    let f = std::fs::File::open(&p).unwrap();
    both(
        || Request::read(&f, vec![0u8; 5], 0).with_timeout(Duration::from_secs(10)),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap(), 5, "{face}");
            assert_eq!(buf, b"quick", "{face}");
        },
    );
}

#[test]
fn unsupported_op_fails_at_submit_with_the_buffer() {
    let e = engine(ReaperMode::Never);
    e.disable_op(OpKind::Read);
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"x");
    let f = std::fs::File::open(&p).unwrap();
    let err = e
        .read(&f, vec![1u8, 2, 3], 0, |_, _| {
            panic!("callback must not run")
        })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    let (r, buf) = err.into_output();
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert_eq!(buf, vec![1u8, 2, 3], "buffer handed back");
    // The async face resolves at once with the same error.
    let (r, buf) = futures::executor::block_on(e.read_at(&f, vec![9u8], 0));
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert_eq!(buf, vec![9u8]);
    assert_eq!(e.pending(), 0);
    // Other ops still work.
    let (r, _) = via_callback(&e, Request::write(&open_rw(&p), b"y".to_vec(), 0));
    assert_eq!(r.unwrap(), 1);
}

#[test]
fn io_errors_reach_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"data");
    let ro = std::fs::File::open(&p).unwrap();
    both(
        || Request::write(&ro, b"zz".to_vec(), 0),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF), "{face}");
            assert_eq!(buf, b"zz", "{face}");
        },
    );
    // Read past EOF: 0 bytes.
    both(
        || Request::read(&ro, Vec::with_capacity(8), 1 << 20),
        |(r, buf): (io::Result<usize>, Vec<u8>), face| {
            assert_eq!(r.unwrap(), 0, "{face}");
            assert!(buf.is_empty(), "{face}");
        },
    );
}
