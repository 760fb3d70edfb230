//! Fault injection for reliability tests (hidden from the docs, not for
//! production use).
//!
//! Two ways to inject, combinable on one engine:
//!
//! - a **hook** ([`EngineBuilder::fault_hook`](crate::EngineBuilder::fault_hook),
//!   or the older result-only
//!   [`EngineBuilder::fault_injector`](crate::EngineBuilder::fault_injector)):
//!   a closure that sees every completion ([`FaultPoint`]) and returns a
//!   [`Fault`] (rewrite the result, hold the completion back);
//! - a seeded, switchable **plan** ([`FaultPlan`],
//!   [`EngineBuilder::fault_plan`](crate::EngineBuilder::fault_plan)): for a
//!   chosen fraction of ops it rewrites results to an errno, makes reads and
//!   writes really short, or holds completions back; the test can change the
//!   fractions while the engine runs (a latency spike for a window).
//!
//! What each fault does, precisely:
//!
//! The hook and the plan decide when a completion is reaped, under its
//! ring's lock (so a held op never leaves a gap in the in-flight budget):
//! a hook must be quick and must not call into the engine.
//!
//! - **Result rewrite**: the completion is counted, fed to the controller
//!   and delivered with the new result. Buffers keep what the kernel really
//!   did (a read rewritten to `-EIO` may still have filled its buffer).
//! - **Delay**: the completion is parked in its ring's *held* queue (no ring
//!   lock is held while it waits, other completions flow past it) and
//!   delivered by the first `poll`/`wait`/reaper pass after its due time. A
//!   held op still counts against the ring's in-flight limit, as an op on a
//!   slow device would, and its measured latency includes the time it was
//!   held, so the controller sees a slow device. Shutdown delivers held
//!   completions at once.
//! - **Short transfer** (plan only): decided at submit for single-buffer
//!   reads and writes of at least 2 bytes; the op is submitted with a
//!   shorter length, so the kernel really transfers fewer bytes and the
//!   caller sees the real short count (a read's buffer then holds exactly
//!   that many bytes). This is the short-I/O contract of the engine: it
//!   reports short counts as io_uring does and never retries on its own.
//!
//! Determinism: every decision is a hash of the plan's seed and a sequence
//! number (submissions for short transfers, reaped completions for errors
//! and delays), so a run with the same seed and the same op order gets the
//! same faults.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use auraio_ring::{IoBuf, IoBufMut, Op, OpKind, OwnedBuf, Resources};

/// What a fault hook sees for each completion reaped from a ring.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct FaultPoint {
    /// Ring index.
    pub ring: u32,
    /// The operation.
    pub op: OpKind,
    /// The kernel's result (`>= 0`, or `-errno`).
    pub result: i32,
    /// Its measured latency.
    pub latency_ns: u64,
    /// Completions reaped by this engine before this one (all rings).
    pub seq: u64,
    /// Bytes the op asked to transfer (0 for non-data ops).
    pub len: u64,
}

/// What to do to one completion.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// Replace the result (`-errno`, or a count).
    pub result: Option<i32>,
    /// Hold the completion back this long before delivering it.
    pub delay: Option<Duration>,
}

impl Fault {
    /// Leave the completion alone.
    pub fn none() -> Self {
        Fault::default()
    }

    /// Replace the result.
    pub fn result(r: i32) -> Self {
        Fault {
            result: Some(r),
            delay: None,
        }
    }

    /// Hold the completion back by `d`.
    pub fn delay(d: Duration) -> Self {
        Fault {
            result: None,
            delay: Some(d),
        }
    }

    /// `other`'s fields where set, else this one's.
    pub(crate) fn or(self, other: Fault) -> Fault {
        Fault {
            result: other.result.or(self.result),
            delay: other.delay.or(self.delay),
        }
    }
}

/// A fault hook: sees every completion before it is counted and delivered.
#[doc(hidden)]
pub type FaultInjector = Arc<dyn Fn(&FaultPoint) -> Fault + Send + Sync>;

/// Parts per million in a fraction (clamped to [0, 1]).
fn ppm(fraction: f64) -> u32 {
    if fraction.is_nan() {
        return 0;
    }
    (fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u32
}

/// SplitMix64 finaliser: a well-spread hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn kind_bit(k: OpKind) -> u64 {
    let idx = OpKind::ALL.iter().position(|x| *x == k).unwrap_or(63);
    1u64 << idx
}

