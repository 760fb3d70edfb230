//! Pool configuration, size classes and errors.

use serde::{Deserialize, Serialize};

/// Number of pooled size classes: 4 KiB, 8 KiB, ... 128 MiB.
pub const NUM_CLASSES: usize = 16;
/// log2 of the smallest class size.
const MIN_CLASS_SHIFT: u32 = 12;
/// Smallest class size (4 KiB).
pub const MIN_CLASS_SIZE: usize = 1 << MIN_CLASS_SHIFT;
/// Largest class size (128 MiB). Larger requests bypass the caches.
pub const MAX_CLASS_SIZE: usize = MIN_CLASS_SIZE << (NUM_CLASSES - 1);
/// Smallest accepted alignment.
pub const MIN_ALIGNMENT: usize = 512;
/// Largest accepted alignment (1 GiB).
pub const MAX_ALIGNMENT: usize = 1 << 30;
/// Default alignment: one page, what O_DIRECT on any common device accepts.
pub const DEFAULT_ALIGNMENT: usize = 4096;
/// Default per-class high-water mark (buffers kept by one cache or one shard).
pub const DEFAULT_HIGH_WATER: usize = 64;
/// Default number of buffers moved per cache <-> shard transfer.
pub const DEFAULT_BATCH: usize = 16;
/// Default byte cap on what one cache or one shard keeps of a single class.
pub const DEFAULT_MAX_CACHED_BYTES_PER_CLASS: usize = 64 << 20;
/// Default largest request (1 GiB).
pub const DEFAULT_MAX_SIZE: usize = 1 << 30;
/// Most shards a pool will create.
pub const MAX_SHARDS: usize = 64;

/// Size of class `class` in bytes.
#[inline]
pub const fn class_size(class: usize) -> usize {
    MIN_CLASS_SIZE << class
}

/// The class that serves a request of `len` bytes, or `None` when `len` is
/// larger than [`MAX_CLASS_SIZE`] (served directly by the system allocator).
/// `len` must be non-zero.
#[inline]
pub const fn class_of(len: usize) -> Option<usize> {
    if len <= MIN_CLASS_SIZE {
        return Some(0);
    }
    // ceil(log2(len)) - 12, computed with one leading-zeros count.
    let bits = usize::BITS - (len - 1).leading_zeros();
    let class = (bits - MIN_CLASS_SHIFT) as usize;
    if class < NUM_CLASSES {
        Some(class)
    } else {
        None
    }
}

/// Shard count for a machine with `cpus` logical CPUs: about two threads per
/// shard on small machines, about four on larger ones, at most [`MAX_SHARDS`].
pub fn auto_shards(cpus: usize) -> usize {
    let n = if cpus <= 16 { cpus / 2 } else { cpus / 4 };
    n.clamp(1, MAX_SHARDS)
}

/// Configuration of a [`BufferPool`](crate::BufferPool).
///
/// Serde uses the defaults for missing fields, so `{}` is a valid config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// Alignment of every buffer's start address: a power of two in
    /// `512..=1 GiB`. Default 4096.
    pub alignment: usize,
    /// Per-class high-water mark: the most buffers of one class that one
    /// thread cache, and one shard, keep. Beyond it memory goes back to the
    /// next tier (cache -> shard -> system). `0` disables retention entirely.
    /// Default 64.
    pub high_water: usize,
    /// Buffers moved per transfer between a thread cache and a shard
    /// (clamped to `1..=high_water` per class). Default 16.
    pub batch: usize,
    /// Byte cap on what one cache or one shard keeps of one class; lowers the
    /// effective high-water mark of big classes (128 MiB buffers are not kept
    /// 64 at a time). The effective mark is
    /// `min(high_water, max(1, max_cached_bytes_per_class / class_size))`.
    /// Default 64 MiB.
    pub max_cached_bytes_per_class: usize,
    /// Number of shards; `None` picks from the CPU count (see
    /// [`auto_shards`]). Must be in `1..=64`.
    pub shards: Option<usize>,
    /// Largest request accepted, in bytes. Requests above 128 MiB are
    /// allocated and freed directly. Default 1 GiB.
    pub max_size: usize,
    /// Use per-thread caches (the lock-free fast path). Default `true`.
    /// With `false` every allocation goes to a shard.
    pub thread_cache: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            alignment: DEFAULT_ALIGNMENT,
            high_water: DEFAULT_HIGH_WATER,
            batch: DEFAULT_BATCH,
            max_cached_bytes_per_class: DEFAULT_MAX_CACHED_BYTES_PER_CLASS,
            shards: None,
            max_size: DEFAULT_MAX_SIZE,
            thread_cache: true,
        }
    }
}

impl PoolConfig {
    /// Checks the configuration; [`BufferPool::new`](crate::BufferPool::new)
    /// calls this.
    pub fn validate(&self) -> Result<(), PoolError> {
        let a = self.alignment;
        if !a.is_power_of_two() || !(MIN_ALIGNMENT..=MAX_ALIGNMENT).contains(&a) {
            return Err(PoolError::BadAlignment { alignment: a });
        }
        if let Some(s) = self.shards {
            if !(1..=MAX_SHARDS).contains(&s) {
                return Err(PoolError::InvalidConfig {
                    reason: format!("shards must be in 1..={MAX_SHARDS}, got {s}").into(),
                });
            }
        }
        if self.max_size == 0 {
            return Err(PoolError::InvalidConfig {
                reason: "max_size must be at least 1".into(),
            });
        }
        // The largest request, rounded up to the alignment, must fit a Layout.
        if self.max_size > isize::MAX as usize - a {
            return Err(PoolError::InvalidConfig {
                reason: format!("max_size {} is too large", self.max_size).into(),
            });
        }
        Ok(())
    }

