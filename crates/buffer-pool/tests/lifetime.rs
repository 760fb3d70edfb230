//! Pool and buffer lifetimes, checked against the real allocator: nothing
//! leaks when a pool is dropped with buffers out, when buffers are freed on
//! other threads, or when thread caches outlive their pool.
//!
//! One test function: the allocator counters are process-wide, so the
//! scenarios run one after another.

mod common;

use std::sync::mpsc;

use auraio_buffer_pool::{release_dropped_pool_caches, Buffer, BufferPool, PoolConfig};
use common::{live_bytes, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn cfg() -> PoolConfig {
    PoolConfig {
        high_water: 8,
        batch: 4,
        shards: Some(2),
        ..PoolConfig::default()
    }
}

fn pool_dropped_with_buffers_outstanding() {
    let pool = BufferPool::new(cfg()).expect("pool");
    let mut bufs: Vec<Buffer> = (0..20)
        .map(|i| pool.alloc(4096 << (i % 4)).expect("a"))
        .collect();
    drop(bufs.split_off(15)); // some go into this thread's cache
    let before = live_bytes();
    assert!(before > 0);
    assert_eq!(before as u64, pool.stats().bytes_from_system);
    drop(pool);
    // Shards and this thread's cache were released; the 15 held remain.
    let held: i64 = bufs.iter().map(|b| b.capacity() as i64).sum();
    assert_eq!(live_bytes(), held);
    for (i, b) in bufs.iter_mut().enumerate() {
        b.fill(i as u8);
    }
    for (i, b) in bufs.iter().enumerate() {
        assert!(b.iter().all(|&x| x == i as u8));
    }
    // Free some here and some on another thread.
    let other = bufs.split_off(7);
    std::thread::spawn(move || drop(other))
        .join()
        .expect("thread");
    drop(bufs);
    assert_eq!(live_bytes(), 0, "everything returned to the system");
}

fn thread_caches_of_a_dropped_pool_are_released_at_thread_exit() {
    let pool = BufferPool::new(cfg()).expect("pool");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    let t = std::thread::spawn(move || {
        let bufs: Vec<Buffer> = (0..6).map(|_| p.alloc(4096).expect("alloc")).collect();
        drop(bufs); // this thread's cache now holds 6 blocks
        drop(p);
        ready_tx.send(()).expect("send");
        go_rx.recv().expect("recv"); // park while the pool is dropped
    });
    ready_rx.recv().expect("recv");
    assert_eq!(pool.stats().bytes_held_in_threads, 6 * 4096);
    drop(pool);
    assert_eq!(live_bytes(), 6 * 4096, "still cached by the parked thread");
    go_tx.send(()).expect("send");
    t.join().expect("thread");
    assert_eq!(live_bytes(), 0, "released at thread exit");
}

fn thread_caches_of_a_dropped_pool_are_released_on_next_use() {
    let a = BufferPool::new(cfg()).expect("pool");
    let (cmd_tx, cmd_rx) = mpsc::channel::<u8>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let pa = a.clone();
    let t = std::thread::spawn(move || {
        drop(pa.alloc(64 << 10).expect("alloc")); // cached here
        drop(pa);
        ack_tx.send(()).expect("ack");
        while let Ok(cmd) = cmd_rx.recv() {
            match cmd {
                1 => {
                    // Using another pool sweeps caches of dropped ones.
                    let b = BufferPool::new(cfg()).expect("pool");
                    drop(b.alloc(4096).expect("alloc"));
                    drop(b);
                }
                _ => release_dropped_pool_caches(),
            }
            ack_tx.send(()).expect("ack");
        }
    });
    ack_rx.recv().expect("ack");
    drop(a);
    assert_eq!(live_bytes(), 64 << 10, "cached by the other thread");
    cmd_tx.send(1).expect("cmd");
    ack_rx.recv().expect("ack");
    assert_eq!(live_bytes(), 0, "released when that thread used a new pool");
    drop(cmd_tx);
    t.join().expect("thread");
    assert_eq!(live_bytes(), 0);
}

fn buffers_freed_on_other_threads_return_to_the_pool() {
    let pool = BufferPool::new(cfg()).expect("pool");
    let (tx, rx) = mpsc::channel::<Buffer>();
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        for b in rx {
            assert_eq!(b[0], (b.len() % 251) as u8);
            n += 1;
        }
        n
    });
    for i in 0..500usize {
        let mut b = pool.alloc(1 + (i * 977) % 100_000).expect("alloc");
        b[0] = (b.len() % 251) as u8;
        tx.send(b).expect("send");
    }
    drop(tx);
    assert_eq!(consumer.join().expect("thread"), 500);
    let s = pool.stats();
    assert_eq!(s.in_use_total(), 0);
    assert_eq!(live_bytes() as u64, s.bytes_from_system, "{s:#?}");
    // The consumer's cache left at its exit; only this thread's remains
    // (holding batches it refilled from the shards).
    assert_eq!(s.thread_caches, 1, "{s:#?}");
    assert!(
        s.shard_hits > 0,
        "blocks freed by the consumer were reused: {s:#?}"
    );
    for row in &s.classes {
        assert!(row.cached_in_threads <= row.high_water);
        assert!(row.cached_in_shards <= s.shards * row.high_water);
    }
    drop(pool);
    assert_eq!(live_bytes(), 0);
}

/// Buffers allocated and freed from a thread-local destructor that runs
/// after the pool's thread caches were torn down: the pool falls back to the
/// shards and nothing leaks or panics.
fn pool_use_during_thread_teardown() {
    use std::cell::RefCell;
    struct Guard(RefCell<Option<(BufferPool, Buffer)>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some((pool, held)) = self.0.borrow_mut().take() {
                let mut fresh = pool.alloc(8192).expect("alloc during teardown");
                fresh.fill(3);
                assert!(held.iter().all(|&x| x == 5));
                drop((held, fresh));
            }
        }
    }
    thread_local! {
        static GUARD: Guard = const { Guard(RefCell::new(None)) };
    }
    let pool = BufferPool::new(cfg()).expect("pool");
    let p = pool.clone();
    std::thread::spawn(move || {
        // Registered before the pool's caches, so destroyed after them.
        GUARD.with(|g| {
            let _ = g.0.borrow().is_some();
        });
        let mut held = p.alloc(4096).expect("alloc");
        held.fill(5);
        drop(p.alloc(4096).expect("alloc")); // creates this thread's cache
        GUARD.with(|g| *g.0.borrow_mut() = Some((p.clone(), held)));
    })
    .join()
    .expect("thread");
    let s = pool.stats();
    assert_eq!(s.allocations, s.frees, "{s:#?}");
    assert_eq!(s.thread_caches, 0);
    assert_eq!(live_bytes() as u64, s.bytes_from_system);
    drop(pool);
    assert_eq!(live_bytes(), 0);
}

trait InUse {
    fn in_use_total(&self) -> u64;
}
impl InUse for auraio_buffer_pool::PoolStats {
    fn in_use_total(&self) -> u64 {
        self.allocations - self.frees
    }
}

#[test]
fn lifetimes_never_leak_or_dangle() {
    assert_eq!(live_bytes(), 0);
    pool_dropped_with_buffers_outstanding();
    thread_caches_of_a_dropped_pool_are_released_at_thread_exit();
    thread_caches_of_a_dropped_pool_are_released_on_next_use();
    buffers_freed_on_other_threads_return_to_the_pool();
    pool_use_during_thread_teardown();
}
