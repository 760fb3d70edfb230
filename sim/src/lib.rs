//! Offline simulator: device models and recorded traces driving auraio's
//! controllers, with metrics and convergence plots.
//!
//! - [`device`]: discrete-event device models and presets;
//! - [`empirical`]: trace-driven devices (auraio JSON-lines traces, fio logs);
//! - [`runner`]: one simulated ring + device + real controller;
//! - [`scenario`], [`metrics`], [`report`]: scenarios, scorecards, checks;
//! - [`plot`]: convergence plots (PNG + SVG), reusable for any time series.
#![warn(missing_docs)]

pub mod device;
pub mod empirical;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sched;
pub mod suite;

use std::path::PathBuf;

/// Errors of the simulator: bad input is reported, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (shown in the message, not chained).
        err: std::io::Error,
    },
    /// A malformed line in an input file.
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// An input file without usable data.
    #[error("{}: {what}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A controller could not be built.
    #[error(transparent)]
    Controller(#[from] auraio_controller::ControllerError),
    /// A trace could not be read.
    #[error(transparent)]
    Trace(#[from] auraio_controller::TraceError),
    /// A plot could not be written.
    #[error("plot {0}")]
    Plot(String),
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
}
