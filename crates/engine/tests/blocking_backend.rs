//! The same API over the blocking thread-pool backend (what `Auto` falls
//! back to where io_uring is unavailable): ops, both faces, the limit
//! governing the pool's concurrency, shutdown.

mod common;

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use auraio_engine::{BackendChoice, BackendKind, ControllerConfig, Engine, ReaperMode, Request};
use common::*;

fn blocking_engine(reaper: ReaperMode) -> Engine {
    Engine::builder()
        .rings(2)
        .queue_depth(64)
        .backend(BackendChoice::Blocking)
        .reaper(reaper)
        .build()
        .unwrap()
}

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

#[test]
fn every_op_works_on_the_blocking_backend() {
    let e = blocking_engine(ReaperMode::Never);
    assert_eq!(e.backend(0), Some(BackendKind::Blocking));
    let st = e.stats();
    assert_eq!(st.backend, "blocking");
    assert_eq!(st.rings[0].kind, "blocking");

    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &[]);
    let file = open_rw(&p);
    let data = pattern(20_000, 4);
    let (r, _) = via_callback(&e, Request::write(&file, data.clone(), 0));
    assert_eq!(r.unwrap(), data.len());
    let (r, buf) = via_callback(&e, Request::read(&file, Vec::with_capacity(30_000), 0));
    assert_eq!(r.unwrap(), data.len());
    assert_eq!(buf, data);
    let (r, bufs) = via_callback(
        &e,
        Request::readv(&file, vec![vec![0u8; 100], vec![0u8; 50]], 10),
    );
    assert_eq!(r.unwrap(), 150);
    assert_eq!(&bufs[0][..], &data[10..110]);
    assert_eq!(&bufs[1][..], &data[110..160]);
    let (r, _) = via_callback(
        &e,
        Request::writev(&file, vec![b"ab".to_vec(), b"cd".to_vec()], 0),
    );
    assert_eq!(r.unwrap(), 4);
    via_callback(&e, Request::fsync(&file)).unwrap();
    via_callback(&e, Request::fdatasync(&file)).unwrap();
    via_callback(&e, Request::fallocate(&file, 0, 0, 1 << 16)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 1 << 16);
    via_callback(&e, Request::ftruncate(&file, 1000)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 1000);
    let st = via_callback(&e, Request::statx(None, &p, 0, libc::STATX_SIZE)).unwrap();
    assert_eq!(st.stx_size, 1000);
    let d = std::fs::File::open(dir.path()).unwrap();
    let fd = via_callback(&e, Request::openat(Some(d.as_fd()), "f", libc::O_RDONLY, 0)).unwrap();
    let (r, buf) = via_callback(&e, Request::read(&fd, vec![0u8; 4], 0));
    assert_eq!(r.unwrap(), 4);
    assert_eq!(&buf[..], b"abcd");
    via_callback(&e, Request::close(fd)).unwrap();
    via_callback(&e, Request::nop()).unwrap();
    // Errors come back as on io_uring.
    let ro = std::fs::File::open(&p).unwrap();
    let (r, b) = via_callback(&e, Request::write(&ro, b"x".to_vec(), 0));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(b, b"x");
    // Async face.
    let e2 = blocking_engine(ReaperMode::Auto);
    let (r, buf) = futures::executor::block_on(e2.read_at(&file, vec![0u8; 4], 0));
    assert_eq!(r.unwrap(), 4);
    assert_eq!(&buf[..], b"abcd");
}

#[test]
fn the_limit_governs_the_pool_and_shutdown_completes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_file(dir.path(), "f", &pattern(1 << 20, 1));
    let file = std::fs::File::open(&p).unwrap();
    let e = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .backend(BackendChoice::Blocking)
        .controller(ControllerConfig::Fixed {
            in_flight: 3,
            batch: 1,
        })
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..200).map(|_| AtomicU32::new(0)).collect());
    for i in 0..200usize {
        let c = Arc::clone(&calls);
        e.read(
            &file,
            Vec::with_capacity(4096),
            (i as u64 * 4096) % (1 << 20),
            move |r, _| {
                if let Err(e) = r {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                }
                c[i].fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
    }
    // Run part of it, then shut down with ops in flight and backlogged.
    for _ in 0..5 {
        e.wait(Some(std::time::Duration::from_millis(10))).unwrap();
    }
    let st = e.stats();
    assert!(
        st.total.peak_in_flight <= 3,
        "peak {}",
        st.total.peak_in_flight
    );
    drop(e);
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "op {i}");
    }
}

#[test]
fn tokio_tasks_on_the_blocking_backend() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(pattern(64 * 1024, 3));
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let e = blocking_engine(ReaperMode::Auto);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let n: usize = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let (e, file, data) = (e.clone(), Arc::clone(&file), Arc::clone(&data));
            tasks.push(tokio::spawn(async move {
                for i in 0..20u64 {
                    let off = ((t * 20 + i) * 1024) % (63 * 1024);
                    let (r, b) = e.read_at(&*file, Vec::with_capacity(1024), off).await;
                    assert_eq!(r?, 1024);
                    assert_eq!(&b[..], &data[off as usize..off as usize + 1024]);
                }
                Ok::<usize, io::Error>(20)
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap().unwrap();
        }
        n
    });
    assert_eq!(n, 160);
}
