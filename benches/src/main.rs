//! `auraio-bench`: fio-style workload runner. `auraio-bench --help` lists the options.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use auraio_bench::cli::{fmt_bytes, Args};
use auraio_bench::engine_driver::{EngineDriver, EngineOptions};
use auraio_bench::fio;
use auraio_bench::paths;
use auraio_bench::plot;
use auraio_bench::prep::{self, Prepared};
use auraio_bench::rounds;
use auraio_bench::runner;
use auraio_bench::summary::RunResult;
use auraio_controller::ControllerConfig;

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auraio-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(args: &Args) -> anyhow::Result<ExitCode> {
    if let Err(msg) = args.validate() {
        anyhow::bail!("{msg}");
    }
    let fio_path = if args.vs_fio {
        match fio::find_fio() {
            Some(p) => Some(p),
            None => {
                eprintln!("{}", fio::NOT_FOUND);
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        None
    };
    let file = args.file.clone().unwrap_or_else(paths::default_test_file);
    let record = args.record.clone().unwrap_or_else(paths::default_trace);
    let plot_path = args.plot.clone().unwrap_or_else(paths::default_plot);

    if args.rw.uses_file() {
        let quiet = args.quiet;
        let prepared = prep::prepare_file(&file, args.size, args.file.is_none(), &mut |line| {
            if !quiet {
                eprintln!("{line}");
            }
        })
        .with_context(|| format!("preparing test file {}", file.display()))?;
        if !quiet && prepared == Prepared::Reused {
            eprintln!(
                "reusing test file {} ({} of data)",
                file.display(),
                fmt_bytes(args.size)
            );
        }
        if !args.direct() && !args.rw.writes() && prepared != Prepared::BlockDevice {
            if !quiet {
                eprintln!(
                    "warming the page cache: reading {} once ...",
                    fmt_bytes(args.size)
                );
            }
            prep::warm_cache(&file, args.size)
                .with_context(|| format!("reading {}", file.display()))?;
        }
        if args.direct() && !args.no_warmup {
            warm_device(&file, args.size, quiet);
        }
    }

    let (result, notes) = run_engine(args, &file, &args.controller, &record)?;
    println!("{}", result.render());
    for n in notes {
        eprintln!("note: {n}");
    }
    println!("trace: {}", record.display());
    finish_outputs(args, &result, &plot_path)?;

    if let Some(fio_bin) = fio_path {
        return vs_fio(args, &fio_bin, &file, &result);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the test region once with O_DIRECT before the measured runs (see
/// [`prep::warm_device`]); best effort: a failure is a warning.
fn warm_device(file: &Path, size: u64, quiet: bool) {
    if !quiet {
        eprintln!(
            "warming the device: reading {} once with O_DIRECT (--no-warmup skips) ...",
            fmt_bytes(size)
        );
    }
    let start = std::time::Instant::now();
    match prep::warm_device(file, size) {
        Ok(n) if !quiet => {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "  {} in {secs:.1} s ({:.0} MiB/s)",
                fmt_bytes(n),
                n as f64 / f64::from(1 << 20) / secs
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: warm-up skipped: {e}"),
    }
}

/// One auraio run of the workload with `controller`, trace to `record`.
fn run_engine(
    args: &Args,
    file: &Path,
    controller: &ControllerConfig,
    record: &Path,
) -> anyhow::Result<(RunResult, Vec<String>)> {
    let mut driver = EngineDriver::new(EngineOptions {
        rw: args.rw,
        bs: args.bs,
        direct: args.direct(),
        size: args.size,
        file: file.to_path_buf(),
        threads: args.threads,
        rings: args.rings,
        backend: args.backend,
        controller: controller.clone(),
        max_p99: args.max_p99,
        max_in_flight: args.max_in_flight,
        backlog: args.backlog,
        seed: args.seed,
        trace: Some(record.to_path_buf()),
        trace_io_every: 64,
    });
    let base = RunResult {
        controller: controller.to_string(),
        rw: Some(args.rw),
        bs: args.bs,
        direct: args.direct(),
        threads: args.threads,
        file: args.rw.uses_file().then(|| file.to_path_buf()),
        ..Default::default()
    };
    if !args.quiet {
        eprintln!(
            "running {} {} {} for {:.1} s, controller {}, {} thread(s) ...",
            args.rw.as_str(),
            fmt_bytes(args.bs),
            if args.direct() {
                "O_DIRECT"
            } else {
                "buffered"
            },
            args.runtime.as_secs_f64(),
            controller,
            args.threads
        );
    }
    runner::run(&mut driver, args.runtime, !args.quiet, base)
}

fn finish_outputs(args: &Args, result: &RunResult, plot_path: &Path) -> anyhow::Result<()> {
    if let Some(json) = &args.json {
        if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(json, result.to_json() + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        println!("json:  {}", json.display());
    }
    let title = format!(
        "auraio {} {} {} - controller {}",
        result.rw.map_or("", |m| m.as_str()),
        fmt_bytes(result.bs),
        if result.direct {
            "O_DIRECT"
        } else {
            "buffered"
        },
        result.controller
    );
    match plot::write_plot(
        plot_path,
        &title,
        &result.timeline,
        &result.limit_series,
        plot::Marks {
            converged: result.converge,
            settled: result.settled.map(|s| s.at),
        },
    ) {
        Ok(warning) => {
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            println!("plot:  {}", plot_path.display());
        }
        // A missing plot must not lose the measurement.
        Err(e) => eprintln!(
            "warning: could not write plot {}: {e:#}",
            plot_path.display()
        ),
    }
    Ok(())
}

/// `--vs-fio`: fio at each depth (and with `--also-fixed` auraio pinned
/// at fio's best depth) after auraio's `first` run; with `--rounds N`,
/// N such rounds (later ones alternate whether auraio or fio runs first;
/// fio's deepest depths run next to auraio, see [`fio::run_order`])
/// and the verdict on the medians.
fn vs_fio(args: &Args, fio_bin: &Path, file: &Path, first: &RunResult) -> anyhow::Result<ExitCode> {
    let mut rounds = Vec::new();
    let runs = fio_runs(args, fio_bin, file, true)?;
    finish_round(args, file, first, runs, 1, &mut rounds)?;
    for r in 2..=args.rounds {
        let record = paths::output_dir().join(format!("trace-round{r}.jsonl"));
        // Even rounds run fio first, so drift over the rounds does not
        // always favour the same side.
        let (auraio, runs) = if r % 2 == 0 {
            let runs = fio_runs(args, fio_bin, file, false)?;
            (run_engine(args, file, &args.controller, &record)?.0, runs)
        } else {
            let auraio = run_engine(args, file, &args.controller, &record)?.0;
            (auraio, fio_runs(args, fio_bin, file, true)?)
        };
        finish_round(args, file, &auraio, runs, r, &mut rounds)?;
    }
    if args.rounds > 1 {
        if let Some(s) = rounds::summarize(&rounds) {
            println!("{}", s.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// fio at each of `--fio-depths`, run in [`fio::run_order`] (the deepest
/// next to auraio's run, which came just before when `after_auraio`);
/// the results in `--fio-depths` order.
fn fio_runs(
    args: &Args,
    fio_bin: &Path,
    file: &Path,
    after_auraio: bool,
) -> anyhow::Result<Vec<fio::FioResult>> {
    let runtime = args.fio_runtime.unwrap_or(args.runtime);
    let depths = &args.fio_depths.0;
    let mut runs = Vec::with_capacity(depths.len());
    for i in fio::run_order(depths, after_auraio) {
        let depth = depths[i];
        if !args.quiet {
            eprintln!(
                "running fio at iodepth={depth} for {:.0} s ...",
                runtime.as_secs_f64()
            );
        }
        let job = fio::FioJob {
            file,
            rw: args.rw,
            bs: args.bs,
            direct: args.direct(),
            size: args.size,
            iodepth: depth,
            runtime,
            threads: args.threads,
        };
        runs.push((i, fio::run_fio(fio_bin, &fio::fio_args(&job), depth)?));
    }
    runs.sort_by_key(|&(i, _)| i);
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

/// Ends round `r`: with `--also-fixed` runs auraio pinned at fio's best
/// depth, prints the round's table, keeps the round.
fn finish_round(
    args: &Args,
    file: &Path,
    auraio: &RunResult,
    runs: Vec<fio::FioResult>,
    r: u32,
    rounds: &mut Vec<rounds::Round>,
) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    if args.also_fixed {
        if let Some(c) = fio::compare(auraio, &runs) {
            // auraio pinned at fio's best depth: separates the engine's own
            // cost from the controller's choice of depth.
            let depth = runs[c.best].iodepth;
            let controller: ControllerConfig = format!("fixed:{depth}")
                .parse()
                .map_err(|e| anyhow::anyhow!("fixed:{depth}: {e}"))?;
            let record = paths::output_dir().join("trace-fixed.jsonl");
            let (r, _) = run_engine(args, file, &controller, &record)?;
            extra.push(r);
        }
    }
    if args.rounds > 1 {
        println!("round {r} of {}:", args.rounds);
    }
    println!("{}", fio::render_table(auraio, &runs, &extra));
    rounds.push(rounds::Round::new(auraio, runs));
    Ok(())
}
