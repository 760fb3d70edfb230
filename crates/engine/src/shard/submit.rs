//! Accepting work: [`Shard::submit`] and its fast paths for one op
//! ([`Shard::submit_one`], [`Shard::submit_lean`]): straight to the ring
//! while the backlog is empty and the in-flight limit allows, otherwise into
//! the FIFO backlog.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use auraio_ring::Op;

use crate::callback::Callback;
use crate::engine::Shared;
use crate::op_state::{Owned, Target};
use crate::ring_lock::RingGuard;

use super::push::PushErr;
use super::work::{Pair, Work};
use super::{Core, Shard};

/// Work [`Shard::submit`] did not accept, with the reason (boxed, as
/// [`PushErr`]).
pub(crate) type Refused = Box<(Work, io::Error)>;

impl Shard {
    /// [`submit`](Self::submit) for one op without a per-op timeout, the
    /// common case, with its fast path written out: when the ring is open,
    /// supports the op, nothing waits in the backlog and the limit allows,
    /// the op and its target go straight to the ring (no `Work` assembled
    /// and matched on the way: each move of one after its narrow stores was
    /// a store-forwarding stall). Anything else takes the general path
    /// under the same lock.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub(crate) fn submit_one(
        &self,
        sh: &Shared,
        mut op: Op,
        target: Target,
    ) -> Result<(), Refused> {
        let mut core = self.lock();
        let info = target.info();
        if core.closed
            || !core.ring.supports(op.kind())
            || !core.backlog.is_empty()
            || info.fixed_buf
            || info.fixed_file
            || self.busy(&core) >= self.limit.load(Relaxed)
        {
            let work = Work::Single {
                op,
                target,
                timeout: None,
            };
            return self.submit_locked(sh, core, work);
        }
        self.push_accepted(sh, &mut core, &mut op, target)
    }

    /// [`submit_one`](Self::submit_one) for a plain callback op (see
    /// [`crate::lean`]): when it can go straight to the ring, its callback
    /// (built by `make_cb`) is written into a free entry of the shard's
    /// callback table and the op gets no control block; otherwise (ring
    /// closed or lacking the op, backlog or limit, table full) `make_ctl`
    /// builds its control block target from the callback and it takes the
    /// general path under the same lock.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(crate) fn submit_lean<M, C>(
        &self,
        sh: &Shared,
        op: &mut Op,
        make_cb: M,
        make_ctl: C,
    ) -> Result<(), Refused>
    where
        M: FnOnce() -> Callback,
        C: FnOnce(Callback) -> Target,
    {
        let mut core = self.lock();
        let kind = op.kind();
        if core.closed
            || !core.ring.supports(kind)
            || !core.backlog.is_empty()
            || self.busy(&core) >= self.limit.load(Relaxed)
        {
            let work = Work::Single {
                op: std::mem::replace(op, Op::Nop),
                target: make_ctl(make_cb()),
                timeout: None,
            };
            return self.submit_locked(sh, core, work);
        }
        let target = match self.cb_table.store(&mut core.cb_alloc, kind, make_cb) {
            Ok(l) => Target::lean(l),
            Err(make_cb) => make_ctl(make_cb()),
        };
        self.push_accepted(sh, &mut core, op, target)
    }

    /// The common end of [`submit_one`](Self::submit_one) and
    /// [`submit_lean`](Self::submit_lean) once the op may go straight to
    /// the ring: push it (into the backlog when the SQ is full), keep the
    /// ring busy, count it accepted.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    fn push_accepted(
        &self,
        sh: &Shared,
        core: &mut RingGuard<'_, Core>,
        op: &mut Op,
        target: Target,
    ) -> Result<(), Refused> {
        if let Err(p) = self.push_one(sh, core, op, target) {
            match *p {
                PushErr::Full(w) => core.backlog.push_back(w),
                PushErr::Failed(w, e) => return Err(Box::new((w, e))),
            }
        }
        self.keep_busy(sh, core);
        // Accepted (only written under this lock: no atomic RMW).
        self.accepted
            .store(self.accepted.load(Relaxed) + 1, Relaxed);
        self.mirror(core);
        Ok(())
    }

    /// Tests: free entries of the callback table, and its size.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lean_entries(&self) -> (usize, usize) {
        let mut core = self.lock();
        self.cb_table.free_entries(&mut core.cb_alloc)
    }

    /// Tests: takes every free entry of the callback table (the lean path
    /// then falls back to control blocks) or gives them back (`false`).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lean_exhaust(&self, exhaust: bool) {
        let mut core = self.lock();
        self.cb_table.exhaust_for_test(&mut core.cb_alloc, exhaust);
    }

    /// The op of work that was refused (not accepted): its targets are
    /// dropped without a completion, a lean op's callback uncalled with its
    /// table entry freed.
    pub(crate) fn refused_op(&self, work: Work) -> Op {
        let discard = |t: Target| match t.into_owned() {
            Owned::Lean(l) => self.cb_table.discard(l),
            Owned::Ctl(t) => drop(t),
        };
        match work {
            Work::Single { op, target, .. } => {
                discard(target);
                op
            }
            Work::Linked(p) => {
                let Pair { first, second } = *p;
                discard(first.1);
                discard(second.1);
                first.0
            }
        }
    }

    /// Keeps the device busy after a push: if nothing is in the kernel,
    /// submit now instead of waiting for the batch to fill. Only while the
    /// controller picks the batch: a batch threshold pinned by the user
    /// (`batch_threshold(Some(n))`) is honoured as asked, and queued SQEs go
    /// out when `n` are queued, at the next poll/wait/flush, or at the next
    /// tick at the latest. (Sending the first op of every burst alone costs
    /// a second `io_uring_enter` per burst.)
    #[inline]
    fn keep_busy(&self, sh: &Shared, core: &mut Core) {
        if sh.batch_override.load(Relaxed) == 0 {
            let q = core.ring.queued();
            if q > 0 && core.ring.in_flight() <= q {
                let _ = core.ring.flush();
            }
        }
    }

    /// Accepts `work`: hands it to the ring if the limit allows, otherwise
    /// parks it in the FIFO backlog. `Err` means it was not accepted (the
    /// caller gets the work back; no callback will run).
    #[allow(clippy::result_large_err)]
    pub(crate) fn submit(&self, sh: &Shared, work: Work) -> Result<(), Refused> {
        let core = self.lock();
        self.submit_locked(sh, core, work)
    }

    /// [`submit`](Self::submit) with the ring lock already taken (released
    /// here, before failed ops are delivered).
    #[allow(clippy::result_large_err)]
    #[inline(never)]
    fn submit_locked(
        &self,
        sh: &Shared,
        mut core: RingGuard<'_, Core>,
        work: Work,
    ) -> Result<(), Refused> {
        let mut failed = Vec::new();
        {
            if core.closed {
                return Err(Box::new((work, crate::error::shutdown_error())));
            }
            // Unsupported ops fail synchronously rather than later.
            if let Some(e) = self.unsupported(&core, &work) {
                return Err(Box::new((work, e)));
            }
            let (fixed_bufs, fixed_files) = work.fixed_uses();
            let ops = work.ops();
            let limit = self.limit.load(Relaxed);
            if core.backlog.is_empty() && self.busy(&core) < limit {
                match self.push(sh, &mut core, work) {
                    Ok(()) => {}
                    Err(p) => match *p {
                        PushErr::Full(w) => core.backlog.push_back(w),
                        PushErr::Failed(w, e) => return Err(Box::new((w, e))),
                    },
                }
                self.keep_busy(sh, &mut core);
            } else {
                core.backlog.push_back(work);
                self.refill_locked(sh, &mut core, &mut failed);
            }
            // Accepted (only written under this lock: no atomic RMW).
            self.accepted
                .store(self.accepted.load(Relaxed) + ops, Relaxed);
            // Counted under the ring lock, so a concurrent unregister (which
            // checks under the same lock) sees it.
            if fixed_bufs > 0 {
                self.fixed_bufs.fetch_add(fixed_bufs, Relaxed);
            }
            if fixed_files > 0 {
                self.fixed_files.fetch_add(fixed_files, Relaxed);
            }
            self.mirror(&core);
            drop(core);
        }
        if !failed.is_empty() {
            self.deliver_failed(sh, failed);
        }
        Ok(())
    }

    /// Why the ring would refuse `op` (with a per-op timeout when
    /// `timeout`) as unsupported: checked before the op becomes work.
    pub(crate) fn unsupported_op(core: &Core, op: &Op, timeout: bool) -> Option<io::Error> {
        let k = op.kind();
        if !core.ring.supports(k) {
            return Some(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("operation {k} is not supported by this kernel"),
            ));
        }
        (timeout && !core.ring.supports(auraio_ring::OpKind::LinkTimeout)).then(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "per-op timeouts (link_timeout) are not supported by this kernel",
            )
        })
    }

    fn unsupported(&self, core: &Core, work: &Work) -> Option<io::Error> {
        let check = |op: &Op| {
            let k = op.kind();
            (!core.ring.supports(k)).then(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("operation {k} is not supported by this kernel"),
                )
            })
        };
        match work {
            Work::Single { op, timeout, .. } => check(op).or_else(|| {
                (timeout.is_some() && !core.ring.supports(auraio_ring::OpKind::LinkTimeout)).then(
                    || {
                        io::Error::new(
                            io::ErrorKind::Unsupported,
                            "per-op timeouts (link_timeout) are not supported by this kernel",
                        )
                    },
                )
            }),
            Work::Linked(p) => check(&p.first.0).or_else(|| check(&p.second.0)),
        }
    }
}
