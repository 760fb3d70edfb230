//! [`OpKind`]: the kinds of operation a ring can perform, with their kernel
//! opcodes and short names.

use std::fmt;

use io_uring::opcode;

/// The kinds of operation a ring can perform; used for the feature probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `IORING_OP_NOP`.
    Nop,
    /// `IORING_OP_READ`.
    Read,
    /// `IORING_OP_WRITE`.
    Write,
    /// `IORING_OP_READV`.
    Readv,
    /// `IORING_OP_WRITEV`.
    Writev,
    /// `IORING_OP_FSYNC` (fsync and fdatasync).
    Fsync,
    /// `IORING_OP_FALLOCATE`.
    Fallocate,
    /// `IORING_OP_FTRUNCATE` (Linux 6.9+).
    Ftruncate,
    /// `IORING_OP_STATX`.
    Statx,
    /// `IORING_OP_OPENAT`.
    OpenAt,
    /// `IORING_OP_CLOSE`.
    Close,
    /// `IORING_OP_READ_FIXED`.
    ReadFixed,
    /// `IORING_OP_WRITE_FIXED`.
    WriteFixed,
    /// `IORING_OP_ASYNC_CANCEL` (used by [`Ring::cancel`](crate::Ring::cancel)).
    AsyncCancel,
    /// `IORING_OP_LINK_TIMEOUT` (used by
    /// [`Ring::submit_with_timeout`](crate::Ring::submit_with_timeout)).
    LinkTimeout,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 15] = [
        OpKind::Nop,
        OpKind::Read,
        OpKind::Write,
        OpKind::Readv,
        OpKind::Writev,
        OpKind::Fsync,
        OpKind::Fallocate,
        OpKind::Ftruncate,
        OpKind::Statx,
        OpKind::OpenAt,
        OpKind::Close,
        OpKind::ReadFixed,
        OpKind::WriteFixed,
        OpKind::AsyncCancel,
        OpKind::LinkTimeout,
    ];

    /// The kernel opcode.
    pub fn opcode(self) -> u8 {
        match self {
            OpKind::Nop => opcode::Nop::CODE,
            OpKind::Read => opcode::Read::CODE,
            OpKind::Write => opcode::Write::CODE,
            OpKind::Readv => opcode::Readv::CODE,
            OpKind::Writev => opcode::Writev::CODE,
            OpKind::Fsync => opcode::Fsync::CODE,
            OpKind::Fallocate => opcode::Fallocate::CODE,
            OpKind::Ftruncate => opcode::Ftruncate::CODE,
            OpKind::Statx => opcode::Statx::CODE,
            OpKind::OpenAt => opcode::OpenAt::CODE,
            OpKind::Close => opcode::Close::CODE,
            OpKind::ReadFixed => opcode::ReadFixed::CODE,
            OpKind::WriteFixed => opcode::WriteFixed::CODE,
            OpKind::AsyncCancel => opcode::AsyncCancel::CODE,
            OpKind::LinkTimeout => opcode::LinkTimeout::CODE,
        }
    }

    /// A short lowercase name ("read", "fsync", ...), e.g. for traces.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Nop => "nop",
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Readv => "readv",
            OpKind::Writev => "writev",
            OpKind::Fsync => "fsync",
            OpKind::Fallocate => "fallocate",
            OpKind::Ftruncate => "ftruncate",
            OpKind::Statx => "statx",
            OpKind::OpenAt => "openat",
            OpKind::Close => "close",
            OpKind::ReadFixed => "read_fixed",
            OpKind::WriteFixed => "write_fixed",
            OpKind::AsyncCancel => "async_cancel",
            OpKind::LinkTimeout => "link_timeout",
        }
    }

    #[inline]
    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