    /// The shard count this config resolves to on this machine.
    pub fn resolved_shards(&self) -> usize {
        match self.shards {
            Some(s) => s.clamp(1, MAX_SHARDS),
            None => auto_shards(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        }
    }

    /// Effective high-water mark of `class` (see
    /// [`max_cached_bytes_per_class`](Self::max_cached_bytes_per_class)).
    pub fn class_high_water(&self, class: usize) -> usize {
        if self.high_water == 0 || class >= NUM_CLASSES {
            return 0;
        }
        let by_bytes = (self.max_cached_bytes_per_class / class_size(class)).max(1);
        self.high_water.min(by_bytes)
    }

    /// Effective batch size of `class`: `batch` clamped to `1..=high water`.
    pub fn class_batch(&self, class: usize) -> usize {
        self.batch.clamp(1, self.class_high_water(class).max(1))
    }
}

/// Errors from the buffer pool. Bad input is reported, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A zero-length buffer was requested.
    #[error("buffer size must be at least 1 byte")]
    ZeroSize,
    /// The request exceeds the pool's `max_size`.
    #[error("requested buffer of {requested} bytes exceeds the pool limit of {max} bytes")]
    TooLarge {
        /// Bytes requested.
        requested: usize,
        /// The pool's limit.
        max: usize,
    },
    /// The alignment is not a power of two in `512..=1 GiB`.
    #[error("alignment {alignment} is not a power of two between 512 and 1 GiB")]
    BadAlignment {
        /// The rejected alignment.
        alignment: usize,
    },
    /// The system allocator returned no memory.
    #[error("out of memory allocating {size} bytes aligned to {alignment}")]
    OutOfMemory {
        /// Bytes asked of the system allocator.
        size: usize,
        /// Alignment asked for.
        alignment: usize,
    },
    /// Some other configuration field is out of range.
    #[error("invalid buffer pool configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: Box<str>,
    },
    /// A registered-buffer request does not fit the limits (count, size).
    #[error("invalid registered buffer set: {reason}")]
    InvalidRegistration {
        /// What is wrong.
        reason: Box<str>,
    },
}

impl From<PoolError> for std::io::Error {
    fn from(e: PoolError) -> Self {
        let kind = match e {
            PoolError::OutOfMemory { .. } => std::io::ErrorKind::OutOfMemory,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_boundaries() {
        assert_eq!(class_of(1), Some(0));
        assert_eq!(class_of(4096), Some(0));
        assert_eq!(class_of(4097), Some(1));
        assert_eq!(class_of(8192), Some(1));
        assert_eq!(class_of(64 << 10), Some(4));
        assert_eq!(class_of(1 << 20), Some(8));
        assert_eq!(class_of(MAX_CLASS_SIZE), Some(15));
        assert_eq!(class_of(MAX_CLASS_SIZE + 1), None);
        assert_eq!(class_of(usize::MAX), None);
        for c in 0..NUM_CLASSES {
            assert_eq!(class_of(class_size(c)), Some(c));
            assert_eq!(class_of(class_size(c) - 1).map(|x| x <= c), Some(true));
        }
        assert_eq!(class_size(15), 128 << 20);
    }

    #[test]
    fn shard_scaling() {
        assert_eq!(auto_shards(1), 1);
        assert_eq!(auto_shards(2), 1);
        assert_eq!(auto_shards(4), 2);
        assert_eq!(auto_shards(16), 8);
        assert_eq!(auto_shards(64), 16);
        assert_eq!(auto_shards(500), 64);
    }

    #[test]
    fn validation_rejects_bad_alignment_and_shards() {
        for a in [0, 1, 256, 511, 513, 3000, 1 << 31] {
            let cfg = PoolConfig {
                alignment: a,
                ..PoolConfig::default()
            };
            assert_eq!(
                cfg.validate(),
                Err(PoolError::BadAlignment { alignment: a }),
                "{a}"
            );
        }
        for a in [512, 4096, 1 << 21] {
            let cfg = PoolConfig {
                alignment: a,
                ..PoolConfig::default()
            };
            assert_eq!(cfg.validate(), Ok(()));
        }
        for s in [0, 65] {
            let cfg = PoolConfig {
                shards: Some(s),
                ..PoolConfig::default()
            };
            assert!(matches!(
                cfg.validate(),
                Err(PoolError::InvalidConfig { .. })
            ));
        }
        let cfg = PoolConfig {
            max_size: usize::MAX,
            ..PoolConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(PoolError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn high_water_is_capped_by_bytes() {
        let cfg = PoolConfig::default();
        assert_eq!(cfg.class_high_water(0), 64);
        assert_eq!(cfg.class_high_water(8), 64); // 1 MiB * 64 = 64 MiB
        assert_eq!(cfg.class_high_water(9), 32);
        assert_eq!(cfg.class_high_water(15), 1);
        assert_eq!(cfg.class_batch(15), 1);
        assert_eq!(cfg.class_batch(0), 16);
        let off = PoolConfig {
            high_water: 0,
            ..PoolConfig::default()
        };
        assert_eq!(off.class_high_water(0), 0);
        assert_eq!(off.class_batch(0), 1);
    }
}
