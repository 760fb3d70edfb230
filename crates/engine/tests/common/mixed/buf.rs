//! `StressBuf`, the buffer that knows its op and, on drop, releases its
//! chunk and the live count.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::shadow::{lock, Chunk, Region};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
}

/// A buffer that knows its op: it checks routing, and on drop (wherever
/// that happens: a callback, a future's owner, or the engine for a dropped
/// future) releases its chunk and the live count.
pub struct StressBuf {
    pub(super) id: u64,
    pub(super) data: Vec<u8>,
    pub(super) kind: Kind,
    pub(super) region: Arc<Mutex<Region>>,
    pub(super) chunk: usize,
    /// Position in the region and requested length.
    pub(super) off: usize,
    pub(super) len: usize,
    /// Its result was applied to the shadow (writes).
    pub(super) applied: bool,
    pub(super) live: Arc<AtomicI64>,
}

super::io_buf_via_data!(StressBuf);

impl Drop for StressBuf {
    fn drop(&mut self) {
        let mut r = lock(&self.region);
        match self.kind {
            Kind::Write => {
                if !self.applied {
                    // A failed or abandoned write may or may not have
                    // reached the file: those bytes are unknown from now on.
                    for k in &mut r.known[self.off..self.off + self.len] {
                        *k = false;
                    }
                }
                r.chunks[self.chunk] = Chunk::Free;
            }
            Kind::Read => {
                r.chunks[self.chunk] = match r.chunks[self.chunk] {
                    Chunk::Reading(n) if n > 1 => Chunk::Reading(n - 1),
                    _ => Chunk::Free,
                };
            }
        }
        drop(r);
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}
