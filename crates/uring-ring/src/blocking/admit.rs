//! Admission: checking an op against the enabled ops and its own validity,
//! and that enough slots are free for it.

use crate::completion::SubmitErrorKind;
use crate::op::Op;

use super::BlockingRing;

impl<T> BlockingRing<T> {
    pub(super) fn check(&self, op: &Op, slots: u32) -> Result<(), SubmitErrorKind> {
        let kind = op.kind();
        if !self.supports(kind) {
            return Err(SubmitErrorKind::Unsupported(kind));
        }
        op.validate().map_err(SubmitErrorKind::InvalidInput)?;
        if self.slots.available() < slots {
            return Err(SubmitErrorKind::Full);
        }
        Ok(())
    }
}
