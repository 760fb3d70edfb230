//! Offline simulator: device models and recorded traces driving auraio's
//! controllers, with metrics and convergence plots.
#![warn(missing_docs)]