/// How many faults a [`FaultPlan`] injected so far.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Results rewritten to the plan's errno.
    pub errors: u64,
    /// Reads/writes submitted shorter than asked.
    pub shorts: u64,
    /// Completions held back.
    pub delays: u64,
}

struct PlanInner {
    seed: u64,
    ops: AtomicU64,
    error_ppm: AtomicU32,
    errno: AtomicI32,
    short_ppm: AtomicU32,
    delay_ppm: AtomicU32,
    delay_ns: AtomicU64,
    submit_seq: AtomicU64,
    errors: AtomicU64,
    shorts: AtomicU64,
    delays: AtomicU64,
}

/// A seeded fault plan: for a chosen fraction of the targeted ops, rewrite
/// the result to an errno, submit reads/writes short, or hold completions
/// back. Clones share the plan: keep one to change the fractions while the
/// engine runs and to read [`stats`](Self::stats).
#[doc(hidden)]
#[derive(Clone)]
pub struct FaultPlan {
    inner: Arc<PlanInner>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("FaultPlan")
            .field("seed", &i.seed)
            .field("error_ppm", &i.error_ppm.load(Relaxed))
            .field("errno", &i.errno.load(Relaxed))
            .field("short_ppm", &i.short_ppm.load(Relaxed))
            .field("delay_ppm", &i.delay_ppm.load(Relaxed))
            .field("delay_ns", &i.delay_ns.load(Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

impl FaultPlan {
    /// A plan that injects nothing yet and targets every op kind.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            inner: Arc::new(PlanInner {
                seed,
                ops: AtomicU64::new(u64::MAX),
                error_ppm: AtomicU32::new(0),
                errno: AtomicI32::new(libc::EIO),
                short_ppm: AtomicU32::new(0),
                delay_ppm: AtomicU32::new(0),
                delay_ns: AtomicU64::new(0),
                submit_seq: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                shorts: AtomicU64::new(0),
                delays: AtomicU64::new(0),
            }),
        }
    }

    /// Targets only these op kinds from now on.
    pub fn only(self, ops: &[OpKind]) -> Self {
        self.set_ops(ops);
        self
    }

    /// Targets only these op kinds from now on (every kind if empty).
    pub fn set_ops(&self, ops: &[OpKind]) {
        let mask = if ops.is_empty() {
            u64::MAX
        } else {
            ops.iter().fold(0, |m, k| m | kind_bit(*k))
        };
        self.inner.ops.store(mask, Relaxed);
    }

    /// Rewrites the result of `fraction` of the targeted completions to
    /// `-errno`.
    pub fn set_errors(&self, fraction: f64, errno: i32) {
        self.inner.errno.store(errno.abs(), Relaxed);
        self.inner.error_ppm.store(ppm(fraction), Relaxed);
    }

    /// Submits `fraction` of the targeted single-buffer reads and writes
    /// (of at least 2 bytes) with a shorter length, in `[1, len - 1]`.
    pub fn set_short(&self, fraction: f64) {
        self.inner.short_ppm.store(ppm(fraction), Relaxed);
    }

    /// Holds `fraction` of the targeted completions back by `delay`.
    pub fn set_delay(&self, fraction: f64, delay: Duration) {
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.inner.delay_ns.store(ns, Relaxed);
        self.inner.delay_ppm.store(ppm(fraction), Relaxed);
    }

    /// Stops injecting (the counters are kept).
    pub fn clear(&self) {
        self.inner.error_ppm.store(0, Relaxed);
        self.inner.short_ppm.store(0, Relaxed);
        self.inner.delay_ppm.store(0, Relaxed);
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            errors: self.inner.errors.load(Relaxed),
            shorts: self.inner.shorts.load(Relaxed),
            delays: self.inner.delays.load(Relaxed),
        }
    }

    fn targets(&self, k: OpKind) -> bool {
        self.inner.ops.load(Relaxed) & kind_bit(k) != 0
    }

    /// A value in `[0, 1_000_000)` for decision `salt` of event `seq`.
    fn roll(&self, seq: u64, salt: u64) -> (u32, u64) {
        let x = mix(self.inner.seed ^ mix(seq.wrapping_mul(4).wrapping_add(salt)));
        ((x % 1_000_000) as u32, x)
    }

    /// Completion side: rewrite and/or delay.
    pub(crate) fn decide(&self, pt: &FaultPoint) -> Fault {
        let mut f = Fault::none();
        if !self.targets(pt.op) {
            return f;
        }
        let i = &self.inner;
        let p = i.error_ppm.load(Relaxed);
        if p > 0 && self.roll(pt.seq, 1).0 < p {
            f.result = Some(-i.errno.load(Relaxed));
            i.errors.fetch_add(1, Relaxed);
        }
        let p = i.delay_ppm.load(Relaxed);
        if p > 0 && self.roll(pt.seq, 2).0 < p {
            f.delay = Some(Duration::from_nanos(i.delay_ns.load(Relaxed)));
            i.delays.fetch_add(1, Relaxed);
        }
        f
    }

    /// Submit side: maybe shortens a single-buffer read or write. Returns
    /// the op and whether it was shortened (then its buffer is wrapped and
    /// must be unwrapped with [`unshorten_op`] / [`unshorten_resources`]).
    /// [`maybe_shorten`](Self::maybe_shorten) on an op in place (the
    /// submit path keeps its op where the request put it).
    pub(crate) fn maybe_shorten_in_place(&self, op: &mut Op) -> bool {
        let taken = std::mem::replace(op, Op::Nop);
        let (back, shortened) = self.maybe_shorten(taken);
        *op = back;
        shortened
    }

    pub(crate) fn maybe_shorten(&self, op: Op) -> (Op, bool) {
        let p = self.inner.short_ppm.load(Relaxed);
        if p == 0 || !self.targets(op.kind()) {
            return (op, false);
        }
        let len = op.len();
        if len < 2 || !matches!(op.kind(), OpKind::Read | OpKind::Write) {
            return (op, false);
        }
        let seq = self.inner.submit_seq.fetch_add(1, Relaxed);
        let (r, x) = self.roll(seq, 3);
        if r >= p {
            return (op, false);
        }
        let limit = usize::try_from(1 + x % (len - 1)).unwrap_or(1);
        let wrap = |buf: Box<dyn OwnedBuf>| -> Box<dyn OwnedBuf> {
            Box::new(Limited { inner: buf, limit })
        };
        self.inner.shorts.fetch_add(1, Relaxed);
        let op = match op {
            Op::Read { fd, buf, offset } => Op::Read {
                fd,
                buf: wrap(buf),
                offset,
            },
            Op::Write { fd, buf, offset } => Op::Write {
                fd,
                buf: wrap(buf),
                offset,
            },
            other => return (other, false),
        };
        (op, true)
    }
}

