//! `Engine::submit_batch`: every accepted op completes exactly once, the
//! in-flight limit and FIFO backlog apply, a bad request in the middle of a
//! batch stops it without losing or double-completing anything, shutdown.

mod common;

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use auraio_engine::{
    is_shutdown, BatchError, ControllerConfig, Engine, OpHandle, OpKind, ReaperMode, Request,
};

use common::{drive_until, make_file, open_rw, pattern, pipe};

/// A one-ring engine with a fixed in-flight limit.
fn limited_engine(limit: u32) -> Engine {
    Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: limit,
            batch: 4,
        })
        .reaper(ReaperMode::Never)
        .build()
        .unwrap()
}

/// One counter per op: how many times its callback ran.
fn counters(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

fn assert_each_once(calls: &[AtomicU32]) {
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(
            c.load(Ordering::SeqCst),
            1,
            "op {i} completed a wrong number of times"
        );
    }
}

type NopCb = Box<dyn FnOnce(io::Result<()>) + Send>;

/// `n` NOPs whose callbacks count themselves in `calls[first..]` and record
/// their result.
fn nops(
    calls: &Arc<Vec<AtomicU32>>,
    first: usize,
    n: usize,
    ok: &Arc<AtomicUsize>,
) -> Vec<(Request<io::Result<()>>, NopCb)> {
    (first..first + n)
        .map(|i| {
            let calls = Arc::clone(calls);
            let ok = Arc::clone(ok);
            let cb: NopCb = Box::new(move |r: io::Result<()>| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                if r.is_ok() {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            });
            (Request::nop(), cb)
        })
        .collect()
}

#[test]
fn batch_larger_than_the_limit_completes_each_op_once() {
    let engine = limited_engine(4);
    let n = 200;
    let calls = counters(n);
    let ok = Arc::new(AtomicUsize::new(0));
    let accepted = engine.submit_batch(nops(&calls, 0, n, &ok)).unwrap();
    assert_eq!(accepted, n);
    // Nothing was delivered yet (callbacks run in poll/wait): the ops beyond
    // the limit wait in the backlog.
    let st = engine.stats();
    assert_eq!(st.rings[0].pending, n as u64);
    assert!(
        st.rings[0].in_flight <= 4,
        "in flight {}",
        st.rings[0].in_flight
    );
    assert!(
        st.rings[0].backlog >= (n - 4) as u32,
        "backlog {}",
        st.rings[0].backlog
    );
    engine.run_until_idle().unwrap();
    assert_each_once(&calls);
    assert_eq!(ok.load(Ordering::SeqCst), n);
    assert_eq!(engine.pending(), 0);
    let st = engine.stats();
    assert!(
        st.rings[0].peak_in_flight <= 4,
        "peak {}",
        st.rings[0].peak_in_flight
    );
    assert_eq!(st.rings[0].completions, n as u64);
}

/// The backlog's refill goes to the kernel in batch-threshold pieces, like
/// any submission, not as one `io_uring_enter` per reaped wave (which sent
/// a virtio disk every wave back whole and cost it 11 % of its IOPS).
#[test]
fn a_backlog_refill_is_submitted_in_batch_threshold_pieces() {
    let batch = 4;
    let engine = Engine::builder()
        .rings(1)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 32,
            batch,
        })
        .batch_threshold(Some(batch))
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let n = 160;
    let calls = counters(n);
    let ok = Arc::new(AtomicUsize::new(0));
    // One by one (`submit_batch` hands its ops to the kernel together).
    for (req, cb) in nops(&calls, 0, n, &ok) {
        engine.submit(req, cb).unwrap();
    }
    // 32 in the ring, the rest waiting: every poll reaps a wave and
    // refills it from the backlog.
    assert!(engine.stats().total.backlog > 0);
    drive_until(&engine, || ok.load(Ordering::SeqCst) == n, "every NOP");
    assert_each_once(&calls);
    // The ring's enter counters reach `stats()` at the next tick.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut st = engine.stats();
    while st.rings[0].sqes_submitted < n as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
        st = engine.stats();
    }
    let r = &st.rings[0];
    assert_eq!(r.sqes_submitted, n as u64);
    assert!(
        r.sqes_submitted <= r.submit_calls * u64::from(batch),
        "{} SQEs in {} submitting enters: more than the threshold of {batch} per enter",
        r.sqes_submitted,
        r.submit_calls
    );
}

