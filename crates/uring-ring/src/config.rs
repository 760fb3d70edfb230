//! Ring configuration.

use std::io;
use std::time::Duration;

/// Largest SQ size the kernel accepts.
pub(crate) const MAX_SQ_ENTRIES: u32 = 32_768;
/// Largest CQ size the kernel accepts.
pub(crate) const MAX_CQ_ENTRIES: u32 = 65_536;

/// How to build a [`Ring`](crate::Ring).
///
/// Construct with `RingConfig { sq_entries: 64, ..Default::default() }` so
/// that fields added later do not break your code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel).
    /// Default 1024. The ring's [`capacity`](crate::Ring::capacity) is this
    /// many slots (after rounding), bounded by half the CQ.
    pub sq_entries: u32,
    /// Completion queue entries; `None` = `2 * sq_entries`. Must be at least
    /// `2 * sq_entries` so every slot can have an internal CQE (link timeout)
    /// next to its own without overflowing the CQ.
    pub cq_entries: Option<u32>,
    /// `Some(idle)` asks for a kernel SQ polling thread that sleeps after
    /// `idle` without work. Falls back to a normal ring when not permitted;
    /// check [`Ring::kind`](crate::Ring::kind). `None` = no SQPOLL.
    pub sqpoll_idle: Option<Duration>,
    /// Submit once this many SQEs are queued (default 8). `0` is treated as 1.
    pub batch_threshold: u32,
    /// Register an eventfd that the kernel signals on every completion, so a
    /// thread can wait on several rings at once (`epoll`/`poll` on it).
    pub eventfd: bool,
    /// Use the kernel's timed waits (`IORING_FEAT_EXT_ARG`, Linux 5.11+)
    /// when it has them (default `true`). `false` behaves as on an older
    /// kernel: [`Ring::wait`](crate::Ring::wait) and
    /// [`Waiter::wait`](crate::Waiter::wait) with a timeout return
    /// `Unsupported`, and shutdown drains without kernel timeouts. Meant
    /// for testing callers' fallbacks on a new kernel. The blocking
    /// backend ignores it (its waits are always timed).
    pub timed_waits: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            sq_entries: 1024,
            cq_entries: None,
            sqpoll_idle: None,
            batch_threshold: 8,
            eventfd: false,
            timed_waits: true,
        }
    }
}

impl RingConfig {
    /// Checks the values and returns `(sq_entries, cq_entries)` to ask for.
    pub(crate) fn validate(&self) -> io::Result<(u32, u32)> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if self.sq_entries == 0 || self.sq_entries > MAX_SQ_ENTRIES {
            return Err(invalid(format!(
                "sq_entries must be in 1..={MAX_SQ_ENTRIES}, got {}",
                self.sq_entries
            )));
        }
        let sq = self.sq_entries.next_power_of_two();
        let cq = match self.cq_entries {
            None => sq * 2,
            Some(cq) if cq < self.sq_entries.saturating_mul(2) => {
                return Err(invalid(format!(
                    "cq_entries must be at least 2 * sq_entries ({}), got {cq}",
                    self.sq_entries.saturating_mul(2)
                )))
            }
            Some(cq) if cq > MAX_CQ_ENTRIES => {
                return Err(invalid(format!(
                    "cq_entries must be at most {MAX_CQ_ENTRIES}, got {cq}"
                )))
            }
            Some(cq) => cq.max(sq * 2),
        };
        Ok((sq, cq))
    }
}

/// What kind of ring [`Ring::new`](crate::Ring::new) actually built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingKind {
    /// Submissions enter the kernel through `io_uring_enter`.
    Normal,
    /// A kernel thread polls the SQ (`IORING_SETUP_SQPOLL`).
    SqPoll,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = RingConfig::default();
        assert_eq!(c.sq_entries, 1024);
        assert_eq!(c.cq_entries, None);
        assert_eq!(c.batch_threshold, 8);
        assert_eq!(c.validate().unwrap(), (1024, 2048));
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in [
            RingConfig {
                sq_entries: 0,
                ..Default::default()
            },
            RingConfig {
                sq_entries: MAX_SQ_ENTRIES + 1,
                ..Default::default()
            },
            RingConfig {
                sq_entries: 64,
                cq_entries: Some(100),
                ..Default::default()
            },
            RingConfig {
                sq_entries: 64,
                cq_entries: Some(MAX_CQ_ENTRIES + 1),
                ..Default::default()
            },
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn rounds_sq_up_and_keeps_cq_at_least_twice() {
        let c = RingConfig {
            sq_entries: 100,
            cq_entries: Some(200),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap(), (128, 256));
    }
}
