//! [`BatchError`]: what [`Engine::submit_batch`](crate::Engine::submit_batch)
//! hands back when it could not submit a whole batch.

use std::fmt;
use std::io;

use crate::request::{clone_error, Request};

/// A batch that was submitted only in part (or not at all).
///
/// The first [`accepted`](Self::accepted) ops of the batch were accepted:
/// each of their callbacks will be called exactly once, as after
/// [`Engine::submit`](crate::Engine::submit). Everything after them was
/// **not** submitted and none of those callbacks has been or will be called
/// by the engine:
/// - [`refused`](Self::into_parts): the op that stopped the batch (a bad
///   request, an op the kernel lacks, ...) as its output (carrying a copy of
///   [`error`](Self::error) and every buffer it owned, as a
///   [`SubmitError`](crate::SubmitError) would) together with its uncalled
///   callback; `None` when the engine was shut down (then nothing of the
///   batch was taken);
/// - [`rest`](Self::into_parts): the pairs after it, untouched, in order,
///   to be submitted again or dropped.
///
/// [`complete_all`](Self::complete_all) calls each of those callbacks once
/// with an error, for callers that want every op to complete through its
/// callback. Converts into `io::Error` (so `?` works); use
/// [`is_shutdown`](crate::is_shutdown) on [`error`](Self::error) to
/// recognise a shut-down engine.
pub struct BatchError<O, F> {
    accepted: usize,
    error: io::Error,
    refused: Option<(O, F)>,
    rest: Vec<(Request<O>, F)>,
}

impl<O, F> BatchError<O, F> {
    pub(crate) fn new(
        accepted: usize,
        error: io::Error,
        refused: Option<(O, F)>,
        rest: Vec<(Request<O>, F)>,
    ) -> Self {
        BatchError {
            accepted,
            error,
            refused,
            rest,
        }
    }

    /// How many ops of the batch (its first ones) were accepted.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Why the batch stopped.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// How many ops of the batch were not submitted (the refused one, if
    /// any, and the rest).
    pub fn not_submitted(&self) -> usize {
        usize::from(self.refused.is_some()) + self.rest.len()
    }

    /// The error, the refused op (output and callback) and the untouched
    /// rest of the batch.
    #[allow(clippy::type_complexity)]
    pub fn into_parts(self) -> (io::Error, Option<(O, F)>, Vec<(Request<O>, F)>) {
        (self.error, self.refused, self.rest)
    }

    /// Calls the callback of every op that was not submitted, once each, in
    /// batch order: the refused op's with its own output, each later op's
    /// with an output carrying an error of the same kind (and every buffer
    /// it owned). Returns the error and how many callbacks ran.
    pub fn complete_all(self) -> (io::Error, usize)
    where
        F: FnOnce(O),
    {
        let mut n = 0;
        if let Some((out, cb)) = self.refused {
            cb(out);
            n += 1;
        }
        for (req, cb) in self.rest {
            // A shut-down engine's error stays recognisable (`is_shutdown`).
            let e = if crate::error::is_shutdown(&self.error) {
                clone_error(&self.error)
            } else {
                io::Error::new(
                    self.error.kind(),
                    format!(
                        "not submitted: an earlier operation of its batch was refused ({})",
                        self.error
                    ),
                )
            };
            cb(req.fail(e));
            n += 1;
        }
        (self.error, n)
    }
}

impl<O, F> fmt::Debug for BatchError<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchError")
            .field("accepted", &self.accepted)
            .field("error", &self.error)
            .field("not_submitted", &self.not_submitted())
            .finish_non_exhaustive()
    }
}

impl<O, F> fmt::Display for BatchError<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch submitted in part ({} accepted, {} not submitted): {}",
            self.accepted,
            self.not_submitted(),
            self.error
        )
    }
}

impl<O, F> std::error::Error for BatchError<O, F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<O, F> From<BatchError<O, F>> for io::Error {
    fn from(e: BatchError<O, F>) -> io::Error {
        e.error
    }
}
