//! `auraio-sim`: run tuning policies against simulated devices, print a
//! scorecard, write `summary.json` and convergence plots, and (`--check`)
//! fail unless the default controller passes every scenario's criteria.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use auraio_controller::ControllerConfig;
use auraio_sim::device::DeviceSpec;
use auraio_sim::empirical::{EmpiricalProfile, LatUnit};
use auraio_sim::suite::Labeled;
use auraio_sim::{report, scenario, suite};
use clap::Parser;

/// Compare in-flight tuning policies on simulated devices.
#[derive(Parser, Debug)]
#[command(name = "auraio-sim", version, about, long_about = None)]
struct Cli {
    /// Scenario(s) to run, comma-separated, or `all`. Default: all built-in
    /// scenarios, or only the trace scenarios when --trace/--fio-lat-logs
    /// is given.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Controllers, comma-separated: `aimd`, `fixed:64`, `fixed:64:8`,
    /// `replay:trace.jsonl`, or a JSON `ControllerConfig` such as
    /// `{"policy":"aimd","backoff_factor":0.9}` (commas inside braces are kept),
    /// optionally labelled: `gentle={"policy":"aimd","backoff_factor":0.9}`.
    #[arg(long, default_value = "aimd")]
    controllers: String,
    /// An auraio JSON-lines trace with `io` records: adds scenario `trace`
    /// (closed loop on a device replaying its depth-conditioned latencies).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// A directory of fio latency logs (`--write_lat_log`) recorded at
    /// several iodepths: adds scenario `fio`. The depth of each log comes
    /// from `qd<N>` in its file name or from --fio-depth.
    #[arg(long)]
    fio_lat_logs: Option<PathBuf>,
    /// The iodepth of a fio log whose name does not say it: `FILE=N`
    /// (file name only), repeatable.
    #[arg(long, value_name = "FILE=N")]
    fio_depth: Vec<String>,
    /// Unit of the fio logs' latency column: `ns` (fio 3.x) or `us` (fio 2.x).
    #[arg(long, default_value = "ns")]
    fio_lat_unit: LatUnit,
    /// Simulated seconds of the trace/fio scenarios.
    #[arg(long, default_value_t = 6.0)]
    trace_duration: f64,
    /// Seed of every random stream (same seed, same results).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory for summary.json and plots.
    #[arg(long, default_value = "target/auraio-sim")]
    out: PathBuf,
    /// Check the pass criteria: exit non-zero unless the default controller
    /// (aimd) passes every checked scenario.
    #[arg(long)]
    check: bool,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// List the scenarios and device presets, then exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            // The chain, without causes whose text a message already quotes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("auraio-sim: error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if cli.list {
        println!("scenarios:");
        for name in scenario::BUILTIN {
            if let Some(s) = scenario::builtin(name) {
                println!("  {name:22} {}", s.about);
            }
        }
        println!(
            "device presets: {}",
            auraio_sim::device::DeviceParams::PRESETS.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let start = Instant::now();

    let mut controllers: Vec<Labeled> = Vec::new();
    for c in split_top_level(&cli.controllers) {
        let c = c.trim();
        if c.is_empty() {
            continue;
        }
        // `label={json}` names a JSON config for the tables and plots.
        let (label, spec) = match c.split_once("={") {
            Some((l, rest)) if !l.contains('{') => {
                (Some(l.trim().to_string()), format!("{{{rest}"))
            }
            _ => (None, c.to_string()),
        };
        let cfg: ControllerConfig = spec
            .parse()
            .map_err(|e| anyhow::anyhow!("--controllers: `{c}`: {e}"))?;
        let mut l = Labeled::from(cfg);
        if let Some(label) = label {
            l.label = label;
        }
        controllers.push(l);
    }
    let default = ControllerConfig::default();
    let default_name = default.to_string();
    if cli.check && !controllers.iter().any(|c| c.config == default) {
        controllers.insert(0, Labeled::from(default.clone()));
    }
    if controllers.is_empty() {
        bail!("--controllers: give at least one controller");
    }

    let mut scenarios = Vec::new();
    let trace_given = cli.trace.is_some() || cli.fio_lat_logs.is_some();
    let names: Vec<String> = if cli.scenario.is_empty() {
        if trace_given && !cli.check {
            Vec::new()
        } else {
            vec!["all".into()]
        }
    } else {
        cli.scenario.clone()
    };
    for n in &names {
        let n = n.trim();
        if n == "all" {
            scenarios.extend(
                scenario::BUILTIN
                    .iter()
                    .filter_map(|s| scenario::builtin(s)),
            );
        } else if n == "trace" || n == "fio" {
            // Added below from --trace / --fio-lat-logs.
        } else {
            match scenario::builtin(n) {
                Some(s) => scenarios.push(s),
                None => bail!(
                    "unknown scenario `{n}` (known: {}, all)",
                    scenario::BUILTIN.join(", ")
                ),
            }
        }
    }
    if let Some(path) = &cli.trace {
        let prof = EmpiricalProfile::from_auraio_trace(path)
            .with_context(|| format!("--trace {}", path.display()))?;
        print_profile(&prof);
        scenarios.push(scenario::steady_on(
            "trace",
            DeviceSpec::Empirical(Arc::new(prof)),
            cli.trace_duration,
        ));
    }
    if let Some(dir) = &cli.fio_lat_logs {
        let mut depths = BTreeMap::new();
        for m in &cli.fio_depth {
            let (f, d) = m
                .split_once('=')
                .with_context(|| format!("--fio-depth `{m}`: expected FILE=N"))?;
            let d: u32 = d
                .trim()
                .parse()
                .ok()
                .filter(|&d| d > 0)
                .with_context(|| format!("--fio-depth `{m}`: N must be a positive integer"))?;
            depths.insert(f.trim().to_string(), d);
        }
        let prof = EmpiricalProfile::from_fio_dir(dir, &depths, cli.fio_lat_unit)
            .with_context(|| format!("--fio-lat-logs {}", dir.display()))?;
        print_profile(&prof);
        scenarios.push(scenario::steady_on(
            "fio",
            DeviceSpec::Empirical(Arc::new(prof)),
            cli.trace_duration,
        ));
    }
    if scenarios.is_empty() {
        bail!("nothing to run");
    }

    let threads = cli.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let reports = suite::run_suite(&scenarios, &controllers, cli.seed, threads)?;
    let elapsed = start.elapsed().as_secs_f64();

    print!("{}", report::scorecard(&reports));
    let check_failures = report::failures(&reports, Some(&default_name));
    let other_failures: Vec<String> = report::failures(&reports, None)
        .into_iter()
        .filter(|f| !check_failures.contains(f))
        .collect();
    let pass = check_failures.is_empty();

    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    if !cli.no_plots {
        let (paths, text) = report::write_plots(&reports, &cli.out)?;
        if !text {
            eprintln!(
                "auraio-sim: warning: no TrueType font found (set AURAIO_PLOT_FONT=/path/to/font.ttf); \
                 plots were written without text"
            );
        }
        println!("plots: {} (and .svg) in {}", paths.len(), cli.out.display());
    }
    report::write_series(&reports, &cli.out)?;
    let names: Vec<String> = controllers.iter().map(|c| c.label.clone()).collect();
    let summary = report::summary(&reports, cli.seed, names, elapsed, pass, !cli.no_plots);
    let json_path = cli.out.join("summary.json");
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    println!("summary: {}", json_path.display());
    println!("simulated in {elapsed:.1} s on {threads} thread(s)");

    if !other_failures.is_empty() {
        println!("\nother controllers (not required to pass):");
        for f in &other_failures {
            println!("  {f}");
        }
    }
    if !check_failures.is_empty() {
        println!("\n{default_name} failed:");
        for f in &check_failures {
            println!("  {f}");
        }
    }
    if cli.check {
        if pass {
            println!("\ncheck: PASS ({default_name} meets every criterion)");
        } else {
            println!("\ncheck: FAIL");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Split on commas that are not inside `{…}` or `[…]` (JSON configs).
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

fn print_profile(p: &EmpiricalProfile) {
    println!("{}: {} depth level(s)", p.name, p.levels.len());
    for l in &p.levels {
        println!(
            "  depth {:7.1}: {:8} samples, mean {:9.1} µs, ≈{:.0} IOPS",
            l.depth,
            l.samples,
            l.mean_ns / 1e3,
            l.depth / (l.mean_ns.max(1.0) * 1e-9)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::split_top_level;

    #[test]
    fn splits_outside_json() {
        assert_eq!(split_top_level("aimd,fixed:64"), vec!["aimd", "fixed:64"]);
        assert_eq!(
            split_top_level(r#"{"policy":"fixed","in_flight":4,"batch":2},aimd"#),
            vec![r#"{"policy":"fixed","in_flight":4,"batch":2}"#, "aimd"]
        );
        assert_eq!(split_top_level(""), vec![""]);
    }
}
