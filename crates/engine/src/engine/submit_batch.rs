//! Submitting a batch of ops with one ring lock and one `io_uring_enter`:
//! [`Engine::submit_batch`] and [`Engine::submit_batch_with_handles`].

use std::sync::atomic::Ordering;

use crate::batch::BatchError;
use crate::callback::Callback;
use crate::error::shutdown_error;
use crate::op_state::{Deliver, OpCtl, OpHandle, Target};
use crate::request::{check_op, check_ring_limits, clone_error, fail_op, Request};
use crate::shard::Shard;

use super::submit::release_taken;
use super::Engine;

impl Engine {
    /// The batch path behind [`submit_batch`](Self::submit_batch) and
    /// [`submit_batch_with_handles`](Self::submit_batch_with_handles).
    fn batch_impl<O, F, It>(
        &self,
        mut iter: It,
        mut handles: Option<&mut Vec<OpHandle>>,
    ) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        It: Iterator<Item = (Request<O>, F)>,
    {
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            return Err(BatchError::new(0, shutdown_error(), None, iter.collect()));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let Some(mut guard) = shard.begin_batch(sh) else {
            // Shut down before anything was taken: all of it comes back.
            return Err(BatchError::new(0, shutdown_error(), None, iter.collect()));
        };
        for (req, cb) in iter.by_ref() {
            // The op stays where the request put it (see `submit_single`).
            let Request {
                mut op,
                pre_error,
                timeout,
                conv,
            } = req;
            // Everything that can refuse the op is checked here, before its
            // callback is handed over, so a refused op comes back whole.
            if let Some(e) = pre_error
                .or_else(|| check_op(&op))
                .or_else(|| check_ring_limits(&op))
                .or_else(|| Shard::unsupported_op(guard.core(), &op, timeout.is_some()))
            {
                let accepted = guard.accepted() as usize;
                drop(guard);
                let out = fail_op(op, conv, clone_error(&e));
                return Err(BatchError::new(
                    accepted,
                    e,
                    Some((out, cb)),
                    iter.collect(),
                ));
            }
            let shortened = sh.maybe_shorten(&mut op);
            let make_cb = move || Callback::new(move |r, res| cb(conv(r, res)));
            let info = self.op_info(idx, &op, shortened);
            let make_ctl = |cb: Callback| {
                Target::ctl(
                    OpCtl::new(idx as u32, sh.id(), info, Some(cb)),
                    Deliver::Callback,
                )
            };
            // The lean path as in `submit` (see there), for ops nobody
            // gets a handle to.
            if handles.is_none() && sh.lean_allowed(&info, timeout.is_some()) {
                guard.accept_lean(&mut op, make_cb, make_ctl);
                release_taken(op);
                continue;
            }
            let target = make_ctl(make_cb());
            if let Some(h) = handles.as_deref_mut() {
                if let Some(ctl) = target.ctl_arc() {
                    h.push(OpHandle { ctl });
                }
            }
            guard.accept(op, target, timeout);
        }
        let accepted = guard.accepted() as usize;
        drop(guard);
        Ok(accepted)
    }

    /// Submits many `(request, callback)` pairs at once, in order, on one
    /// ring: the cheap way to submit a burst of ops.
    ///
    /// Same per-op contract as [`submit`](Self::submit), at a lower cost per
    /// op: the ring is locked once for the whole batch, no [`OpHandle`] is
    /// made (use [`submit_batch_with_handles`](Self::submit_batch_with_handles)
    /// to get them), and the batch's SQEs go to the kernel together, in one
    /// `io_uring_enter`, after the last op was queued (or earlier in pieces
    /// when the submission queue fills up). The in-flight limit and the FIFO
    /// backlog apply exactly as for `submit`: ops beyond the controller's
    /// limit wait in the ring's backlog, in batch order, behind any ops
    /// already waiting there. The whole batch goes to the ring `submit`
    /// would pick for its first op (the current CPU's by default, or the
    /// pinned ring of an [`on_ring`](Self::on_ring) handle).
    ///
    /// Returns how many ops were accepted (all of them on `Ok`); each of
    /// their callbacks is then called exactly once, with the result or
    /// `ECANCELED` (cancel, shutdown). An empty batch is `Ok(0)`.
    ///
    /// # A bad request in the batch
    ///
    /// Each op is checked (its request's own error, file positions, buffer
    /// sizes, kernel support) just before it is queued. The first op that
    /// fails a check stops the batch: the ops before it stay accepted (they
    /// run and complete normally); that op and every later one are **not**
    /// submitted, and come back in the [`BatchError`] (the refused op as its
    /// output, with the error and its buffers, plus its callback; the later
    /// ones as untouched `(request, callback)` pairs). The engine never
    /// calls those callbacks; [`BatchError::complete_all`] does, once each,
    /// if the caller wants that. Nothing is lost or completed twice.
    ///
    /// After [`shutdown`](Self::shutdown) nothing is taken: the error
    /// satisfies [`is_shutdown`](crate::is_shutdown), `accepted()` is 0 and
    /// every pair comes back in the error.
    ///
    /// The iterator is driven while the ring is locked: it should only
    /// produce the pairs (it must not submit to this engine itself).
    pub fn submit_batch<O, F, I>(&self, batch: I) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        I: IntoIterator<Item = (Request<O>, F)>,
    {
        self.batch_impl(batch.into_iter(), None)
    }

    /// [`submit_batch`](Self::submit_batch), also pushing one [`OpHandle`]
    /// per accepted op onto `handles` (in batch order), e.g. to
    /// [`cancel`](Self::cancel) them later. On `Err`, the handles of the
    /// accepted ops were pushed all the same.
    pub fn submit_batch_with_handles<O, F, I>(
        &self,
        batch: I,
        handles: &mut Vec<OpHandle>,
    ) -> Result<usize, BatchError<O, F>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
        I: IntoIterator<Item = (Request<O>, F)>,
    {
        self.batch_impl(batch.into_iter(), Some(handles))
    }
}
