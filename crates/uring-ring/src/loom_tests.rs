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
