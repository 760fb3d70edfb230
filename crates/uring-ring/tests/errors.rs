//! Error paths, on both backends: errors come back as results or typed
//! errors, never panics.

mod common;

use auraio_ring::{AnyRing, BackendKind, Fd, Op, OpKind, OwnedBuf, RingConfig, SubmitErrorKind};
use common::*;

backend_tests!(
    bad_fd_gives_ebadf,
    offsets_beyond_i64_are_einval_and_max_is_the_file_position,
    unsupported_op_is_a_typed_error_with_op_and_token_back,
    too_many_iovecs_is_invalid_input,
    full_ring_refuses_with_token_back_and_pipes_ignore_offsets,
    bad_config_is_invalid_input_not_panic,
    cancel_of_unknown_slot_is_not_found,
    a_panicking_set_init_completes_its_read_with_eio_and_loses_nothing,
);

/// A buffer whose `set_init` panics (user code behind an unsafe trait).
struct PanickyBuf(Vec<u8>);

// SAFETY: the Vec's memory is stable while the buffer is owned, readable
// for `len` and writable for its whole length.
unsafe impl auraio_ring::IoBuf for PanickyBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.len()
    }
}

// SAFETY: as above.
unsafe impl auraio_ring::IoBufMut for PanickyBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        panic!("set_init({pos}) refuses");
    }
}

fn a_panicking_set_init_completes_its_read_with_eio_and_loses_nothing(b: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "p");
    let data = pattern(8192, 7);
    std::fs::write(dir.path().join("p"), &data).unwrap();
    let mut r = any_ring::<u8>(b, 8);
    // Reads before and after the panicking one, reaped together.
    r.submit(Op::read(fd(&file), Vec::with_capacity(4096), 0), 1)
        .unwrap();
    r.submit(Op::read(fd(&file), PanickyBuf(vec![0; 4096]), 0), 2)
        .unwrap();
    r.submit(Op::read(fd(&file), Vec::with_capacity(4096), 4096), 3)
        .unwrap();
    let mut got = wait_n(&mut r, 3);
    got.sort_by_key(|c| c.token);
    assert_eq!(got.iter().map(|c| c.token).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(got[1].result, -libc::EIO, "the panicking buffer's read");
    for c in [&got[0], &got[2]] {
        assert_eq!(c.result, 4096, "token {}", c.token);
    }
    let mut got = got.into_iter();
    let first: Vec<u8> = got.next().unwrap().resources.into_buf().unwrap();
    assert_eq!(first, data[..4096]);
    // The panicking op's buffer still comes back (the kernel's bytes are in
    // it; only its own bookkeeping failed).
    let back: PanickyBuf = got.next().unwrap().resources.into_buf().unwrap();
    assert_eq!(back.0, data[..4096]);
    let third: Vec<u8> = got.next().unwrap().resources.into_buf().unwrap();
    assert_eq!(third, data[4096..]);
    assert_eq!(r.in_flight(), 0);
}

fn bad_fd_gives_ebadf(b: BackendKind) {
    let mut r = any_ring::<u8>(b, 8);
    r.submit(Op::read(Fd::Raw(-1), Vec::with_capacity(16), 0), 1)
        .unwrap();
    // An fd number that is certainly not open.
    r.submit(Op::write(Fd::Raw(1_000_000), vec![1u8; 16], 0), 2)
        .unwrap();
    let mut got = wait_n(&mut r, 2);
    got.sort_by_key(|c| c.token);
    assert_eq!(got[0].result, -libc::EBADF);
    assert_eq!(got[1].result, -libc::EBADF);
    let e = got[0].io_result().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    // The buffer still comes back, untouched (init length stays 0).
    let v: Vec<u8> = got.remove(0).resources.into_buf().unwrap();
    assert!(v.is_empty(), "init length untouched on error");
}

fn offsets_beyond_i64_are_einval_and_max_is_the_file_position(b: BackendKind) {
    let mut r = any_ring::<u8>(b, 8);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = rw_file(&dir, "e");
    r.submit(Op::write(fd(&file), vec![1u8; 4], 1 << 63), 3)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, -libc::EINVAL);
    // u64::MAX means "the file position".
    r.submit(Op::write(fd(&file), vec![7u8; 4], u64::MAX), 4)
        .unwrap();
    assert_eq!(wait_one(&mut r).result, 4, "current file position");
}

fn unsupported_op_is_a_typed_error_with_op_and_token_back(b: BackendKind) {
    let mut r = any_ring::<String>(b, 8);
    r.disable_op(OpKind::Fallocate);
    assert!(!r.supports(OpKind::Fallocate));
    let e = r
        .submit(
            Op::Fallocate {
                fd: Fd::Raw(0),
                mode: 0,
                offset: 0,
                len: 10,
            },
            "tok".to_string(),
        )
        .unwrap_err();
    assert!(matches!(
        e.kind,
        SubmitErrorKind::Unsupported(OpKind::Fallocate)
    ));
    assert_eq!(e.token, "tok");
    assert_eq!(e.op.kind(), OpKind::Fallocate);
    assert_eq!(r.in_flight(), 0);
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Unsupported);
}

fn too_many_iovecs_is_invalid_input(b: BackendKind) {
    let mut r = any_ring::<()>(b, 8);
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
            (),
        )
        .unwrap_err();
    assert!(matches!(e.kind, SubmitErrorKind::InvalidInput(_)));
    match e.op {
        Op::Writev { bufs, .. } => assert_eq!(bufs.len(), 2000),
        other => panic!("op not returned intact: {other:?}"),
    }
    assert_eq!(r.in_flight(), 0);
}

fn full_ring_refuses_with_token_back_and_pipes_ignore_offsets(b: BackendKind) {
    let mut r = any_ring::<u32>(b, 8);
    let cap = r.capacity();
    assert_eq!(cap, 8);
    let (rd, wr) = pipe();
    for i in 0..cap {
        let one: Box<[u8]> = vec![0u8; 1].into_boxed_slice();
        // Offsets on a pipe are ignored, as io_uring does.
        r.submit(Op::read(fd(&rd), one, 4096), i).unwrap();
    }
    assert_eq!(r.in_flight(), cap);
    let e = r
        .submit(Op::read(fd(&rd), Vec::with_capacity(8), 0), 99)
        .unwrap_err();
    assert!(matches!(e.kind, SubmitErrorKind::Full));
    assert_eq!(e.token, 99);
    // Unblock everything: 8 reads of 1 byte each.
    write_all(&wr, &[7u8; 8]);
    let got = wait_n(&mut r, cap as usize);
    assert!(got.iter().all(|c| c.result == 1));
    assert_eq!(r.in_flight(), 0);
}

fn bad_config_is_invalid_input_not_panic(b: BackendKind) {
    let e = AnyRing::<()>::new(
        &RingConfig {
            sq_entries: 0,
            ..Default::default()
        },
        choice(b),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = AnyRing::<()>::new(
        &RingConfig {
            sq_entries: 64,
            cq_entries: Some(64),
            ..Default::default()
        },
        choice(b),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

fn cancel_of_unknown_slot_is_not_found(b: BackendKind) {
    let mut r = any_ring::<()>(b, 8);
    let id = r.submit(Op::Nop, ()).unwrap();
    assert_eq!(wait_one(&mut r).result, 0);
    let e = r.cancel(id).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}
