//! Cancels, dropped futures, re-tuning and shutdown racing real completions:
//! every accepted op completes exactly once and every buffer comes back.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auraio_engine::{Engine, ReaperMode};
use common::*;

#[test]
fn cancels_drops_and_shutdown_race_completions() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(1 << 20, 6);
    let p = make_file(dir.path(), "f", &data);
    let file = Arc::new(std::fs::File::open(&p).unwrap());
    let (rd, wr) = pipe();
    let (rd, wr) = (Arc::new(rd), Arc::new(wr));
    let tag = Arc::new(());
    const THREADS: usize = 4;
    const PER: usize = 3000;
    // One completion counter per callback op.
    let calls: Arc<Vec<AtomicU8>> =
        Arc::new((0..THREADS * PER).map(|_| AtomicU8::new(0)).collect());
    let bad_data = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let e = Engine::builder()
        .rings(2)
        .queue_depth(64)
        .initial_in_flight(8)
        .reaper(ReaperMode::Auto)
        .build()
        .unwrap();
    let stop_writer = Arc::new(AtomicBool::new(false));
    // Feed the pipe slowly so some pipe reads complete and others get
    // cancelled.
    let writer = {
        let (wr, stop) = (Arc::clone(&wr), Arc::clone(&stop_writer));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: writes 8 bytes from a live stack buffer.
                let _ = unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(&*wr),
                        [1u8; 8].as_ptr().cast(),
                        8,
                    )
                };
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (e, file, rd, tag, calls, bad, acc) = (
                e.clone(),
                Arc::clone(&file),
                Arc::clone(&rd),
                Arc::clone(&tag),
                Arc::clone(&calls),
                Arc::clone(&bad_data),
                Arc::clone(&accepted),
            );
            let data = data.clone();
            std::thread::spawn(move || {
                let mut futs = Vec::new();
                let mut x = 0x9E37_79B9u64 + t as u64;
                for i in 0..PER {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = t * PER + i;
                    let buf = Tracked {
                        data: Vec::with_capacity(512),
                        _tag: Arc::clone(&tag),
                    };
                    match x % 6 {
                        0..=2 => {
                            let off = (x >> 8) % ((1 << 20) - 512);
                            let (c, bad, data) =
                                (Arc::clone(&calls), Arc::clone(&bad), data.clone());
                            let r = e.read(&*file, buf, off, move |r, b| {
                                c[id].fetch_add(1, Ordering::SeqCst);
                                if let Ok(n) = r {
                                    if b.data[..n] != data[off as usize..off as usize + n] {
                                        bad.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            });
                            match r {
                                Ok(h) => {
                                    acc.fetch_add(1, Ordering::SeqCst);
                                    if x.is_multiple_of(7) {
                                        let _ = e.cancel(&h);
                                    }
                                }
                                Err(_) => {
                                    // Only after shutdown; the callback never runs.
                                    calls[id].fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        3 => {
                            let c = Arc::clone(&calls);
                            let r = e.read(&*rd, buf, 0, move |_, _| {
                                c[id].fetch_add(1, Ordering::SeqCst);
                            });
                            match r {
                                Ok(h) => {
                                    acc.fetch_add(1, Ordering::SeqCst);
                                    if x.is_multiple_of(2) {
                                        let _ = e.cancel(&h);
                                    }
                                }
                                Err(_) => {
                                    calls[id].fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        4 => {
                            // A future dropped at once or later.
                            calls[id].fetch_add(1, Ordering::SeqCst);
                            let f = e.read_at(&*rd, buf, 0);
                            if x.is_multiple_of(3) {
                                drop(f);
                            } else {
                                futs.push(f);
                            }
                        }
                        _ => {
                            calls[id].fetch_add(1, Ordering::SeqCst);
                            let off = (x >> 8) % ((1 << 20) - 512);
                            futs.push(e.read_at(&*file, buf, off));
                        }
                    }
                    if i.is_multiple_of(64) {
                        let _ = e.poll();
                        if futs.len() > 32 {
                            futs.drain(..16);
                        }
                    }
                    if t == 0 && i.is_multiple_of(500) {
                        // Re-tune while ops fly.
                        e.set_max_in_flight(4 + (i as u32 % 40));
                    }
                }
                futs
            })
        })
        .collect();
    let mut leftover = Vec::new();
    for h in handles {
        leftover.extend(h.join().unwrap());
    }
    // Shut down with ops still in flight and in the backlogs; keep some
    // futures alive past the shutdown.
    drop(e);
    stop_writer.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let mut resolved = 0;
    for f in leftover.drain(..) {
        let (_r, _b) = futures::executor::block_on(f);
        resolved += 1;
    }
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(
            c.load(Ordering::SeqCst),
            1,
            "op {i} completed {} times",
            c.load(Ordering::SeqCst)
        );
    }
    assert_eq!(
        bad_data.load(Ordering::SeqCst),
        0,
        "a read returned wrong bytes"
    );
    assert_eq!(Arc::strong_count(&tag), 1, "every buffer was released");
    println!(
        "{} callback ops accepted, {resolved} futures resolved after shutdown",
        accepted.load(Ordering::SeqCst)
    );
}