#[test]
fn batch_queues_behind_an_existing_backlog_in_order() {
    let engine = limited_engine(2);
    let order = Arc::new(Mutex::new(Vec::new()));
    // Two pipe reads fill the limit and stay in flight.
    let (rd, wr) = pipe();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let h = engine
            .read(&rd, vec![0u8; 1], 0, |r, _b| {
                assert!(r.is_ok() || r.unwrap_err().raw_os_error() == Some(libc::ECANCELED));
            })
            .unwrap();
        handles.push(h);
    }
    // One op backlogged by `submit`, then a batch: the batch goes behind it.
    let o = Arc::clone(&order);
    engine
        .submit(Request::nop(), move |_r| o.lock().unwrap().push(0usize))
        .unwrap();
    let batch: Vec<_> = (1..=5usize)
        .map(|i| {
            let o = Arc::clone(&order);
            (Request::nop(), move |_r: io::Result<()>| {
                o.lock().unwrap().push(i)
            })
        })
        .collect();
    assert_eq!(engine.submit_batch(batch).unwrap(), 5);
    assert_eq!(engine.stats().rings[0].backlog, 6);
    // Free the limit: the backlog drains in FIFO order, one op at a time
    // under a limit of 1 free slot (the other pipe read stays in flight).
    engine.cancel(&handles[0]).unwrap();
    drive_until(&engine, || order.lock().unwrap().len() == 6, "the backlog");
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    drop(wr);
    engine.run_until_idle().unwrap();
    assert_eq!(engine.pending(), 0);
}

#[test]
fn batches_from_many_threads_complete_exactly_once() {
    let engine = Engine::builder()
        .rings(2)
        .queue_depth(64)
        .controller(ControllerConfig::Fixed {
            in_flight: 8,
            batch: 4,
        })
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let threads = 4;
    let batches = 40;
    let per = 24;
    let n = threads * batches * per;
    let calls = counters(n);
    let ok = Arc::new(AtomicUsize::new(0));
    thread::scope(|s| {
        for t in 0..threads {
            let engine = engine.clone();
            let calls = Arc::clone(&calls);
            let ok = Arc::clone(&ok);
            s.spawn(move || {
                for b in 0..batches {
                    let first = (t * batches + b) * per;
                    let got = engine.submit_batch(nops(&calls, first, per, &ok)).unwrap();
                    assert_eq!(got, per);
                    // Drive now and then (any thread may deliver any op).
                    engine.poll().unwrap();
                }
            });
        }
    });
    engine.run_until_idle().unwrap();
    assert_each_once(&calls);
    assert_eq!(ok.load(Ordering::SeqCst), n);
    assert_eq!(engine.stats().total.completions, n as u64);
}

/// A callback that submits the next generation as a batch of two.
fn spawn_generation(engine: &Engine, depth: u32, done: &Arc<AtomicU64>) {
    let batch: Vec<_> = (0..2)
        .map(|_| {
            let e = engine.clone();
            let done = Arc::clone(done);
            (Request::nop(), move |r: io::Result<()>| {
                assert!(r.is_ok());
                done.fetch_add(1, Ordering::SeqCst);
                if depth > 1 {
                    spawn_generation(&e, depth - 1, &done);
                }
            })
        })
        .collect();
    assert_eq!(engine.submit_batch(batch).unwrap(), 2);
}

#[test]
fn callbacks_may_submit_batches() {
    let engine = limited_engine(3);
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..5 {
        spawn_generation(&engine, 4, &done);
    }
    // 5 roots x (2 + 4 + 8 + 16) ops; run_until_idle must not return while a
    // callback's batch is still pending.
    engine.run_until_idle().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 5 * (2 + 4 + 8 + 16));
    assert_eq!(engine.pending(), 0);
}

type BufCb = Box<dyn FnOnce((io::Result<usize>, Vec<u8>)) + Send>;
type BufReq = Request<(io::Result<usize>, Vec<u8>)>;

