//! Pure, deterministic controllers that turn one tick's measurements into the
//! next in-flight limit and batch size.
#![warn(missing_docs)]
