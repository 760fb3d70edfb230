//! Errors returned when an operation could not be submitted.

use std::fmt;
use std::io;

/// An operation that was **not** submitted. Its callback will never be
/// called; instead the output it would have produced (with the error and
/// every buffer it owned) is handed back here.
///
/// Contract for every submitting method: either it returns `Err` and the
/// callback is never called, or it returns `Ok` and the callback is called
/// exactly once (with the result, or `ECANCELED` if the engine shuts down or
/// the op is cancelled first).
///
/// Converts into `io::Error` (so `?` works in functions returning
/// `io::Result`); use [`into_output`](Self::into_output) to get the buffer
/// back.
pub struct SubmitError<O> {
    error: io::Error,
    output: O,
}

impl<O> SubmitError<O> {
    pub(crate) fn new(error: io::Error, output: O) -> Self {
        SubmitError { error, output }
    }

    /// Why the submission failed.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The error's kind (e.g. `Unsupported` for an op the kernel lacks).
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// The output the op produces, carrying a copy of the error and every
    /// buffer it owned, e.g. `(Err(..), buf)` for a read.
    pub fn into_output(self) -> O {
        self.output
    }

    /// The error and the output.
    pub fn into_parts(self) -> (io::Error, O) {
        (self.error, self.output)
    }
}

impl<O> fmt::Debug for SubmitError<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<O> fmt::Display for SubmitError<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation not submitted: {}", self.error)
    }
}

impl<O> std::error::Error for SubmitError<O> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<O> From<SubmitError<O>> for io::Error {
    fn from(e: SubmitError<O>) -> io::Error {
        e.error
    }
}

/// The error inside the `io::Error` returned for operations submitted after
/// the engine shut down. Test with [`is_shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineShutdown;

impl fmt::Display for EngineShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the auraio engine has been shut down")
    }
}

impl std::error::Error for EngineShutdown {}

pub(crate) fn shutdown_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, EngineShutdown)
}

/// True when `e` says the engine had already shut down.
pub fn is_shutdown(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<EngineShutdown>().is_some())
}

/// The error completions get when they are cancelled (by
/// [`Engine::cancel`](crate::Engine::cancel), a dropped future, or
/// shutdown).
pub(crate) fn canceled() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}
