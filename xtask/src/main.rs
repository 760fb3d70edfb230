//! Project automation: `cargo xtask test | loom | sim | bench`.
//!
//! Each subcommand drives cargo; nothing here links the project's crates, so
//! `cargo xtask` builds in seconds on a fresh machine.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "auraio project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole test suite: workspace tests, loom models, simulator checks.
    Test,
    /// Only the loom models (`--cfg loom`, bounded preemptions).
    Loom,
    /// The simulator (`auraio-sim`); arguments are passed through.
    Sim {
        /// Arguments for auraio-sim, e.g. `--scenario all --check`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The main job: the default workload through `auraio-bench` in release.
    Bench {
        /// Arguments for auraio-bench, e.g. `--vs-fio` or `--rw randwrite`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Crates that carry loom models (`#[cfg(loom)]` tests).
const LOOM_CRATES: &[&str] = &[
    "auraio-buffer-pool",
    "auraio-controller",
    "auraio-ring",
    "auraio-engine",
];

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Test => test(),
        Cmd::Loom => loom(),
        Cmd::Sim { args } => sim(&args),
        Cmd::Bench { args } => bench(&args),
    }
}

fn workspace_root() -> PathBuf {
    // xtask's manifest dir is <root>/xtask. `cargo run` sets it at run time;
    // prefer that over the compile-time value, which is stale when a binary
    // built from another checkout is reused through a shared target dir.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(step: &str, mut cmd: Command) -> Result<()> {
    eprintln!("\n==> xtask: {step}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{step}`"))?;
    if !status.success() {
        bail!("`{step}` failed ({status})");
    }
    Ok(())
}

fn test() -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]);
    run("cargo test --workspace", cmd)?;
    loom()?;
    sim(&["--check".to_string()])?;
    Ok(())
}

fn loom() -> Result<()> {
    for krate in LOOM_CRATES {
        let mut cmd = cargo();
        // A separate target dir: `--cfg loom` changes every crate's build.
        cmd.args(["test", "--release", "--lib", "-p", krate])
            .args(["--target-dir", "target/loom", "--", "loom"])
            .env("RUSTFLAGS", "--cfg loom")
            .env(
                "LOOM_MAX_PREEMPTIONS",
                std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "2".into()),
            );
        run(&format!("loom models of {krate}"), cmd)?;
    }
    Ok(())
}

fn sim(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "auraio-sim",
        "--bin",
        "auraio-sim",
        "--",
    ])
    .args(args);
    run(&format!("auraio-sim {}", args.join(" ")), cmd)
}

fn bench(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "auraio-bench",
        "--bin",
        "auraio-bench",
        "--",
    ])
    .args(args);
    run(&format!("auraio-bench {}", args.join(" ")), cmd)
}
