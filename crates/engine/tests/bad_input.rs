//! Bad input at the API: each case gets a clear error or a documented
//! behaviour (see docs/reliability.md); none panics, hangs or leaks.

mod common;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use auraio_engine::{is_shutdown, BackendChoice, BufferPool, Engine, OpKind, ReaperMode, Request};
use common::mixed::poll_once;
use common::*;
use futures::future::FusedFuture;

fn engine_on(backend: BackendChoice, reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(2)
        .queue_depth(32)
        .backend(backend)
        .reaper(reaper)
        .build()
        .unwrap()
}

const BACKENDS: [BackendChoice; 2] = [BackendChoice::Auto, BackendChoice::Blocking];

#[test]
fn zero_length_ops_complete_with_ok_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", b"abc");
    let f = open_rw(&p);
    for backend in BACKENDS {
        let e = engine_on(backend, ReaperMode::Auto);
        // As io_uring (and read(2)/write(2)) do: a zero-length transfer is
        // not an error; it completes with 0 and the buffer comes back.
        let (r, b) = block_on(e.read_at(&f, Vec::new(), 0));
        assert_eq!(r.unwrap(), 0, "empty read ({backend})");
        assert!(b.is_empty());
        let (r, _) = block_on(e.write_at(&f, Vec::new(), 1));
        assert_eq!(r.unwrap(), 0, "empty write ({backend})");
        let (r, b) = block_on(e.readv_at(&f, Vec::<Vec<u8>>::new(), 0));
        assert_eq!(r.unwrap(), 0, "readv of no buffers ({backend})");
        assert!(b.is_empty());
        let (r, _) = block_on(e.writev_at(&f, vec![Vec::new(), Vec::new()], 0));
        assert_eq!(r.unwrap(), 0, "writev of empty buffers ({backend})");
        // fallocate of 0 bytes is the kernel's EINVAL, passed through.
        let r = block_on(e.fallocate_async(&f, 0, 0, 0));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
    assert_eq!(std::fs::read(&p).unwrap(), b"abc", "nothing changed");
}

#[test]
fn lengths_come_from_the_buffer_and_cannot_exceed_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let f = open_rw(&p);
    let e = engine_on(BackendChoice::Auto, ReaperMode::Auto);
    // A write sends the Vec's length, never its spare capacity.
    let mut v = Vec::with_capacity(100);
    v.extend_from_slice(&pattern(10, 1));
    let (r, v) = block_on(e.write_at(&f, v, 0));
    assert_eq!(r.unwrap(), 10);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 10);
    assert_eq!(v.capacity(), 100);
    // A read fills at most the capacity.
    let (r, b) = block_on(e.read_at(&f, Vec::with_capacity(4), 0));
    assert_eq!(r.unwrap(), 4);
    assert_eq!(b, pattern(10, 1)[..4]);
    // Pool buffers: the length (<= capacity by construction). A window
    // beyond the capacity cannot even be made: the buffer comes back.
    let pool = BufferPool::with_defaults();
    let mut buf = pool.alloc(4096).unwrap();
    buf.truncate(7);
    let (r, _) = block_on(e.write_at(&f, buf, 0));
    assert_eq!(r.unwrap(), 7);
    let big = pool.alloc(16).unwrap();
    let cap = big.capacity();
    let err = big.slice(0..cap + 1).unwrap_err();
    let _buffer_back = err.buffer;
}

