//! loom model of the slot state protocol the ring's users rely on: with the
//! table behind a lock, a completion, a cancel by (possibly stale) id and a
//! shutdown sweep race. Each op must be finished exactly once, and a cancel
//! aimed at an old op must never touch the op that reuses its slot.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::slots::SlotTable;

/// An op's resources; counts its drops so leaks and double frees show.
struct Res {
    drops: Arc<AtomicUsize>,
    cancelled: bool,
}

impl Drop for Res {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn loom_complete_vs_cancel_vs_shutdown() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let table = Arc::new(Mutex::new(SlotTable::new(1)));
        let first = {
            let res = Res {
                drops: drops.clone(),
                cancelled: false,
            };
            match table.lock().unwrap().insert(res) {
                Ok(id) => id,
                Err(_) => panic!("empty table refused an insert"),
            }
        };

        // Reaper: completes the first op, then submits a second one that
        // reuses the same slot.
        let reaper = {
            let (table, drops) = (table.clone(), drops.clone());
            thread::spawn(move || {
                let mut t = table.lock().unwrap();
                let done = t.remove(first).map(drop).is_some();
                let second = t
                    .insert(Res {
                        drops,
                        cancelled: false,
                    })
                    .ok();
                (done, second)
            })
        };
        // Canceller: cancels the first op by id (it may already be gone).
        let canceller = {
            let table = table.clone();
            thread::spawn(move || {
                let mut t = table.lock().unwrap();
                if let Some(r) = t.get_mut(first) {
                    r.cancelled = true;
                }
            })
        };
        // Shutdown: sweeps whatever is live.
        let shutdown = {
            let table = table.clone();
            thread::spawn(move || table.lock().unwrap().take_all().len())
        };

        let (reaped_first, second) = reaper.join().unwrap();
        canceller.join().unwrap();
        let swept = shutdown.join().unwrap();

        let mut t = table.lock().unwrap();
        // The reused slot never carries the stale cancel.
        if let Some(id) = second {
            if let Some(r) = t.get(id) {
                assert!(!r.cancelled, "a stale cancel hit the reused slot");
            }
        }
        let left = t.take_all().len();
        drop(t);
        let created = 1 + usize::from(second.is_some());
        assert_eq!(
            usize::from(reaped_first) + swept + left,
            created,
            "every op is finished exactly once"
        );
        assert_eq!(drops.load(Ordering::SeqCst), created);
    });
}

/// The blocking backend's job protocol: a worker starting jobs (and the
/// second op of a link), a cancel, the timer firing a link timeout and a
/// shutdown sweep race over the shared state. Every op must produce exactly
/// one completion, and a cancelled link head must take its second with it.
#[test]
fn loom_blocking_worker_vs_cancel_vs_timer_vs_shutdown() {
    use crate::blocking::state::{Job, State, Target};
    use crate::op::Op;
    use crate::slots::SlotId;

    fn job(id: SlotId, queued: bool, link: Option<SlotId>, deadline: Option<u64>) -> Job {
        Job {
            id,
            op: Op::Nop,
            target: Target::Raw(-1),
            pre: None,
            link,
            queued,
            deadline_ns: deadline,
        }
    }

    loom::model(|| {
        let (a, b, c) = (SlotId::new(0, 0), SlotId::new(1, 0), SlotId::new(2, 0));
        let mut st = State::new(3, 1);
        assert!(st.enqueue(job(a, true, Some(b), None)).is_ok());
        assert!(st.enqueue(job(b, false, None, None)).is_ok());
        assert!(st.enqueue(job(c, true, None, Some(5))).is_ok());
        let state = Arc::new(Mutex::new(st));

        // Worker: start jobs in order; after a success, the link's second.
        let worker = {
            let state = state.clone();
            thread::spawn(move || loop {
                let Some(j) = state.lock().unwrap().pop_next() else {
                    return;
                };
                // (the syscall runs here, without the lock)
                let mut st = state.lock().unwrap();
                st.complete(j.id, 0, crate::Resources::None, 1);
                if let Some(second) = j.link.and_then(|l| st.take_job(l)) {
                    drop(st);
                    state
                        .lock()
                        .unwrap()
                        .complete(second.id, 0, crate::Resources::None, 2);
                }
            })
        };
        // Canceller: cancels the link head (may already be running).
        let canceller = {
            let state = state.clone();
            thread::spawn(move || state.lock().unwrap().cancel(a, 3))
        };
        // Timer: c's deadline has passed.
        let timer = {
            let state = state.clone();
            thread::spawn(move || state.lock().unwrap().expire(10))
        };
        let cancelled = canceller.join().unwrap();
        let fired = timer.join().unwrap();
        worker.join().unwrap();
        // Shutdown sweep: nothing may be left, or it is finished here.
        let mut st = state.lock().unwrap();
        st.cancel_all(20);
        let mut ids: Vec<SlotId> = st.done.iter().map(|d| d.id).collect();
        ids.sort();
        assert_eq!(ids, vec![a, b, c], "each op completes exactly once");
        let result = |id: SlotId| st.done.iter().find(|d| d.id == id).map(|d| d.result);
        if cancelled {
            assert_eq!(result(a), Some(-libc::ECANCELED));
            assert_eq!(result(b), Some(-libc::ECANCELED), "link second follows");
        } else {
            assert_eq!(result(a), Some(0));
        }
        assert_eq!(fired == 1, result(c) == Some(-libc::ECANCELED));
        assert_eq!(st.waiting, 0);
    });
}
