//! `--vs-fio`: run fio's io_uring engine on the same file at several iodepths,
//! parse its JSON and compare side by side.
//!
//! `mod.rs` finds and runs fio; `parse.rs` reads its JSON; `compare.rs`
//! holds the verdict against fio's best depth; `table.rs` the side-by-side
//! table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cli::RwMode;
use crate::summary::LatencyStats;

mod compare;
mod parse;
mod table;
#[cfg(test)]
mod tests;

pub use compare::{compare, compare_points, runners_up, Comparison, RUNNER_UP_SHARE};
pub use parse::parse_fio_json;
pub use table::render_table;

/// What to tell a user who asked for `--vs-fio` without fio installed.
pub const NOT_FOUND: &str = "fio not found: install it with  apt-get install fio";

/// One fio run's result.
#[derive(Clone, Debug, PartialEq)]
pub struct FioResult {
    /// The iodepth it ran at.
    pub iodepth: u32,
    /// IOPS (read + write).
    pub iops: f64,
    /// Bytes per second (read + write).
    pub bw_bytes: f64,
    /// Completion latency (fio's `clat_ns`).
    pub clat: LatencyStats,
}

/// fio's executable on `PATH`, if any.
pub fn find_fio() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fio"))
        .find(|p| p.is_file())
}

/// One fio job: the same workload as auraio's run, at one iodepth.
#[derive(Clone, Debug)]
pub struct FioJob<'a> {
    /// Test file.
    pub file: &'a Path,
    /// Pattern.
    pub rw: RwMode,
    /// Block size.
    pub bs: u64,
    /// O_DIRECT.
    pub direct: bool,
    /// Region size.
    pub size: u64,
    /// Queue depth.
    pub iodepth: u32,
    /// Runtime.
    pub runtime: Duration,
    /// fio jobs (threads).
    pub threads: u32,
}

/// The fio command line for one job (without the executable).
pub fn fio_args(job: &FioJob<'_>) -> Vec<String> {
    let FioJob {
        file,
        rw,
        bs,
        direct,
        size,
        iodepth,
        runtime,
        threads,
    } = *job;
    let mut args: Vec<String> = vec![
        "--name=auraio-vs-fio".into(),
        format!("--filename={}", file.display()),
        "--ioengine=io_uring".into(),
        format!("--direct={}", u8::from(direct)),
        format!("--rw={}", rw.as_str()),
        format!("--bs={bs}"),
        format!("--size={size}"),
        format!("--iodepth={iodepth}"),
        format!("--numjobs={threads}"),
        "--group_reporting".into(),
        "--time_based".into(),
        format!("--runtime={}ms", runtime.as_millis().max(1)),
        "--output-format=json".into(),
    ];
    if !direct {
        // fio drops the file's pages before a job by default: keep the
        // cache as hot for fio as it was for auraio.
        args.push("--invalidate=0".into());
    }
    args
}

/// Runs fio once and parses its result.
pub fn run_fio(fio: &Path, args: &[String], iodepth: u32) -> anyhow::Result<FioResult> {
    let out = Command::new(fio)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", fio.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "fio failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        );
    }
    parse_fio_json(&stdout, iodepth)
}

/// The order in which fio's `depths` run (indices into `depths`), so that
/// the deepest, which usually make fio's best IOPS, run nearest in time to
/// auraio's run: deepest first when auraio has just run
/// (`after_auraio`), deepest last when auraio runs next. The disk drifts:
/// two runs of the same workload differ by 4.4 % (rms) 6 s apart and by
/// 9 % 48 s apart (docs/benchmarks.md, session 8), so in the fixed order
/// 16, 32, 64, 128 after auraio, the comparison with iodepth 128, 40 s
/// later, carried twice the drift of a neighbour's. Equal depths keep
/// their order.
pub fn run_order(depths: &[u32], after_auraio: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..depths.len()).collect();
    if after_auraio {
        order.sort_by_key(|&i| std::cmp::Reverse(depths[i]));
    } else {
        order.sort_by_key(|&i| depths[i]);
    }
    order
}
