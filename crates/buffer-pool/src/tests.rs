//! Unit tests (non-loom).

use super::*;

#[test]
fn alloc_basic() {
    let pool = BufferPool::with_defaults();
    let mut b = pool.alloc(100).expect("alloc");
    assert_eq!(b.len(), 100);
    assert_eq!(b.capacity(), 4096);
    assert_eq!(b.alignment(), 4096);
    assert_eq!(b.as_ptr() as usize % 4096, 0);
    b.fill(7);
    assert!(b.iter().all(|&x| x == 7));
    assert_eq!(b.bytes_init(), 100);
    assert_eq!(b.bytes_total(), 100);
}
