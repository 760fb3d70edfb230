//! What an op is ([`OpInfo`]), fixed at submit and read by stats, traces
//! and fault injection.

use auraio_ring::OpKind;

/// Bookkeeping for stats and traces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpInfo {
    pub(crate) kind: OpKind,
    pub(crate) len: u64,
    pub(crate) traced: bool,
    /// A fault plan submitted it shorter than asked (its buffer is wrapped
    /// and unwrapped again in [`Target::finish`](super::Target::finish)).
    pub(crate) shortened: bool,
    /// It uses a registered buffer (read_fixed / write_fixed).
    pub(crate) fixed_buf: bool,
    /// It targets a registered file.
    pub(crate) fixed_file: bool,
}

impl OpInfo {
    pub(crate) fn counts_bytes(&self) -> bool {
        matches!(
            self.kind,
            OpKind::Read
                | OpKind::Write
                | OpKind::Readv
                | OpKind::Writev
                | OpKind::ReadFixed
                | OpKind::WriteFixed
        )
    }
}
