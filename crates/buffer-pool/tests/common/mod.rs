//! A global allocator wrapper that counts live memory allocated with an
//! alignment of at least 512 bytes: in these test binaries only the buffer
//! pool asks for such alignment, so this is the ground truth of the memory
//! the pool holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

pub struct Counting;

pub static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
pub static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);

fn tracked(layout: &Layout) -> bool {
    layout.align() >= 512
}

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && tracked(&layout) {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::SeqCst);
            LIVE_BLOCKS.fetch_add(1, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if tracked(&layout) {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::SeqCst);
            LIVE_BLOCKS.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Bytes of pool memory currently obtained from the system.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::SeqCst)
}

/// Number of pool blocks currently obtained from the system.
#[allow(dead_code)]
pub fn live_blocks() -> i64 {
    LIVE_BLOCKS.load(Ordering::SeqCst)
}
