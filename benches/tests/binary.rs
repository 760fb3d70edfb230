//! The `auraio-bench` binary end to end: short runs, no fio needed.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_auraio-bench"))
}

/// A run's stdout once it succeeded; `None` (the test skips) where the
/// engine cannot be built here (no io_uring); any other failure fails the
/// test.
fn succeeded(out: &std::process::Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("building the engine") {
        eprintln!("skipping: io_uring unavailable here: {stderr}");
        return None;
    }
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    Some(stdout)
}

#[test]
fn nop_run_writes_summary_json_trace_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let trace = dir.path().join("trace.jsonl");
    let plot = dir.path().join("plot.svg");
    let out = bench()
        .current_dir(dir.path())
        .args([
            "--rw",
            "nop",
            "--runtime",
            "300ms",
            "--quiet",
            "--controller",
            "fixed:16",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--record")
        .arg(&trace)
        .arg("--plot")
        .arg(&plot)
        .output()
        .unwrap();
    let Some(stdout) = succeeded(&out) else {
        return;
    };
    assert!(stdout.contains("IOPS="), "{stdout}");
    assert!(stdout.contains("final in-flight limit=16"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["ops"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["final_in_flight_limit"], 16);
    assert!(v["controller"].as_str().unwrap().starts_with("fixed:16"));
    assert!(v["lat_ns"]["p99"].is_u64());
    assert!(std::fs::read_to_string(&trace)
        .unwrap()
        .contains("auraio-trace"));
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
}

#[test]
fn vs_fio_without_fio_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .current_dir(dir.path())
        .env("PATH", dir.path()) // no fio here
        .args(["--vs-fio", "--size", "1MiB", "--runtime", "100ms"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fio not found: install it with  apt-get install fio"),
        "{stderr}"
    );
}

/// A stand-in `fio` (a shell script first on `PATH`) that prints one job's
/// JSON with IOPS = 1000 × iodepth, so iodepth 64 is its best.
fn fake_fio(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = r#"#!/bin/sh
d=1
for a in "$@"; do case "$a" in --iodepth=*) d="${a#--iodepth=}";; esac; done
echo "fio: a warning line before the JSON"
cat <<JSON
{"jobs":[{"read":{"iops":$((d * 1000)),"bw_bytes":$((d * 4096000)),"total_ios":$((d * 1000)),
 "clat_ns":{"min":1000,"max":9000000,"mean":500000.0,"N":$((d * 1000)),
  "percentile":{"50.000000":400000,"99.000000":$((d * 50000)),"99.900000":9000000}}}}]}
JSON
"#;
    let path = dir.join("fio");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn vs_fio_rounds_print_each_round_and_the_medians() {
    let dir = tempfile::tempdir().unwrap();
    fake_fio(dir.path());
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = bench()
        .current_dir(dir.path())
        .env("PATH", path)
        .args([
            "--vs-fio",
            "--rounds",
            "2",
            "--fio-depths",
            "16,64",
            "--buffered",
            "--size",
            "1MiB",
            "--runtime",
            "200ms",
            "--quiet",
            "--controller",
            "fixed:4",
        ])
        .arg("--file")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let Some(stdout) = succeeded(&out) else {
        return;
    };
    assert!(stdout.contains("round 1 of 2:"), "{stdout}");
    assert!(stdout.contains("round 2 of 2:"), "{stdout}");
    assert!(stdout.contains("medians over 2 rounds"), "{stdout}");
    // The fake fio's best depth is 64 at 64k IOPS, in every round.
    assert!(stdout.contains("fio io_uring iodepth=64 *"), "{stdout}");
    assert!(stdout.contains("64.0k"), "{stdout}");
    assert!(
        stdout.contains("on medians, auraio vs fio's best (iodepth=64, *)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("target >= 90 %"),
        "buffered target: {stdout}"
    );
    assert_eq!(
        stdout.matches("auraio vs fio's best").count(),
        3,
        "{stdout}"
    );
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let out = bench().args(["--bs", "1000"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("512"), "{stderr}");
    let out = bench().args(["--runtime", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2)); // clap's usage error
}