#[test]
fn offsets_beyond_i64_are_invalid_input_and_never_reach_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let f = open_rw(&make_file(dir.path(), "f", b"data"));
    for backend in BACKENDS {
        let e = engine_on(backend, ReaperMode::Never);
        let max = i64::MAX as u64;
        for (off, len) in [(u64::MAX, 8usize), (max + 1, 8), (max - 3, 8)] {
            // Callback face: refused at submit, buffer handed back, the
            // callback never runs.
            let err = e
                .read(&f, Vec::with_capacity(len), off, |_, _| {
                    panic!("callback of a refused op")
                })
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{off} ({backend})");
            assert!(err.to_string().contains("i64::MAX"), "{err}");
            let (r, b) = err.into_output();
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert_eq!(b.capacity(), len);
            let err = e
                .write(&f, vec![1u8; len], off, |_, _| panic!("refused"))
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            // Future face: resolves at once.
            let (r, b) = block_on(e.read_at(&f, vec![0u8; len], off));
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert_eq!(b.len(), len);
        }
        let r = block_on(e.fallocate_async(&f, 0, max, 2));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let r = block_on(e.ftruncate_async(&f, max + 1));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        // Linked ops are checked as a pair.
        let err = e
            .submit_linked(
                Request::write(&f, b"x".to_vec(), u64::MAX),
                |_| panic!("refused"),
                Request::fsync(&f),
                |_| panic!("refused"),
            )
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Nothing was sent to the kernel.
        let st = e.stats();
        assert_eq!(st.total.sqes_submitted, 0, "{backend}");
        assert_eq!(st.total.completions, 0);
        assert_eq!(e.pending(), 0);
        // The largest valid position is accepted (and is past EOF).
        let (r, _) = block_on(async {
            let f2 = e.read_at(&f, Vec::with_capacity(8), max - 8);
            e.run_until_idle().unwrap();
            f2.await
        });
        assert_eq!(r.unwrap(), 0);
    }
}

#[test]
fn every_submission_after_shutdown_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = open_rw(&make_file(dir.path(), "f", b"x"));
    let e = engine_on(BackendChoice::Auto, ReaperMode::Auto);
    e.shutdown();
    let err = e.nop(|_| panic!("refused")).unwrap_err();
    assert!(is_shutdown(err.error()));
    let err = e.fsync(&f, |_| panic!("refused")).unwrap_err();
    assert!(is_shutdown(err.error()));
    let err = e
        .submit_linked(
            Request::write(&f, b"y".to_vec(), 0),
            |_| panic!("refused"),
            Request::fsync(&f),
            |_| panic!("refused"),
        )
        .unwrap_err();
    assert!(is_shutdown(err.error()));
    let ((r, b), r2) = err.into_output();
    assert!(r.is_err() && r2.is_err());
    assert_eq!(b, b"y", "linked buffers handed back");
    let (fa, fb) = e.call_linked(Request::nop(), Request::nop());
    assert!(is_shutdown(&block_on(fa).unwrap_err()));
    assert!(is_shutdown(&block_on(fb).unwrap_err()));
    assert!(is_shutdown(
        &e.register_files(&[f.as_raw_fd()]).unwrap_err()
    ));
    assert!(is_shutdown(&e.unregister_buffers().unwrap_err()));
    assert_eq!(e.pending(), 0);
}