/// A buffer seen through a window of its first `limit` bytes: the kernel
/// reads into / writes from at most `limit` bytes of it.
struct Limited {
    inner: Box<dyn OwnedBuf>,
    limit: usize,
}

// SAFETY: same memory as the inner buffer (whose pointer is stable), with
// lengths only reduced: `bytes_init <= bytes_total <= inner's total`.
unsafe impl IoBuf for Limited {
    fn stable_ptr(&self) -> *const u8 {
        self.inner.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.inner.bytes_init().min(self.limit)
    }
    fn bytes_total(&self) -> usize {
        self.inner.bytes_total().min(self.limit)
    }
}

// SAFETY: delegates to the inner buffer; `pos <= bytes_total()` here implies
// `pos <=` the inner buffer's total.
unsafe impl IoBufMut for Limited {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.inner.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract (the first `pos` bytes were written and
        // `pos` is within the inner buffer).
        unsafe { self.inner.set_init(pos) }
    }
}

fn unwrap_buf(b: Box<dyn OwnedBuf>) -> Box<dyn OwnedBuf> {
    match b.into_any().downcast::<Limited>() {
        Ok(l) => l.inner,
        // Only called for buffers wrapped by `maybe_shorten`; anything else
        // would already be lost here, which the request's conversion then
        // reports as a broken invariant.
        Err(_) => Box::new(Vec::<u8>::new()),
    }
}

