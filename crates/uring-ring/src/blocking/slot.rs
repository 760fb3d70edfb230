//! Slots: taking a slot for an op and its token, giving it back, and making
//! the op's job (registered files and buffers resolved at submit).

use crate::op::{Fd, Op};
use crate::slots::SlotId;

use super::state::{Job, Target};
use super::{BlockingRing, Entry};

impl<T> BlockingRing<T> {
    pub(super) fn take_slot(&mut self, token: T) -> Result<SlotId, T> {
        self.slots
            .insert(Entry {
                token,
                submit_ns: u64::MAX,
            })
            .map_err(|e| e.token)
    }

    pub(super) fn untake_slot(&mut self, id: SlotId) -> T {
        match self.slots.remove(id) {
            Some(e) => e.token,
            // `id` was returned by `take_slot` just before; nothing else ran.
            None => unreachable!("slot taken a moment ago vanished"),
        }
    }

    /// Resolves registered files/buffers now, as the job will run later.
    pub(super) fn make_job(
        &mut self,
        id: SlotId,
        op: Op,
        queued: bool,
        deadline_ns: Option<u64>,
    ) -> Job {
        let fd = match &op {
            Op::Read { fd, .. }
            | Op::Write { fd, .. }
            | Op::Readv { fd, .. }
            | Op::Writev { fd, .. }
            | Op::Fsync { fd, .. }
            | Op::Fallocate { fd, .. }
            | Op::Ftruncate { fd, .. }
            | Op::ReadFixed { fd, .. }
            | Op::WriteFixed { fd, .. } => Some(*fd),
            Op::Close { fd } => Some(*fd),
            Op::Nop | Op::Statx { .. } | Op::OpenAt { .. } => None,
        };
        let closing = matches!(op, Op::Close { .. });
        let target = match fd {
            None => Target::Raw(-1),
            Some(Fd::Raw(raw)) => Target::Raw(raw),
            Some(Fd::Fixed(i)) => self.resolve_file(i, closing),
        };
        let pre = match &op {
            Op::ReadFixed { buf, buf_index, .. } => {
                self.check_fixed_buf(*buf_index, buf.stable_ptr() as usize, buf.bytes_total())
            }
            Op::WriteFixed { buf, buf_index, .. } => {
                self.check_fixed_buf(*buf_index, buf.stable_ptr() as usize, buf.bytes_init())
            }
            _ => None,
        };
        Job {
            id,
            op,
            target,
            pre,
            link: None,
            queued,
            deadline_ns,
        }
    }
}
