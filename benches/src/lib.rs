//! `auraio-bench`: the fio-style workload runner for auraio (library part).
//!
//! The binary (`src/main.rs`) parses the command line ([`cli`]), prepares the
//! test file ([`prep`]), runs a [`driver::Driver`] through [`runner`] with a
//! live progress line, prints the fio-style [`summary`], writes the JSON,
//! trace and convergence [`plot`], and optionally compares with [`fio`].
#![warn(missing_docs)]

pub mod cli;
pub mod converge;
pub mod driver;
pub mod engine_driver;
pub mod fio;
pub mod offsets;
pub mod paths;
pub mod plot;
pub mod prep;
pub mod rounds;
pub mod runner;
pub mod summary;
