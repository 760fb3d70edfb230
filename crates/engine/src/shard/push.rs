//! Handing work to the ring (under the ring lock): [`Shard::push`] and
//! [`Shard::push_one`], why a push gives work back ([`PushErr`]), and the
//! FIFO refill from the backlog.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use auraio_ring::{AnyRing, Op, SubmitError, SubmitErrorKind};

use crate::engine::Shared;
use crate::op_state::{Phase, Target};

use super::work::{Failed, Pair, Work};
use super::{Core, Shard};

/// Why [`Shard::push`] gave work back. Boxed in its `Result`: the error is
/// rare, and a small `Result` comes back in registers instead of through
/// the stack on every push.
pub(super) enum PushErr {
    /// No slot now: keep it in the backlog.
    Full(Work),
    /// Refused for good.
    Failed(Work, io::Error),
}

fn kind_error(kind: SubmitErrorKind) -> io::Error {
    match kind {
        SubmitErrorKind::Full => io::Error::new(io::ErrorKind::WouldBlock, "ring is full"),
        SubmitErrorKind::Unsupported(k) => io::Error::new(
            io::ErrorKind::Unsupported,
            format!("operation {k} is not supported by this kernel"),
        ),
        SubmitErrorKind::InvalidInput(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
        SubmitErrorKind::Io(e) => e,
    }
}

/// Marks the op just pushed into `slot` as in the ring (where cancel finds
/// it). An op the ring already completed (reaped while submitting) keeps
/// its phase: its completion is on its way. A lean op has no phase.
fn set_in_ring(ring: &AnyRing<Target>, slot: auraio_ring::SlotId) {
    if let Some(ctl) = ring.token(slot).and_then(Target::ctl_ref) {
        ctl.set_phase(Phase::InRing(slot));
    }
}

impl Shard {
    /// [`push`](Self::push) for one op without a per-op timeout, straight
    /// to the ring (no `Work` assembled and matched).
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(super) fn push_one(
        &self,
        sh: &Shared,
        core: &mut Core,
        op: &mut Op,
        target: Target,
    ) -> Result<(), Box<PushErr>> {
        let lean = match target.ctl_ref() {
            Some(ctl) => {
                if ctl.info.traced {
                    ctl.stamp_submit(sh.now_ns(), core.ring.in_flight());
                }
                false
            }
            None => true,
        };
        // The op is taken from where the caller keeps it (see
        // `Ring::submit_in_place`), not moved here whole.
        match core.ring.submit_in_place(op, target) {
            Ok(slot) => {
                if !lean {
                    set_in_ring(&core.ring, slot);
                }
                self.after_submit(core.ring.in_flight());
                Ok(())
            }
            Err((kind, token)) => {
                let w = Work::Single {
                    op: std::mem::replace(op, Op::Nop),
                    target: token,
                    timeout: None,
                };
                match kind {
                    SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                    k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                }
            }
        }
    }

    /// Hands one unit of work to the ring (under the ring lock).
    #[allow(clippy::result_large_err)]
    pub(super) fn push(
        &self,
        sh: &Shared,
        core: &mut Core,
        work: Work,
    ) -> Result<(), Box<PushErr>> {
        let ring = &mut core.ring;
        // Traced ops only: stamp the push for the trace record.
        let stamp = |t: &Target, in_flight: u32| {
            if let Some(ctl) = t.ctl_ref() {
                if ctl.info.traced {
                    ctl.stamp_submit(sh.now_ns(), in_flight);
                }
            }
        };
        match work {
            Work::Single {
                op,
                target,
                timeout,
            } => {
                stamp(&target, ring.in_flight());
                let r = match timeout {
                    Some(d) => ring.submit_with_timeout(op, target, d),
                    None => ring.submit(op, target),
                };
                match r {
                    Ok(slot) => {
                        set_in_ring(ring, slot);
                        self.after_submit(ring.in_flight());
                        Ok(())
                    }
                    Err(SubmitError {
                        kind, op, token, ..
                    }) => {
                        let w = Work::Single {
                            op,
                            target: token,
                            timeout,
                        };
                        match kind {
                            SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                            k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                        }
                    }
                }
            }
            Work::Linked(p) => {
                let Pair {
                    first: (op1, t1),
                    second: (op2, t2),
                } = *p;
                let inf = ring.in_flight();
                stamp(&t1, inf);
                stamp(&t2, inf + 1);
                match ring.submit_linked((op1, t1), (op2, t2)) {
                    Ok((s1, s2)) => {
                        set_in_ring(ring, s1);
                        set_in_ring(ring, s2);
                        self.after_submit(ring.in_flight());
                        Ok(())
                    }
                    Err(SubmitError {
                        kind,
                        op,
                        token,
                        second,
                    }) => {
                        let Some(second) = second else {
                            // The ring promised to return both halves; if it
                            // did not, the second is lost: fail the first.
                            let w = Work::Single {
                                op,
                                target: token,
                                timeout: None,
                            };
                            return Err(Box::new(PushErr::Failed(
                                w,
                                io::Error::other("linked submit lost its second op"),
                            )));
                        };
                        let w = Work::linked((op, token), second);
                        match kind {
                            SubmitErrorKind::Full => Err(Box::new(PushErr::Full(w))),
                            k => Err(Box::new(PushErr::Failed(w, kind_error(k)))),
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn after_submit(&self, in_flight: u32) {
        self.meter.on_submit(in_flight);
        if in_flight > self.peak.load(Relaxed) {
            self.peak.fetch_max(in_flight, Relaxed);
        }
    }

    /// Moves backlog work into the ring while the limit allows.
    ///
    /// The refill goes to the kernel like any submission: one
    /// `io_uring_enter` per batch threshold of SQEs as they are pushed
    /// (what is left below the threshold waits for the caller's flush or
    /// the next one). Pushing a whole refill and entering once sent the
    /// disk every reaped wave back as one wave: on this machine's virtio
    /// disk, with 64 ops waiting in the backlog at a limit of 64, that
    /// was 64 SQEs per enter and 75.4k IOPS against 84.1k in
    /// threshold-sized pieces (docs/benchmarks.md, session 8).
    pub(super) fn refill_locked(&self, sh: &Shared, core: &mut Core, failed: &mut Vec<Failed>) {
        self.refill_pushes(sh, core, failed, self.limit.load(Relaxed));
    }

    pub(super) fn refill_pushes(
        &self,
        sh: &Shared,
        core: &mut Core,
        failed: &mut Vec<Failed>,
        limit: u32,
    ) {
        while self.busy(core) < limit {
            let Some(work) = core.backlog.pop_front() else {
                break;
            };
            match self.push(sh, core, work) {
                Ok(()) => {}
                Err(p) => match *p {
                    PushErr::Full(w) => {
                        core.backlog.push_front(w);
                        break;
                    }
                    PushErr::Failed(w, e) => w.into_failed(e, failed),
                },
            }
        }
    }
}
