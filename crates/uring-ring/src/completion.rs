//! Completions handed back to the caller, and submission errors.

use std::fmt;
use std::io;

use crate::op::{Op, OpKind};
use crate::resources::Resources;
use crate::slots::SlotId;

/// One finished operation.
#[derive(Debug)]
pub struct Completion<T> {
    /// The caller's per-op target, given at submit.
    pub token: T,
    /// The slot the op used (same value `submit` returned).
    pub slot: SlotId,
    /// The kernel's result: `>= 0` success (bytes, fd, ...), `< 0` is `-errno`.
    pub result: i32,
    /// Whatever the op owned, handed back (buffers with init length set).
    pub resources: Resources,
    /// Monotonic nanoseconds from the hand-off of the op to the kernel to
    /// the reap of this completion.
    ///
    /// The start is the `io_uring_enter` that submitted the op's SQE, read
    /// once per enter: every op in that batch shares it, and the time an op
    /// spent queued in the ring waiting for the batch to fill (before
    /// [`flush`](crate::Ring::flush), `poll`, `wait` or the batch threshold
    /// handed it over) is *not* included. With SQPOLL the start is the push
    /// of the SQE, since the kernel's poller may take it at once. The end is
    /// read once per reap: every completion moved out of the CQ together
    /// (by one `poll`, or one wake-up inside `wait`) shares it, and it is
    /// taken after the CQEs became visible, so the value is never shorter
    /// than the op's time in the kernel. An op completed without reaching
    /// the kernel reports 0.
    ///
    /// The [blocking backend](crate::blocking) measures from its hand-off
    /// to the worker pool to the end of the worker's syscall.
    pub latency_ns: u64,
}

impl<T> Completion<T> {
    /// The result as `io::Result`: `Ok(n)` or the errno as an `io::Error`.
    pub fn io_result(&self) -> io::Result<usize> {
        if self.result >= 0 {
            Ok(self.result as usize)
        } else {
            Err(io::Error::from_raw_os_error(-self.result))
        }
    }
}

/// Why a submission was refused.
#[derive(Debug)]
pub enum SubmitErrorKind {
    /// No free slot (in flight == capacity), or no room in the CQ budget /
    /// SQ right now. Back-pressure: reap completions and retry.
    Full,
    /// The kernel does not support this operation (per the feature probe).
    Unsupported(OpKind),
    /// The op is malformed (e.g. a buffer larger than `u32::MAX` bytes).
    InvalidInput(&'static str),
    /// Another error from the kernel.
    Io(io::Error),
}

impl fmt::Display for SubmitErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitErrorKind::Full => f.write_str("ring is full"),
            SubmitErrorKind::Unsupported(k) => {
                write!(f, "operation {k} is not supported by this kernel")
            }
            SubmitErrorKind::InvalidInput(m) => write!(f, "invalid operation: {m}"),
            SubmitErrorKind::Io(e) => write!(f, "submit failed: {e}"),
        }
    }
}

/// A refused submission. Nothing reached the kernel: the op and token come
/// back untouched so the caller can retry or fail them.
pub struct SubmitError<T> {
    /// Why.
    pub kind: SubmitErrorKind,
    /// The op, as given.
    pub op: Op,
    /// The token, as given.
    pub token: T,
    /// For [`Ring::submit_linked`](crate::Ring::submit_linked): the second
    /// op and its token (also untouched). `None` for single submissions.
    pub second: Option<(Op, T)>,
}

impl<T> SubmitError<T> {
    pub(crate) fn new(kind: SubmitErrorKind, op: Op, token: T) -> Self {
        SubmitError {
            kind,
            op,
            token,
            second: None,
        }
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("kind", &self.kind)
            .field("op", &self.op)
            .field("second", &self.second.as_ref().map(|(op, _)| op))
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<T> std::error::Error for SubmitError<T> {}

impl<T> From<SubmitError<T>> for io::Error {
    fn from(e: SubmitError<T>) -> io::Error {
        match e.kind {
            SubmitErrorKind::Full => io::Error::new(io::ErrorKind::WouldBlock, "ring is full"),
            SubmitErrorKind::Unsupported(k) => io::Error::new(
                io::ErrorKind::Unsupported,
                format!("operation {k} is not supported by this kernel"),
            ),
            SubmitErrorKind::InvalidInput(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
            SubmitErrorKind::Io(e) => e,
        }
    }
}
