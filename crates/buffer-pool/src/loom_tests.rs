//! loom models of the pool's concurrent parts (run with `--cfg loom`).