/// Undoes [`FaultPlan::maybe_shorten`] on an op that was never submitted.
pub(crate) fn unshorten_op(op: Op) -> Op {
    match op {
        Op::Read { fd, buf, offset } => Op::Read {
            fd,
            buf: unwrap_buf(buf),
            offset,
        },
        Op::Write { fd, buf, offset } => Op::Write {
            fd,
            buf: unwrap_buf(buf),
            offset,
        },
        other => other,
    }
}

/// Undoes [`FaultPlan::maybe_shorten`] on a shortened op's resources.
pub(crate) fn unshorten_resources(res: Resources) -> Resources {
    match res {
        Resources::Buf(b) => Resources::Buf(unwrap_buf(b)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: u64, op: OpKind) -> FaultPoint {
        FaultPoint {
            ring: 0,
            op,
            result: 0,
            latency_ns: 0,
            seq,
            len: 0,
        }
    }

    #[test]
    fn same_seed_same_decisions_and_fractions_roughly_hold() {
        let a = FaultPlan::new(7);
        let b = FaultPlan::new(7);
        let c = FaultPlan::new(8);
        for p in [&a, &b, &c] {
            p.set_errors(0.3, libc::EIO);
            p.set_delay(0.5, Duration::from_millis(1));
        }
        let da: Vec<_> = (0..10_000)
            .map(|s| a.decide(&point(s, OpKind::Nop)))
            .collect();
        let db: Vec<_> = (0..10_000)
            .map(|s| b.decide(&point(s, OpKind::Nop)))
            .collect();
        let dc: Vec<_> = (0..10_000)
            .map(|s| c.decide(&point(s, OpKind::Nop)))
            .collect();
        assert_eq!(da, db, "same seed, same faults");
        assert_ne!(da, dc, "another seed, other faults");
        let errors = da.iter().filter(|f| f.result.is_some()).count();
        let delays = da.iter().filter(|f| f.delay.is_some()).count();
        assert!((2_700..3_300).contains(&errors), "{errors}");
        assert!((4_700..5_300).contains(&delays), "{delays}");
        assert_eq!(a.stats().errors, errors as u64);
        assert_eq!(a.stats().delays, delays as u64);
        assert!(da.iter().filter_map(|f| f.result).all(|r| r == -libc::EIO));
    }

    #[test]
    fn only_targeted_kinds_and_clear_stops() {
        let p = FaultPlan::new(1).only(&[OpKind::Read]);
        p.set_errors(1.0, libc::ECANCELED);
        assert_eq!(p.decide(&point(0, OpKind::Write)), Fault::none());
        assert_eq!(
            p.decide(&point(1, OpKind::Read)).result,
            Some(-libc::ECANCELED)
        );
        p.clear();
        assert_eq!(p.decide(&point(2, OpKind::Read)), Fault::none());
        assert_eq!(p.stats().errors, 1);
    }

    #[test]
    fn shortening_wraps_and_unwraps_the_buffer() {
        let p = FaultPlan::new(3);
        p.set_short(1.0);
        let op = Op::read(auraio_ring::Fd::Raw(0), Vec::<u8>::with_capacity(100), 0);
        let (op, short) = p.maybe_shorten(op);
        assert!(short);
        let len = op.len();
        assert!((1..100).contains(&len), "{len}");
        let back = unshorten_op(op);
        assert_eq!(back.len(), 100);
        let Op::Read { buf, .. } = back else {
            panic!("still a read")
        };
        let v = Resources::Buf(buf).into_buf::<Vec<u8>>();
        assert_eq!(v.map(|v| v.capacity()), Some(100));
        // Too small to shorten, or not a single-buffer read/write.
        let (_, short) = p.maybe_shorten(Op::read(auraio_ring::Fd::Raw(0), vec![0u8; 1], 0));
        assert!(!short);
        let (_, short) = p.maybe_shorten(Op::Nop);
        assert!(!short);
        assert_eq!(p.stats().shorts, 1);
    }

    #[test]
    fn fractions_are_clamped() {
        assert_eq!(ppm(-1.0), 0);
        assert_eq!(ppm(2.0), 1_000_000);
        assert_eq!(ppm(f64::NAN), 0);
        assert_eq!(ppm(0.25), 250_000);
    }
}
