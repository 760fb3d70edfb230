//! One batch of ops on a shard under a single ring lock:
//! [`Shard::begin_batch`] and its [`BatchGuard`].

use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use auraio_ring::Op;

use crate::callback::Callback;
use crate::engine::Shared;
use crate::op_state::Target;
use crate::ring_lock::RingGuard;

use super::push::PushErr;
use super::work::{Failed, Work};
use super::{Core, Shard};

impl Shard {
    /// Starts a batch (see
    /// [`Engine::submit_batch`](crate::Engine::submit_batch)): takes the
    /// ring lock for the whole batch; `None` when the ring is shut down.
    /// Ops are then added with [`BatchGuard::accept`]; dropping the guard
    /// (also on a panic) ends the batch.
    pub(crate) fn begin_batch<'a>(&'a self, sh: &'a Shared) -> Option<BatchGuard<'a>> {
        let mut core = self.lock();
        if core.closed {
            return None;
        }
        let limit = self.limit.load(Relaxed);
        // Queue every SQE of the batch and submit them together at the end
        // (a full SQ is still submitted by the ring as needed).
        let batch = core.ring.batch_threshold();
        core.ring.set_batch_threshold(u32::MAX);
        Some(BatchGuard {
            shard: self,
            sh,
            core: ManuallyDrop::new(core),
            limit,
            batch,
            accepted: 0,
            fixed_bufs: 0,
            fixed_files: 0,
            failed: Vec::new(),
        })
    }
}

/// One batch in progress on a shard: holds the ring lock (see
/// [`Shard::begin_batch`]).
pub(crate) struct BatchGuard<'a> {
    shard: &'a Shard,
    sh: &'a Shared,
    /// Released in `Drop`, before the failed ops are delivered.
    core: ManuallyDrop<RingGuard<'a, Core>>,
    limit: u32,
    /// The ring's batch threshold, restored at the end.
    batch: u32,
    accepted: u64,
    fixed_bufs: u64,
    fixed_files: u64,
    failed: Vec<Failed>,
}

impl BatchGuard<'_> {
    /// The locked ring, to check an op before it becomes work.
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Ops accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted
    }

    /// [`accept`](Self::accept) for a plain callback op without a timeout,
    /// as [`Shard::submit_lean`] takes it: straight to the ring with its
    /// callback in the callback table when the backlog is empty and the
    /// limit allows (and an entry is free); otherwise `make_ctl` builds its
    /// control block target and it is accepted as any other op.
    #[inline(always)]
    pub(crate) fn accept_lean<M, C>(&mut self, op: &mut Op, make_cb: M, make_ctl: C)
    where
        M: FnOnce() -> Callback,
        C: FnOnce(Callback) -> Target,
    {
        let shard = self.shard;
        let core = &mut **self.core;
        if !(core.backlog.is_empty() && shard.busy(core) < self.limit) {
            let op = std::mem::replace(op, Op::Nop);
            return self.accept(op, make_ctl(make_cb()), None);
        }
        let target = match shard.cb_table.store(&mut core.cb_alloc, op.kind(), make_cb) {
            Ok(l) => Target::lean(l),
            Err(make_cb) => {
                let op = std::mem::replace(op, Op::Nop);
                return self.accept(op, make_ctl(make_cb()), None);
            }
        };
        self.accepted += 1;
        if let Err(p) = shard.push_one(self.sh, core, op, target) {
            match *p {
                PushErr::Full(w) => core.backlog.push_back(w),
                PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
            }
        }
    }

    /// Accepts one op exactly as [`Shard::submit`] does: pushed while the
    /// backlog is empty and the in-flight limit allows, otherwise appended
    /// to the FIFO backlog. A push the ring refuses for good (not expected:
    /// the caller checks first) completes the op with the error, so it
    /// still gets its one completion.
    #[inline(always)]
    pub(crate) fn accept(&mut self, mut op: Op, target: Target, timeout: Option<Duration>) {
        let info = target.info();
        self.fixed_bufs += u64::from(info.fixed_buf);
        self.fixed_files += u64::from(info.fixed_file);
        self.accepted += 1;
        let shard = self.shard;
        let core = &mut **self.core;
        if timeout.is_none() && core.backlog.is_empty() && shard.busy(core) < self.limit {
            if let Err(p) = shard.push_one(self.sh, core, &mut op, target) {
                match *p {
                    PushErr::Full(w) => core.backlog.push_back(w),
                    PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
                }
            }
            return;
        }
        let work = Work::Single {
            op,
            target,
            timeout,
        };
        if core.backlog.is_empty() && shard.busy(core) < self.limit {
            if let Err(p) = shard.push(self.sh, core, work) {
                match *p {
                    PushErr::Full(w) => core.backlog.push_back(w),
                    PushErr::Failed(w, e) => w.into_failed(e, &mut self.failed),
                }
            }
        } else {
            core.backlog.push_back(work);
        }
    }
}

impl Drop for BatchGuard<'_> {
    /// Ends the batch: FIFO refill up to the limit, one flush, the counters,
    /// then (unlocked) the ops that failed.
    fn drop(&mut self) {
        let shard = self.shard;
        {
            let core = &mut **self.core;
            // Older backlog work (and this batch's) goes in FIFO order as far
            // as the limit allows.
            if !core.backlog.is_empty() {
                shard.refill_pushes(self.sh, core, &mut self.failed, self.limit);
            }
            core.ring.set_batch_threshold(self.batch);
            if core.ring.queued() > 0 {
                let _ = core.ring.flush();
            }
            // Accepted (only written under the ring lock: no atomic RMW).
            shard
                .accepted
                .store(shard.accepted.load(Relaxed) + self.accepted, Relaxed);
            // Counted under the ring lock, so a concurrent unregister (which
            // checks under the same lock) sees them.
            if self.fixed_bufs > 0 {
                shard.fixed_bufs.fetch_add(self.fixed_bufs, Relaxed);
            }
            if self.fixed_files > 0 {
                shard.fixed_files.fetch_add(self.fixed_files, Relaxed);
            }
            shard.mirror(core);
        }
        // SAFETY: `core` is dropped exactly once, here, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.core) };
        let failed = std::mem::take(&mut self.failed);
        if !failed.is_empty() {
            shard.deliver_failed(self.sh, failed);
        }
    }
}