#[test]
fn mixed_reads_and_writes_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 4096;
    let chunks = 16;
    let src = pattern(chunk * chunks, 3);
    let src_file = open_rw(&make_file(dir.path(), "src", &src));
    let dst_file = open_rw(&make_file(dir.path(), "dst", &vec![0u8; chunk * chunks]));
    let engine = limited_engine(5);
    let reads = Arc::new(Mutex::new(vec![None; chunks]));
    let writes = Arc::new(AtomicUsize::new(0));
    // Interleaved: read chunk i of src, write chunk i's expected bytes to dst.
    let mut batch: Vec<(BufReq, BufCb)> = Vec::new();
    for i in 0..chunks {
        let off = (i * chunk) as u64;
        let r = Arc::clone(&reads);
        batch.push((
            Request::read(&src_file, Vec::with_capacity(chunk), off),
            Box::new(move |(res, buf)| {
                assert_eq!(res.unwrap(), chunk);
                let mut g = r.lock().unwrap();
                assert!(g[i].is_none(), "read {i} completed twice");
                g[i] = Some(buf);
            }),
        ));
        let w = Arc::clone(&writes);
        batch.push((
            Request::write(&dst_file, src[i * chunk..(i + 1) * chunk].to_vec(), off),
            Box::new(move |(res, buf)| {
                assert_eq!(res.unwrap(), chunk);
                assert_eq!(buf.len(), chunk);
                w.fetch_add(1, Ordering::SeqCst);
            }),
        ));
    }
    assert_eq!(engine.submit_batch(batch).unwrap(), 2 * chunks);
    engine.run_until_idle().unwrap();
    assert_eq!(writes.load(Ordering::SeqCst), chunks);
    let reads = reads.lock().unwrap();
    for (i, r) in reads.iter().enumerate() {
        let buf = r.as_ref().expect("every read completed");
        assert_eq!(&buf[..], &src[i * chunk..(i + 1) * chunk], "chunk {i}");
    }
    // An fsync batch on both files, then the data is on dst.
    let synced = Arc::new(AtomicUsize::new(0));
    let sync_batch: Vec<_> = [&src_file, &dst_file]
        .iter()
        .map(|f| {
            let s = Arc::clone(&synced);
            (Request::fsync(*f), move |r: io::Result<()>| {
                r.unwrap();
                s.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert_eq!(engine.submit_batch(sync_batch).unwrap(), 2);
    engine.run_until_idle().unwrap();
    assert_eq!(synced.load(Ordering::SeqCst), 2);
    let mut back = vec![0u8; chunk * chunks];
    dst_file.read_exact_at(&mut back, 0).unwrap();
    assert!(back == src, "dst differs from src");
}

#[test]
fn shutdown_with_a_batch_in_flight_completes_every_op() {
    let engine = limited_engine(4);
    let (rd, _wr) = pipe();
    let n = 12;
    let calls = counters(n);
    let canceled = Arc::new(AtomicUsize::new(0));
    // Pipe reads stay in flight (4) or in the backlog (8) until shutdown.
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let calls = Arc::clone(&calls);
            let c = Arc::clone(&canceled);
            let cb: BufCb = Box::new(move |(r, buf): (io::Result<usize>, Vec<u8>)| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                assert_eq!(buf.capacity(), 16, "op {i} got another buffer back");
                if r.is_err_and(|e| e.raw_os_error() == Some(libc::ECANCELED)) {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            });
            (Request::read(&rd, Vec::with_capacity(16), 0), cb)
        })
        .collect();
    assert_eq!(engine.submit_batch(batch).unwrap(), n);
    engine.poll().unwrap();
    let st = engine.stats();
    assert_eq!(st.rings[0].in_flight, 4);
    assert_eq!(st.rings[0].backlog, 8);
    engine.shutdown();
    assert_each_once(&calls);
    assert_eq!(canceled.load(Ordering::SeqCst), n);
    assert_eq!(engine.pending(), 0);

    // After shutdown: a clear error, nothing taken, every callback back.
    let calls2 = counters(3);
    let ok = Arc::new(AtomicUsize::new(0));
    let err = engine.submit_batch(nops(&calls2, 0, 3, &ok)).unwrap_err();
    assert!(is_shutdown(err.error()), "{err}");
    assert_eq!(err.accepted(), 0);
    assert_eq!(err.not_submitted(), 3);
    for c in calls2.iter() {
        assert_eq!(c.load(Ordering::SeqCst), 0);
    }
    let (e, ran) = err.complete_all();
    assert!(is_shutdown(&e));
    assert_eq!(ran, 3);
    assert_each_once(&calls2);
    assert_eq!(ok.load(Ordering::SeqCst), 0);
}

#[test]
fn a_bad_request_stops_the_batch_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(8 * 512, 9);
    let file = open_rw(&make_file(dir.path(), "f", &data));
    let engine = limited_engine(3);
    let n = 10;
    let bad = 6;
    let calls = counters(n);
    let batch: Vec<(BufReq, BufCb)> = (0..n)
        .map(|i| {
            // Op `bad` asks for a position beyond i64::MAX: InvalidInput.
            let off = if i == bad {
                u64::MAX - 10
            } else {
                (i % 8 * 512) as u64
            };
            let calls = Arc::clone(&calls);
            let expect = data[i % 8 * 512..(i % 8 + 1) * 512].to_vec();
            let cb: BufCb = Box::new(move |(r, buf)| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                if i != bad {
                    assert_eq!(r.unwrap(), 512);
                    assert_eq!(buf, expect, "op {i}");
                }
            });
            (Request::read(&file, Vec::with_capacity(512 + i), off), cb)
        })
        .collect();
    let err: BatchError<_, _> = engine.submit_batch(batch).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.accepted(), bad);
    assert_eq!(err.not_submitted(), n - bad);
    let (e, refused, rest) = err.into_parts();
    assert!(e.to_string().contains("i64::MAX"), "{e}");
    let ((res, buf), cb) = refused.expect("the bad op comes back");
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        buf.capacity(),
        512 + bad,
        "the bad op's own buffer comes back"
    );
    assert_eq!(rest.len(), n - bad - 1);
    // The accepted ops complete; the others were not touched.
    engine.run_until_idle().unwrap();
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), u32::from(i < bad), "op {i}");
    }
    // The untouched rest can be submitted again, and the refused callback
    // is still the caller's to call.
    assert_eq!(engine.submit_batch(rest).unwrap(), n - bad - 1);
    cb((Err(io::Error::other("refused")), buf));
    engine.run_until_idle().unwrap();
    assert_each_once(&calls);
    assert_eq!(engine.pending(), 0);
}

