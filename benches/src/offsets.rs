//! Seeded offset generation: block-aligned, uniformly random or sequential.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cli::RwMode;

/// One request the workload issues next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req {
    /// Byte offset, a multiple of the block size.
    pub offset: u64,
    /// True for a write, false for a read.
    pub write: bool,
}

/// Produces the offsets of one submitting thread.
#[derive(Debug)]
pub struct OffsetGen {
    rng: SmallRng,
    mode: RwMode,
    bs: u64,
    blocks: u64,
    next_block: u64,
}

impl OffsetGen {
    /// A generator over the first `size` bytes in `bs` blocks (a partial last
    /// block is never used). `thread` picks the seed stream and, for the
    /// sequential modes, the starting point (threads start spread out).
    ///
    /// # Panics
    /// Never: `bs == 0` or `size < bs` yield a generator that always returns 0.
    pub fn new(mode: RwMode, size: u64, bs: u64, seed: u64, thread: u32, threads: u32) -> Self {
        let blocks = size.checked_div(bs).unwrap_or(0);
        let start = if blocks == 0 {
            0
        } else {
            (blocks as u128 * thread as u128 / threads.max(1) as u128) as u64
        };
        let stream = seed ^ (u64::from(thread).wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        OffsetGen {
            rng: SmallRng::seed_from_u64(stream),
            mode,
            bs,
            blocks,
            next_block: start,
        }
    }

    /// The number of usable blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The next request.
    pub fn next_req(&mut self) -> Req {
        if self.blocks == 0 {
            return Req {
                offset: 0,
                write: self.mode.writes(),
            };
        }
        let block = if self.mode.is_random() {
            self.rng.gen_range(0..self.blocks)
        } else {
            let b = self.next_block;
            self.next_block = (b + 1) % self.blocks;
            b
        };
        let write = match self.mode {
            RwMode::RandRw => self.rng.gen_bool(0.5),
            m => m.writes(),
        };
        Req {
            offset: block * self.bs,
            write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_offsets_are_aligned_in_range_and_seeded() {
        let size = 1 << 20;
        let mut a = OffsetGen::new(RwMode::RandRead, size + 100, 4096, 7, 0, 1);
        let mut b = OffsetGen::new(RwMode::RandRead, size + 100, 4096, 7, 0, 1);
        let mut c = OffsetGen::new(RwMode::RandRead, size + 100, 4096, 8, 0, 1);
        assert_eq!(a.blocks(), 256);
        let mut seen = std::collections::HashSet::new();
        let mut differs = false;
        for _ in 0..4096 {
            let r = a.next_req();
            assert_eq!(r, b.next_req());
            differs |= r != c.next_req();
            assert_eq!(r.offset % 4096, 0);
            assert!(r.offset + 4096 <= size);
            assert!(!r.write);
            seen.insert(r.offset);
        }
        assert!(differs, "seed has no effect");
        assert!(seen.len() > 200, "only {} distinct blocks", seen.len());
    }

    #[test]
    fn sequential_wraps_and_threads_start_apart() {
        let mut g = OffsetGen::new(RwMode::Write, 4 * 512, 512, 1, 0, 2);
        let offs: Vec<_> = (0..5).map(|_| g.next_req()).collect();
        assert_eq!(
            offs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 512, 1024, 1536, 0]
        );
        assert!(offs.iter().all(|r| r.write));
        let mut g1 = OffsetGen::new(RwMode::Read, 4 * 512, 512, 1, 1, 2);
        assert_eq!(g1.next_req().offset, 1024);
    }

    #[test]
    fn randrw_mixes_and_degenerate_sizes_do_not_panic() {
        let mut g = OffsetGen::new(RwMode::RandRw, 1 << 20, 4096, 3, 0, 1);
        let writes = (0..1000).filter(|_| g.next_req().write).count();
        assert!((300..700).contains(&writes), "{writes} writes of 1000");
        let mut z = OffsetGen::new(RwMode::RandRead, 100, 4096, 3, 0, 1);
        assert_eq!(z.next_req().offset, 0);
        let mut z = OffsetGen::new(RwMode::RandRead, 100, 0, 3, 0, 1);
        assert_eq!(z.next_req().offset, 0);
    }
}
