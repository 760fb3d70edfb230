//! Queuing ops: [`Ring::submit`], [`Ring::submit_in_place`],
//! [`Ring::submit_linked`], [`Ring::submit_with_timeout`], and the wake-up
//! NOP of [`Ring::notify`].

use std::io;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

#[cfg(doc)]
use crate::completion::Completion;
use crate::completion::{SubmitError, SubmitErrorKind};
use crate::op::{Op, OpKind};
use crate::resources::Held;
use crate::slots::SlotId;
#[cfg(doc)]
use crate::waiter::Waiter;

use super::{CancelState, InFlight, Ring, NOT_SUBMITTED, UD_NOTIFY, UD_TIMEOUT};

impl<T> Ring<T> {
    /// Queues `op`; submits when [`queued`](Self::queued) reaches the batch
    /// threshold. Returns the op's slot, which its [`Completion`] repeats.
    ///
    /// Refused (op and token handed back) when no slot is free
    /// ([`SubmitErrorKind::Full`]), the kernel lacks the op
    /// ([`SubmitErrorKind::Unsupported`]) or the op is malformed.
    #[inline(always)]
    pub fn submit(&mut self, op: Op, token: T) -> Result<SlotId, SubmitError<T>> {
        if let Err(kind) = self.check_op(&op).and_then(|()| self.admit(1, 1, 1)) {
            return Err(SubmitError::new(kind, op, token));
        }
        let (id, sqe) = match self.occupy(op, token, None) {
            Ok(x) => x,
            Err((op, token)) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        if self.push_or_unwind(&[sqe], &[id]) {
            self.note_pushed(&[id.as_u64()]);
        }
        self.after_push();
        Ok(id)
    }

    /// [`submit`](Self::submit) for an op left where the caller keeps it:
    /// on success the op is taken out of `op` (which is left `Op::Nop`);
    /// refused, `op` is untouched and the token comes back with the
    /// reason. The hot ops (NOP, (fixed) read/write) are read field by
    /// field from where the caller built them, never copied whole (a
    /// store-forwarding stall per op; see `Op::take_sqe`).
    #[inline(always)]
    pub fn submit_in_place(
        &mut self,
        op: &mut Op,
        token: T,
    ) -> Result<SlotId, (SubmitErrorKind, T)> {
        if let Err(kind) = self.check_op(op).and_then(|()| self.admit(1, 1, 1)) {
            return Err((kind, token));
        }
        // `admit` found a free slot, and neither its flush nor its reap
        // takes one.
        let (id, f) = self.slots.insert_free_with(|| InFlight {
            token,
            held: Held::None,
            submit_ns: NOT_SUBMITTED,
            timeout: None,
            cancel: CancelState::None,
        });
        let (sqe, held) = op.take_sqe();
        // The slot was just filled with `Held::None`: nothing to drop.
        std::mem::forget(std::mem::replace(&mut f.held, held));
        let sqe = sqe.user_data(id.as_u64());
        if self.push_or_unwind(&[sqe], &[id]) {
            self.note_pushed(&[id.as_u64()]);
        }
        self.after_push();
        Ok(id)
    }

    /// Queues two ops linked with `IOSQE_IO_LINK`: `second` starts only after
    /// `first` succeeded; if `first` fails (or is short), `second` completes
    /// with `-ECANCELED`. Each op gets its own completion.
    pub fn submit_linked(
        &mut self,
        first: (Op, T),
        second: (Op, T),
    ) -> Result<(SlotId, SlotId), SubmitError<T>> {
        let (op1, t1) = first;
        let (op2, t2) = second;
        let checked = self
            .check_op(&op1)
            .and_then(|()| self.check_op(&op2))
            .and_then(|()| self.admit(2, 2, 2));
        if let Err(kind) = checked {
            let mut e = SubmitError::new(kind, op1, t1);
            e.second = Some((op2, t2));
            return Err(e);
        }
        let id1 = match self.take_slot(t1) {
            Ok(id) => id,
            Err(t1) => {
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let id2 = match self.take_slot(t2) {
            Ok(id) => id,
            Err(t2) => {
                let t1 = self.untake_slot(id1);
                let mut e = SubmitError::new(SubmitErrorKind::Full, op1, t1);
                e.second = Some((op2, t2));
                return Err(e);
            }
        };
        let sqe1 = self.fill_slot(id1, op1, None).flags(squeue::Flags::IO_LINK);
        let sqe2 = self.fill_slot(id2, op2, None);
        if self.push_or_unwind(&[sqe1, sqe2], &[id1, id2]) {
            self.note_pushed(&[id1.as_u64(), id2.as_u64()]);
        }
        self.after_push();
        Ok((id1, id2))
    }

    /// Queues `op` with a linked timeout: if it has not completed after
    /// `timeout`, the kernel cancels it and it completes with `-ECANCELED`
    /// (an op already running in a worker may instead finish with `-EINTR`
    /// or its own result). The timeout's own CQE is consumed internally.
    pub fn submit_with_timeout(
        &mut self,
        op: Op,
        token: T,
        timeout: Duration,
    ) -> Result<SlotId, SubmitError<T>> {
        let checked = self.check_op(&op).and_then(|()| {
            if self.supports(OpKind::LinkTimeout) {
                self.admit(1, 2, 2)
            } else {
                Err(SubmitErrorKind::Unsupported(OpKind::LinkTimeout))
            }
        });
        if let Err(kind) = checked {
            return Err(SubmitError::new(kind, op, token));
        }
        let ts = Box::new(
            types::Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos()),
        );
        // The box's heap address stays put when the box moves into the slot.
        let ts_ptr: *const types::Timespec = &*ts;
        let (id, sqe1) = match self.occupy(op, token, Some(ts)) {
            Ok(x) => x,
            Err((op, token)) => return Err(SubmitError::new(SubmitErrorKind::Full, op, token)),
        };
        let sqe1 = sqe1.flags(squeue::Flags::IO_LINK);
        let sqe2 = opcode::LinkTimeout::new(ts_ptr)
            .build()
            .user_data(UD_TIMEOUT);
        if self.push_or_unwind(&[sqe1, sqe2], &[id]) {
            self.internal += 1;
            self.note_pushed(&[id.as_u64(), UD_TIMEOUT]);
        }
        self.after_push();
        Ok(id)
    }

    /// Submits a NOP whose CQE is consumed internally, to wake a thread
    /// blocked in [`Waiter::wait`]. `WouldBlock` if the CQ budget is used
    /// up (then completions are due anyway).
    pub fn notify(&mut self) -> io::Result<()> {
        if !self.budget_allows(1) || !self.ensure_sq_room(1) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "no room for a wake-up request",
            ));
        }
        let sqe = opcode::Nop::new().build().user_data(UD_NOTIFY);
        if self.push(&[sqe]) {
            self.internal += 1;
            self.note_pushed(&[UD_NOTIFY]);
        }
        self.submit_pending(false).map(|_| ())
    }
}
