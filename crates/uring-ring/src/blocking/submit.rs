//! Queuing ops: [`BlockingRing::submit`], [`BlockingRing::submit_linked`],
//! [`BlockingRing::submit_with_timeout`], and the wake-up of
//! [`BlockingRing::notify`].

use std::io;
use std::time::Duration;

use crate::completion::{SubmitError, SubmitErrorKind};
use crate::op::{Op, OpKind};
use crate::slots::SlotId;
#[cfg(doc)]
use crate::waiter::Waiter;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    /// Queues `op`; hands queued ops to the pool when
    /// [`queued`](Self::queued) reaches the batch threshold. Refused (op and
    /// token handed back) when no slot is free, the op is disabled or
    /// malformed.
    pub fn submit(&mut self, op: Op, token: T) -> Result<SlotId, SubmitError<T>> {
        if let Err(kind) = self.check(&op, 1) {
            return Err(SubmitError::new(kind, op, token));
        }
        let id = match self.take_slot(token) {
            Ok(id) => id,
            Err(token) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let job = self.make_job(id, op, true, None);
        self.pending.push(job);
        self.after_push();
        Ok(id)
    }

    /// Queues two linked ops: `second` starts only after `first` succeeded
    /// fully (a short read or write counts as failure); otherwise `second`
    /// completes with `-ECANCELED`. Both run on the same worker, in order.
    pub fn submit_linked(
        &mut self,
        first: (Op, T),
        second: (Op, T),
    ) -> Result<(SlotId, SlotId), SubmitError<T>> {
        let (op1, t1) = first;
        let (op2, t2) = second;
        let checked = self.check(&op1, 2).and_then(|()| self.check(&op2, 2));
        if let Err(kind) = checked {
            let mut e = SubmitError::new(kind, op1, t1);
            e.second = Some((op2, t2));
            return Err(e);
        }
        let (id1, id2) = match (self.take_slot(t1), ()) {
            (Ok(id1), ()) => match self.take_slot(t2) {
                Ok(id2) => (id1, id2),
                Err(t2) => {
                    let t1 = self.untake_slot(id1);
                    let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                    e.second = Some((op2, t2));
                    return Err(e);
                }
            },
            (Err(t1), ()) => {
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let mut j1 = self.make_job(id1, op1, true, None);
        j1.link = Some(id2);
        let j2 = self.make_job(id2, op2, false, None);
        self.pending.push(j1);
        self.pending.push(j2);
        self.after_push();
        Ok((id1, id2))
    }

    /// Queues `op` with a timeout: if it has not *started* after `timeout`
    /// it completes with `-ECANCELED`. A syscall already running when the
    /// timeout expires is not interrupted and completes with its result.
    pub fn submit_with_timeout(
        &mut self,
        op: Op,
        token: T,
        timeout: Duration,
    ) -> Result<SlotId, SubmitError<T>> {
        let checked = self.check(&op, 1).and_then(|()| {
            if self.supports(OpKind::LinkTimeout) {
                Ok(())
            } else {
                Err(SubmitErrorKind::Unsupported(OpKind::LinkTimeout))
            }
        });
        if let Err(kind) = checked {
            return Err(SubmitError::new(kind, op, token));
        }
        let id = match self.take_slot(token) {
            Ok(id) => id,
            Err(token) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let deadline = self.now_ns().saturating_add(ns);
        let job = self.make_job(id, op, true, Some(deadline));
        self.pending.push(job);
        self.after_push();
        Ok(id)
    }

    /// Wakes threads blocked in [`Waiter::wait`] (counts as one completion
    /// for their `min` until the next reap). Never fails.
    pub fn notify(&mut self) -> io::Result<()> {
        self.shared.lock().notifies += 1;
        self.shared.signal_completion();
        Ok(())
    }
}
