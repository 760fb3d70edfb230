//! Many threads submitting at once: every op completes exactly once.
//!
//! `AURAIO_STRESS_OPS` sets the ops per thread (default 100 000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use auraio_engine::{Engine, ReaperMode};

#[test]
fn four_threads_each_submit_many_ops_with_an_exact_completion_count() {
    let per_thread: u64 = std::env::var("AURAIO_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    const THREADS: u64 = 4;
    let e = Engine::builder()
        .rings(2)
        .queue_depth(256)
        .reaper(ReaperMode::Never)
        .build()
        .unwrap();
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (e, counts, errors) = (e.clone(), Arc::clone(&counts), Arc::clone(&errors));
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let (c, er) = (Arc::clone(&counts), Arc::clone(&errors));
                    e.nop(move |r| {
                        if r.is_err() {
                            er.fetch_add(1, Ordering::Relaxed);
                        }
                        c[t as usize].fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    // Every thread also reaps (callbacks may run on any of
                    // them).
                    if i % 128 == 127 {
                        e.poll().unwrap();
                    }
                }
                e.run_until_idle().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    e.run_until_idle().unwrap();
    let total: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    for (t, c) in counts.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), per_thread, "thread {t}");
    }
    assert_eq!(total, THREADS * per_thread);
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    let st = e.stats();
    assert_eq!(st.total.completions, THREADS * per_thread);
    assert_eq!(st.total.pending, 0);
    assert_eq!(st.total.in_flight, 0);
    assert_eq!(st.total.backlog, 0);
    println!(
        "{} ops; peak in flight {}; {:.1} SQEs per submit",
        total, st.total.peak_in_flight, st.total.sqes_per_enter
    );
}
