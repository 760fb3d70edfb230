//! Submitting one op or a linked pair: [`Engine::submit`],
//! [`Engine::submit_with_handle`], [`Engine::submit_linked`], and the
//! shared paths behind them and the futures.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::callback::Callback;
use crate::error::{shutdown_error, SubmitError};
use crate::op_state::{Deliver, OpCtl, OpHandle, Target};
use crate::request::{check_op, clone_error, fail_op, Request};
use crate::shard::Work;

use super::Engine;

/// Drops what the lean path left of an op it was handed: the op was taken
/// out (accepted or refused), and `Op::Nop`, left in its place, owns
/// nothing, so it is forgotten and no drop glue runs per op.
#[inline(always)]
pub(super) fn release_taken(op: auraio_ring::Op) {
    if matches!(op, auraio_ring::Op::Nop) {
        std::mem::forget(op);
    } else {
        drop(op);
    }
}

impl Engine {
    /// A new op's control block (for its handle or future) and its
    /// completion target (for the ring): the op's one `Target`, as the
    /// callback kept in the block requires.
    #[inline(always)]
    fn target(
        &self,
        idx: usize,
        (deliver, cb): (Deliver, Option<Callback>),
        op: &auraio_ring::Op,
        shortened: bool,
    ) -> (Arc<OpCtl>, Target) {
        let sh = self.sh();
        let info = self.op_info(idx, op, shortened);
        let ctl = OpCtl::new(idx as u32, sh.id(), info, cb);
        let target = Target::ctl(Arc::clone(&ctl), deliver);
        (ctl, target)
    }

    /// For [`submit_single`](Self::submit_single): a control block shared
    /// by the target and the caller (a handle or a future).
    #[inline(always)]
    pub(super) fn with_handle(
        &self,
        idx: usize,
        deliver: (Deliver, Option<Callback>),
        op: &auraio_ring::Op,
        shortened: bool,
    ) -> (Arc<OpCtl>, Target) {
        self.target(idx, deliver, op, shortened)
    }

