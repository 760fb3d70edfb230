//! The public [`OpHandle`] of a submitted op (cancel it, ask whether it
//! finished).

use std::sync::Arc;

use super::{OpCtl, Phase};

/// A handle to a submitted operation, used to cancel it
/// ([`Engine::cancel`](crate::Engine::cancel)) or ask whether it finished.
/// Dropping it does nothing.
#[derive(Clone)]
pub struct OpHandle {
    pub(crate) ctl: Arc<OpCtl>,
}

impl OpHandle {
    /// True once the operation's completion has been delivered (or is being
    /// delivered right now).
    pub fn is_done(&self) -> bool {
        self.ctl.phase() == Phase::Done
    }

    /// The ring the operation was submitted to.
    pub fn ring(&self) -> usize {
        self.ctl.ring as usize
    }
}

impl std::fmt::Debug for OpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpHandle")
            .field("ring", &self.ctl.ring)
            .field("phase", &self.ctl.phase())
            .finish()
    }
}