#[test]
fn an_unsupported_op_stops_the_batch_and_complete_all_calls_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = open_rw(&make_file(dir.path(), "f", b"x"));
    let engine = limited_engine(2);
    engine.disable_op(OpKind::Fsync);
    let n = 6;
    let calls = counters(n);
    let errs = Arc::new(AtomicUsize::new(0));
    type UnitCb = Box<dyn FnOnce(io::Result<()>) + Send>;
    let batch: Vec<(Request<io::Result<()>>, UnitCb)> = (0..n)
        .map(|i| {
            let calls = Arc::clone(&calls);
            let errs = Arc::clone(&errs);
            let req = if i == 2 {
                Request::fsync(&file)
            } else {
                Request::nop()
            };
            let cb: UnitCb = Box::new(move |r| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                match r {
                    Ok(()) => assert!(i < 2, "op {i} ran"),
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "op {i}: {e}");
                        errs.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            (req, cb)
        })
        .collect();
    let err = engine.submit_batch(batch).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert_eq!(err.accepted(), 2);
    let (_, ran) = err.complete_all();
    assert_eq!(ran, n - 2);
    engine.run_until_idle().unwrap();
    assert_each_once(&calls);
    assert_eq!(errs.load(Ordering::SeqCst), n - 2);
    assert_eq!(engine.pending(), 0);
    let _ = file.as_raw_fd();
}

#[test]
fn handles_of_a_batch_cancel_their_ops() {
    let engine = limited_engine(8);
    let (rd, wr) = pipe();
    let n = 4;
    let calls = counters(n);
    let results = Arc::new(Mutex::new(vec![None; n]));
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let calls = Arc::clone(&calls);
            let results = Arc::clone(&results);
            let cb: BufCb = Box::new(move |(r, _buf)| {
                calls[i].fetch_add(1, Ordering::SeqCst);
                results.lock().unwrap()[i] = Some(r.map_err(|e| e.raw_os_error()));
            });
            (Request::read(&rd, Vec::with_capacity(1), 0), cb)
        })
        .collect();
    let mut handles: Vec<OpHandle> = Vec::new();
    assert_eq!(
        engine
            .submit_batch_with_handles(batch, &mut handles)
            .unwrap(),
        n
    );
    assert_eq!(handles.len(), n);
    for h in &handles {
        engine.cancel(h).unwrap();
    }
    drive_until(
        &engine,
        || handles.iter().all(OpHandle::is_done),
        "cancelled batch ops",
    );
    engine.run_until_idle().unwrap();
    assert_each_once(&calls);
    for (i, r) in results.lock().unwrap().iter().enumerate() {
        assert_eq!(*r, Some(Err(Some(libc::ECANCELED))), "op {i}");
    }
    drop(wr);
}