    /// Submits one request; `deliver` is built from its converter, and
    /// `make` builds the op's control block and target (see
    /// [`with_handle`](Self::with_handle)) and what comes back on success.
    /// (`submit` has its own path, see there.)
    #[inline(always)]
    pub(super) fn submit_single<O: 'static, R>(
        &self,
        req: Request<O>,
        deliver: impl FnOnce(crate::request::Conv<O>) -> (Deliver, Option<Callback>),
        make: impl FnOnce(
            &Self,
            usize,
            (Deliver, Option<Callback>),
            &auraio_ring::Op,
            bool,
        ) -> (R, Target),
    ) -> Result<R, SubmitError<O>> {
        // The op stays where the request put it until the ring takes it (no
        // move into a new local, nor through a match: each copy of it
        // right after the caller's narrow stores is a store-forwarding
        // stall).
        let Request {
            mut op,
            pre_error,
            timeout,
            conv,
        } = req;
        if let Some(e) = pre_error.or_else(|| check_op(&op)) {
            return Err(SubmitError::new(clone_error(&e), fail_op(op, conv, e)));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            let e = shutdown_error();
            return Err(SubmitError::new(shutdown_error(), fail_op(op, conv, e)));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let shortened = sh.maybe_shorten(&mut op);
        let (ctl, target) = make(self, idx, deliver(conv), &op, shortened);
        let submitted = match timeout {
            None => shard.submit_one(sh, op, target),
            Some(_) => shard.submit(
                sh,
                Work::Single {
                    op,
                    target,
                    timeout,
                },
            ),
        };
        match submitted {
            Ok(()) => Ok(ctl),
            Err(refused) => {
                let (work, e) = *refused;
                let op = shard.refused_op(work);
                let op = if shortened {
                    crate::fault::unshorten_op(op)
                } else {
                    op
                };
                let out = fail_op(op, conv, clone_error(&e));
                Err(SubmitError::new(e, out))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn submit_pair<A: 'static, B: 'static>(
        &self,
        first: Request<A>,
        da: impl FnOnce(crate::request::Conv<A>) -> (Deliver, Option<Callback>),
        second: Request<B>,
        db: impl FnOnce(crate::request::Conv<B>) -> (Deliver, Option<Callback>),
    ) -> Result<(Arc<OpCtl>, Arc<OpCtl>), SubmitError<(A, B)>> {
        let fail = |a: Request<A>, b: Request<B>, e: io::Error| {
            let out = (a.fail(clone_error(&e)), b.fail(clone_error(&e)));
            SubmitError::new(e, out)
        };
        if let Some(e) = first.pre_error.as_ref().or(second.pre_error.as_ref()) {
            let e = clone_error(e);
            return Err(fail(first, second, e));
        }
        if let Some(e) = check_op(&first.op).or_else(|| check_op(&second.op)) {
            return Err(fail(first, second, e));
        }
        if first.timeout.is_some() || second.timeout.is_some() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "per-op timeouts cannot be combined with linked operations",
            );
            return Err(fail(first, second, e));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            return Err(fail(first, second, shutdown_error()));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let (conv_a, conv_b) = (first.conv, second.conv);
        let (ca, ta) = self.target(idx, da(conv_a), &first.op, false);
        let (cb, tb) = self.target(idx, db(conv_b), &second.op, false);
        let work = Work::linked((first.op, ta), (second.op, tb));
        match shard.submit(sh, work) {
            Ok(()) => Ok((ca, cb)),
            Err(refused) => {
                let (work, e) = *refused;
                let (oa, ob) = match work {
                    Work::Linked(p) => (p.first.0, p.second.0),
                    // Not produced for linked work; keep the buffers anyway.
                    Work::Single { op, .. } => (op, auraio_ring::Op::Nop),
                };
                let out = (
                    fail_op(oa, conv_a, clone_error(&e)),
                    fail_op(ob, conv_b, clone_error(&e)),
                );
                Err(SubmitError::new(e, out))
            }
        }
    }

    // ----- generic faces --------------------------------------------------

    /// Submits `req`; `cb` gets its output once it completes.
    ///
    /// Contract: `Err` means nothing was submitted and `cb` will never be
    /// called (the error carries the output, with the buffers); `Ok` means
    /// `cb` will be called exactly once: with the result, or with
    /// `ECANCELED` if the op is cancelled or the engine shuts down first.
    /// A panic in `cb` is caught and counted; the engine keeps working.
    ///
    /// No [`OpHandle`] is made (the cheapest way to submit one op); use
    /// [`submit_with_handle`](Self::submit_with_handle) to be able to
    /// [`cancel`](Self::cancel) the op or ask whether it is done.
    #[inline(always)]
    pub fn submit<O, F>(&self, req: Request<O>, cb: F) -> Result<(), SubmitError<O>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
    {
        // The lean path (see `crate::lean`): no control block, the
        // callback straight into the ring's callback table, for an op
        // nothing else needs to observe (`Shared::lean_allowed`).
        let Request {
            mut op,
            pre_error,
            timeout,
            conv,
        } = req;
        if let Some(e) = pre_error.or_else(|| check_op(&op)) {
            return Err(SubmitError::new(clone_error(&e), fail_op(op, conv, e)));
        }
        let sh = self.sh();
        if sh.closed.load(Ordering::Acquire) {
            let e = shutdown_error();
            return Err(SubmitError::new(shutdown_error(), fail_op(op, conv, e)));
        }
        let idx = self.pick();
        let shard = &sh.rings[idx];
        let shortened = sh.maybe_shorten(&mut op);
        let info = self.op_info(idx, &op, shortened);
        let make_cb = move || Callback::new(move |r, res| cb(conv(r, res)));
        let make_ctl = |cb: Callback| {
            Target::ctl(
                OpCtl::new(idx as u32, sh.id(), info, Some(cb)),
                Deliver::Callback,
            )
        };
        let submitted = if sh.lean_allowed(&info, timeout.is_some()) {
            let r = shard.submit_lean(sh, &mut op, make_cb, make_ctl);
            release_taken(op);
            r
        } else {
            let target = make_ctl(make_cb());
            match timeout {
                None => shard.submit_one(sh, op, target),
                Some(_) => shard.submit(
                    sh,
                    Work::Single {
                        op,
                        target,
                        timeout,
                    },
                ),
            }
        };
        match submitted {
            Ok(()) => Ok(()),
            Err(refused) => {
                let (work, e) = *refused;
                let op = shard.refused_op(work);
                let op = if shortened {
                    crate::fault::unshorten_op(op)
                } else {
                    op
                };
                let out = fail_op(op, conv, clone_error(&e));
                Err(SubmitError::new(e, out))
            }
        }
    }

    /// [`submit`](Self::submit), also returning an [`OpHandle`] to
    /// [`cancel`](Self::cancel) the op or ask whether it is done. Same
    /// contract; the handle costs a shared reference to the op's control
    /// block (an atomic increment now, a decrement when it is dropped).
    pub fn submit_with_handle<O, F>(
        &self,
        req: Request<O>,
        cb: F,
    ) -> Result<OpHandle, SubmitError<O>>
    where
        O: 'static,
        F: FnOnce(O) + Send + 'static,
    {
        self.submit_single(
            req,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb(conv(r, res)))),
                )
            },
            Self::with_handle,
        )
        .map(|ctl| OpHandle { ctl })
    }

    /// Submits two requests linked (`IOSQE_IO_LINK`): `second` starts only
    /// after `first` succeeded, else it completes with `ECANCELED`. Each gets
    /// its own callback; same contract as [`submit`](Self::submit).
    /// Per-op timeouts cannot be combined with links.
    #[allow(clippy::type_complexity)]
    pub fn submit_linked<A, B, FA, FB>(
        &self,
        first: Request<A>,
        cb_first: FA,
        second: Request<B>,
        cb_second: FB,
    ) -> Result<(OpHandle, OpHandle), SubmitError<(A, B)>>
    where
        A: 'static,
        B: 'static,
        FA: FnOnce(A) + Send + 'static,
        FB: FnOnce(B) + Send + 'static,
    {
        self.submit_pair(
            first,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb_first(conv(r, res)))),
                )
            },
            second,
            |conv| {
                (
                    Deliver::Callback,
                    Some(Callback::new(move |r, res| cb_second(conv(r, res)))),
                )
            },
        )
        .map(|(a, b)| (OpHandle { ctl: a }, OpHandle { ctl: b }))
    }
}