#[test]
fn registering_nothing_is_invalid_input() {
    for backend in BACKENDS {
        let e = engine_on(backend, ReaperMode::Never);
        // SAFETY: no memory is registered.
        let err = unsafe { e.register_buffers(&[]) }.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{backend}");
        let err = e.register_files(&[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{backend}");
        // And the engine still works.
        let ran = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&ran);
        e.nop(move |res| {
            res.unwrap();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        e.run_until_idle().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn unregistering_with_fixed_ops_in_flight_is_refused_and_they_complete_intact() {
    for backend in BACKENDS {
        let e = engine_on(backend, ReaperMode::Never);
        let (rd, wr) = pipe();
        let (rd2, wr2) = pipe();
        let buf: Box<[u8]> = vec![0u8; 64].into_boxed_slice();
        let iov = [libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        }];
        // SAFETY: the box is moved into the op below (its memory does not
        // move) and outlives the registration, unregistered at the end.
        unsafe { e.register_buffers(&iov).unwrap() };
        let got = Arc::new(Mutex::new(None));
        let g = Arc::clone(&got);
        // Stuck in flight until the pipe gets data.
        e.read_fixed(&rd, buf, 0, 0, move |r, b| {
            *g.lock().unwrap() = Some((r.map_err(|e| e.raw_os_error()), b));
        })
        .unwrap();
        e.poll().unwrap();
        let err = e.unregister_buffers().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err} ({backend})");
        // Registered files: the same rule.
        let fixed = e.register_files(&[rd2.as_raw_fd()]).unwrap();
        let got2 = Arc::new(Mutex::new(None));
        let g2 = Arc::clone(&got2);
        e.read(&fixed[0], vec![0u8; 3], 0, move |r, b| {
            *g2.lock().unwrap() = Some((r.map_err(|e| e.raw_os_error()), b));
        })
        .unwrap();
        let err = e.unregister_files().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err} ({backend})");
        // The ops were not disturbed: feed the pipes and they complete.
        for (w, msg) in [(&wr, &b"fixedbuf"[..]), (&wr2, &b"abc"[..])] {
            // SAFETY: writes `msg` from a live buffer to an open pipe.
            let n = unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
            assert_eq!(n, msg.len() as isize);
        }
        drive_until(
            &e,
            || got.lock().unwrap().is_some() && got2.lock().unwrap().is_some(),
            "both reads",
        );
        let (r1, b1) = got.lock().unwrap().take().unwrap();
        let (r2, b2) = got2.lock().unwrap().take().unwrap();
        assert_eq!(r1, Ok(8), "{backend}");
        assert_eq!(&b1[..8], b"fixedbuf", "the registered buffer got the data");
        assert_eq!(r2, Ok(3));
        assert_eq!(b2, b"abc");
        // Now nothing is pending: both unregister.
        e.unregister_buffers().unwrap();
        e.unregister_files().unwrap();
        // Only now may the registered memory go.
        drop(b1);
    }
}

#[test]
fn a_panicking_callback_loses_nothing_else_and_drops_its_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(pattern(64 * 100, 2));
    let f = std::fs::File::open(make_file(dir.path(), "f", &data)).unwrap();
    let e = engine_on(BackendChoice::Auto, ReaperMode::Never);
    let tag = Arc::new(());
    let ok = Arc::new(AtomicU32::new(0));
    for i in 0..100u64 {
        let (ok, data) = (Arc::clone(&ok), Arc::clone(&data));
        let buf = Tracked::new(Vec::with_capacity(64), &tag);
        e.read(&f, buf, i * 64, move |r, b| {
            assert_eq!(r.unwrap(), 64);
            if i % 5 == 0 {
                panic!("callback {i} panics (expected by the test)");
            }
            assert_eq!(b.data[..], data[(i * 64) as usize..][..64]);
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(ok.load(Ordering::SeqCst), 80, "every other callback ran");
    let st = e.stats();
    assert_eq!(st.total.callback_panics, 20);
    assert_eq!(st.total.completions, 100);
    assert_eq!(e.pending(), 0);
    assert_eq!(
        Arc::strong_count(&tag),
        1,
        "panicking callbacks' buffers dropped"
    );
}

#[test]
fn a_future_polled_after_completion_stays_pending_and_is_terminated() {
    let e = engine_on(BackendChoice::Auto, ReaperMode::Auto);
    let mut f = e.nop_async();
    assert!(!f.is_terminated());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match poll_once(&mut f) {
            Poll::Ready(r) => {
                r.unwrap();
                break;
            }
            Poll::Pending => {
                assert!(std::time::Instant::now() < deadline, "never completed");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    assert!(f.is_terminated());
    // Polled again: Pending, forever, never a panic.
    for _ in 0..3 {
        assert!(poll_once(&mut f).is_pending());
    }
    // A future refused at submit is ready at once, then the same.
    e.disable_op(OpKind::Nop);
    let mut g = e.nop_async();
    match poll_once(&mut g) {
        Poll::Ready(r) => assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Unsupported),
        Poll::Pending => panic!("a refused op resolves at once"),
    }
    assert!(g.is_terminated());
    assert!(poll_once(&mut g).is_pending());
    // Cancelling or dropping a finished future does nothing.
    f.cancel();
    drop(f);
    assert_eq!(e.pending(), 0);
}
