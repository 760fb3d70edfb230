//! Slots: taking a slot for an op and its token, filling it with the op's
//! resources, and giving it back.

use io_uring::{squeue, types};

use crate::op::Op;
use crate::resources::Held;
use crate::slots::SlotId;

use super::{CancelState, InFlight, Ring, NOT_SUBMITTED};

impl<T> Ring<T> {
    pub(super) fn take_slot(&mut self, token: T) -> Result<SlotId, T> {
        self.slots
            .insert(InFlight {
                token,
                held: Held::None,
                submit_ns: NOT_SUBMITTED,
                timeout: None,
                cancel: CancelState::None,
            })
            .map_err(|f| f.token)
    }

    /// Takes a slot for `op` and returns its SQE (`user_data` set): one
    /// slot-table access. Op and token come back if no slot is free.
    ///
    /// The slot's value is built only once its place is known, so it is
    /// stored straight into the table (an `InFlight` assembled on the stack
    /// and then moved in was a store-forwarding stall per op).
    #[inline(always)]
    pub(super) fn occupy(
        &mut self,
        op: Op,
        token: T,
        timeout: Option<Box<types::Timespec>>,
    ) -> Result<(SlotId, squeue::Entry), (Op, T)> {
        if self.slots.available() == 0 {
            return Err((op, token));
        }
        let (id, f) = self.slots.insert_free_with(|| InFlight {
            token,
            held: Held::None,
            submit_ns: NOT_SUBMITTED,
            timeout,
            cancel: CancelState::None,
        });
        let (sqe, held) = op.into_sqe();
        // The slot was just filled with `Held::None`: nothing to drop (and
        // skipping the drop glue saves a call per op).
        std::mem::forget(std::mem::replace(&mut f.held, held));
        Ok((id, sqe.user_data(id.as_u64())))
    }

    pub(super) fn untake_slot(&mut self, id: SlotId) -> T {
        match self.slots.remove(id) {
            Some(f) => f.token,
            // `id` was returned by `take_slot` just before; nothing else ran.
            None => unreachable!("slot taken a moment ago vanished"),
        }
    }

    /// Moves the op's resources into its slot and returns its SQE.
    pub(super) fn fill_slot(
        &mut self,
        id: SlotId,
        op: Op,
        timeout: Option<Box<types::Timespec>>,
    ) -> squeue::Entry {
        let (sqe, held) = op.into_sqe();
        if let Some(f) = self.slots.get_mut(id) {
            f.held = held;
            f.timeout = timeout;
        }
        sqe.user_data(id.as_u64())
    }
}