#[test]
fn an_empty_batch_is_accepted() {
    let engine = limited_engine(2);
    let none: Vec<(Request<io::Result<()>>, NopCb)> = Vec::new();
    assert_eq!(engine.submit_batch(none).unwrap(), 0);
    assert_eq!(engine.pending(), 0);
}

#[test]
fn a_panicking_batch_iterator_leaves_the_ring_consistent() {
    let engine = limited_engine(2);
    let n = 6;
    let calls = counters(n);
    let ok = Arc::new(AtomicUsize::new(0));
    let mut items = nops(&calls, 0, n, &ok).into_iter();
    let mut taken = 0;
    // The iterator panics after handing over 4 pairs (2 pushed, 2 in the
    // backlog); the rest are dropped with the unwinding, never accepted.
    let iter = std::iter::from_fn(|| {
        taken += 1;
        assert!(taken <= 4, "iterator fails mid-batch");
        items.next()
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.submit_batch(iter)));
    assert!(r.is_err(), "the iterator's panic propagates");
    assert_eq!(engine.pending(), 4, "the 4 pairs taken were accepted");
    engine.run_until_idle().unwrap();
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), u32::from(i < 4), "op {i}");
    }
    // The ring still works.
    let calls2 = counters(3);
    assert_eq!(engine.submit_batch(nops(&calls2, 0, 3, &ok)).unwrap(), 3);
    engine.run_until_idle().unwrap();
    assert_each_once(&calls2);
    assert_eq!(ok.load(Ordering::SeqCst), 4 + 3);
    assert_eq!(engine.pending(), 0);
}

#[test]
fn batches_on_both_backends() {
    use auraio_engine::BackendChoice;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(64 * 256, 5);
    let file = open_rw(&make_file(dir.path(), "f", &data));
    for choice in [BackendChoice::Auto, BackendChoice::Blocking] {
        let engine = Engine::builder()
            .rings(1)
            .queue_depth(16)
            .backend(choice)
            .controller(ControllerConfig::Fixed {
                in_flight: 3,
                batch: 2,
            })
            .reaper(ReaperMode::Never)
            .build()
            .unwrap();
        let n = 64;
        let calls = counters(n);
        let make = |range: std::ops::Range<usize>| -> Vec<(BufReq, BufCb)> {
            range
                .map(|i| {
                    let calls = Arc::clone(&calls);
                    let expect = data[i * 256..(i + 1) * 256].to_vec();
                    let cb: BufCb = Box::new(move |(r, buf)| {
                        calls[i].fetch_add(1, Ordering::SeqCst);
                        assert_eq!(r.unwrap(), 256, "op {i}");
                        assert_eq!(buf, expect, "op {i}");
                    });
                    (
                        Request::read(&file, Vec::with_capacity(256), (i * 256) as u64),
                        cb,
                    )
                })
                .collect()
        };
        // More than the limit and more than the 16 slots at once.
        assert_eq!(engine.submit_batch(make(0..40)).unwrap(), 40, "{choice:?}");
        // A second batch with a bad request in the middle (a bad offset).
        let mut second = make(40..n);
        second[10].0 = Request::read(&file, Vec::with_capacity(256), u64::MAX);
        let err = engine.submit_batch(second).unwrap_err();
        assert_eq!(err.accepted(), 10, "{choice:?}");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let (_, refused, rest) = err.into_parts();
        let (_, cb) = refused.unwrap();
        drop(cb); // its op (50) never runs: resubmit it properly
        assert_eq!(engine.submit_batch(make(50..51)).unwrap(), 1);
        assert_eq!(engine.submit_batch(rest).unwrap(), n - 51, "{choice:?}");
        engine.run_until_idle().unwrap();
        assert_each_once(&calls);
        assert_eq!(engine.pending(), 0);
        assert!(engine.stats().rings[0].peak_in_flight <= 3);
    }
}
