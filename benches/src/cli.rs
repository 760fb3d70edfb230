//! Command line: fio-like options with human units (`4k`, `1GiB`, `500ms`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The I/O pattern of the workload (fio's `--rw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RwMode {
    /// Random reads.
    #[value(name = "randread")]
    RandRead,
    /// Random writes.
    #[value(name = "randwrite")]
    RandWrite,
    /// Sequential reads.
    #[value(name = "read")]
    Read,
    /// Sequential writes.
    #[value(name = "write")]
    Write,
    /// Random reads and writes, half each.
    #[value(name = "randrw")]
    RandRw,
    /// No-op requests: measures the library's own per-op cost.
    #[value(name = "nop")]
    Nop,
}

impl RwMode {
    /// fio's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            RwMode::RandRead => "randread",
            RwMode::RandWrite => "randwrite",
            RwMode::Read => "read",
            RwMode::Write => "write",
            RwMode::RandRw => "randrw",
            RwMode::Nop => "nop",
        }
    }

    /// True when offsets are drawn at random.
    pub fn is_random(self) -> bool {
        matches!(self, RwMode::RandRead | RwMode::RandWrite | RwMode::RandRw)
    }

    /// True when the workload writes to the file.
    pub fn writes(self) -> bool {
        matches!(self, RwMode::RandWrite | RwMode::Write | RwMode::RandRw)
    }

    /// True when the workload touches the file at all.
    pub fn uses_file(self) -> bool {
        self != RwMode::Nop
    }
}

/// `auraio-bench`: a fio-style workload runner for the auraio engine.
///
/// With no arguments it runs the main job: random 4 KiB O_DIRECT reads on a
/// 1 GiB test file for 10 s under the AIMD controller, shows live progress,
/// prints a fio-style summary and writes a trace and a convergence plot under
/// `target/auraio-bench/`.
#[derive(Parser, Debug, Clone)]
#[command(name = "auraio-bench", version, about, long_about = None)]
pub struct Args {
    /// Test file (created with real data when missing or too small).
    /// Default: target/auraio-bench/testfile under the workspace root.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Size of the test region, e.g. 256MiB, 1GiB (k/M/G are powers of 1024).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes, value_name = "SIZE")]
    pub size: u64,

    /// I/O pattern.
    #[arg(long, value_enum, default_value_t = RwMode::RandRead, value_name = "MODE")]
    pub rw: RwMode,

    /// Block size of every request, e.g. 4k, 64k, 1MiB.
    #[arg(long, default_value = "4k", value_parser = parse_block_size, value_name = "SIZE")]
    pub bs: u64,

    /// Open the file with O_DIRECT (the default).
    #[arg(long, overrides_with = "buffered")]
    pub direct: bool,

    /// Use the page cache instead of O_DIRECT.
    #[arg(long, overrides_with = "direct")]
    pub buffered: bool,

    /// How long to run, e.g. 500ms, 10s, 1m (a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "TIME")]
    pub runtime: Duration,

    /// Submitting threads, each keeping the engine busy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// Controller: aimd, fixed:N, fixed:N:BATCH, replay:TRACE.jsonl, ...
    #[arg(long, default_value = "aimd", value_parser = parse_controller, value_name = "SPEC")]
    pub controller: auraio_controller::ControllerConfig,

    /// P99 latency ceiling for the controller, e.g. 2ms.
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub max_p99: Option<Duration>,

    /// I/O backend: auto (io_uring, else the blocking thread pool),
    /// io_uring, or blocking.
    #[arg(long, default_value = "auto", value_parser = parse_backend, value_name = "NAME")]
    pub backend: auraio_engine::BackendChoice,

    /// Rings in the engine (default: one per submitting thread).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub rings: Option<u32>,

    /// Upper bound on in-flight ops per ring for the controller.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight: Option<u32>,

    /// Ops each thread keeps waiting in the engine's backlog beyond the
    /// current limit (the demand the controller sees).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub backlog: u32,

    /// Trace file (JSON lines). Default: target/auraio-bench/trace.jsonl.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,

    /// Convergence plot, PNG or SVG by extension.
    /// Default: target/auraio-bench/convergence.png.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,

    /// Write the result as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// No progress line (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,

    /// Skip reading the test region once with O_DIRECT before an O_DIRECT
    /// run (a virtual disk can be several times slower for its first
    /// seconds after idling; see docs/benchmarks.md).
    #[arg(long)]
    pub no_warmup: bool,

    /// Also run fio (io_uring engine) at several iodepths on the same file
    /// and print both side by side.
    #[arg(long)]
    pub vs_fio: bool,

    /// With --vs-fio: also run auraio with a fixed limit at fio's best
    /// iodepth (separates the engine's cost from the controller's choice).
    #[arg(long, requires = "vs_fio")]
    pub also_fixed: bool,

    /// With --vs-fio: repeat the comparison this many times (auraio and fio
    /// alternate which runs first; fio's deepest depths always run next to
    /// auraio) and judge it on the medians as well.
    #[arg(long, default_value_t = 1, requires = "vs_fio", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,

    /// fio iodepths for --vs-fio, comma separated.
    #[arg(long, default_value = "16,32,64,128", value_parser = parse_depths, value_name = "LIST")]
    pub fio_depths: Depths,

    /// fio runtime per depth for --vs-fio (default: --runtime).
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub fio_runtime: Option<Duration>,

    /// Seed for the offset generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Args {
    /// Whether O_DIRECT is used (default yes; `--buffered` turns it off).
    pub fn direct(&self) -> bool {
        !self.buffered
    }

    /// Checks combinations that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.rw.uses_file() {
            if self.bs > self.size {
                return Err(format!(
                    "--bs {} is larger than --size {}",
                    fmt_bytes(self.bs),
                    fmt_bytes(self.size)
                ));
            }
            if self.direct() && !self.bs.is_multiple_of(512) {
                return Err(format!(
                    "--bs {} is not a multiple of 512 bytes, which O_DIRECT needs (use --buffered)",
                    self.bs
                ));
            }
        }
        if self.runtime.is_zero() {
            return Err("--runtime must be more than 0".into());
        }
        if self.vs_fio && !self.rw.uses_file() {
            return Err("--vs-fio needs a file workload, not --rw nop".into());
        }
        Ok(())
    }
}

/// A list of fio iodepths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depths(pub Vec<u32>);

const SIZE_UNITS: parse_size::Config = parse_size::Config::new().with_binary();

/// Parses a byte size with binary units: `4k` = 4096, `1GiB` = 2^30, `512` = 512.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let v = SIZE_UNITS
        .parse_size(s.trim())
        .map_err(|e| format!("invalid size `{s}`: {e} (examples: 4k, 64KiB, 1GiB)"))?;
    if v == 0 {
        return Err(format!("invalid size `{s}`: must be more than 0"));
    }
    Ok(v)
}

/// Parses a block size: a size between 1 byte and 64 MiB.
pub fn parse_block_size(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if v > 64 << 20 {
        return Err(format!("block size `{s}` is too large (at most 64MiB)"));
    }
    Ok(v)
}

/// Parses a duration: `500ms`, `10s`, `1m 30s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration `{s}`: {e} (examples: 500ms, 10s, 2m)"))
}

/// Parses a controller spec via `ControllerConfig`'s `FromStr`.
pub fn parse_controller(s: &str) -> Result<auraio_controller::ControllerConfig, String> {
    s.parse::<auraio_controller::ControllerConfig>()
        .map_err(|e| format!("invalid controller `{s}`: {e}"))
}

/// Parses a backend name via `BackendChoice`'s `FromStr`.
pub fn parse_backend(s: &str) -> Result<auraio_engine::BackendChoice, String> {
    s.parse::<auraio_engine::BackendChoice>()
        .map_err(|e| format!("invalid backend `{s}`: {e} (auto, io_uring, blocking)"))
}

/// Parses a comma separated list of iodepths (each 1..=4096).
pub fn parse_depths(s: &str) -> Result<Depths, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: u32 = part
            .parse()
            .map_err(|_| format!("invalid iodepth `{part}` in `{s}`"))?;
        if d == 0 || d > 4096 {
            return Err(format!("iodepth {d} out of range 1..=4096"));
        }
        out.push(d);
    }
    if out.is_empty() {
        return Err("empty iodepth list".into());
    }
    Ok(Depths(out))
}

/// Formats a byte count with a binary unit: `4 KiB`, `1.00 GiB`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let mut v = vec!["auraio-bench"];
        v.extend_from_slice(args);
        Args::try_parse_from(v)
    }

    #[test]
    fn defaults_are_the_main_job() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.rw, RwMode::RandRead);
        assert_eq!(a.bs, 4096);
        assert_eq!(a.size, 1 << 30);
        assert!(a.direct());
        assert_eq!(a.runtime, Duration::from_secs(10));
        assert_eq!(a.threads, 1);
        assert_eq!(a.controller.to_string(), "aimd");
        assert!(a.file.is_none() && a.json.is_none() && !a.quiet && !a.vs_fio);
        assert!(!a.no_warmup, "O_DIRECT runs warm the device by default");
        assert_eq!(a.fio_depths, Depths(vec![16, 32, 64, 128]));
        a.validate().unwrap();
    }

    #[test]
    fn human_units() {
        let a = parse(&[
            "--bs",
            "64k",
            "--size",
            "256MiB",
            "--runtime",
            "500ms",
            "--max-p99",
            "2ms",
        ])
        .unwrap();
        assert_eq!(a.bs, 64 * 1024);
        assert_eq!(a.size, 256 << 20);
        assert_eq!(a.runtime, Duration::from_millis(500));
        assert_eq!(a.max_p99, Some(Duration::from_millis(2)));
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn modes_and_flags() {
        for (s, m) in [
            ("randread", RwMode::RandRead),
            ("randwrite", RwMode::RandWrite),
            ("read", RwMode::Read),
            ("write", RwMode::Write),
            ("randrw", RwMode::RandRw),
            ("nop", RwMode::Nop),
        ] {
            let a = parse(&["--rw", s]).unwrap();
            assert_eq!(a.rw, m);
            assert_eq!(a.rw.as_str(), s);
        }
        assert!(!parse(&["--buffered"]).unwrap().direct());
        assert!(parse(&["--buffered", "--direct"]).unwrap().direct());
        assert!(!parse(&["--direct", "--buffered"]).unwrap().direct());
        let a = parse(&["--controller", "fixed:64", "--threads", "4", "--quiet"]).unwrap();
        assert!(a.controller.to_string().starts_with("fixed:64"));
        assert_eq!(a.threads, 4);
        assert!(a.quiet);
        assert!(parse(&["--no-warmup"]).unwrap().no_warmup);
        assert!(parse(&["--also-fixed"]).is_err(), "needs --vs-fio");
        assert_eq!(
            parse(&["--backend", "blocking"])
                .unwrap()
                .backend
                .to_string(),
            "blocking"
        );
        assert_eq!(parse(&[]).unwrap().backend.to_string(), "auto");
        assert!(parse(&["--vs-fio", "--also-fixed"]).unwrap().also_fixed);
        assert_eq!(parse(&[]).unwrap().rounds, 1);
        assert_eq!(parse(&["--vs-fio", "--rounds", "5"]).unwrap().rounds, 5);
        assert!(parse(&["--rounds", "5"]).is_err(), "needs --vs-fio");
        assert!(parse(&["--vs-fio", "--rounds", "0"]).is_err());
        let a = parse(&["--fio-depths", "1, 8,256"]).unwrap();
        assert_eq!(a.fio_depths, Depths(vec![1, 8, 256]));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for bad in [
            &["--bs", "four"][..],
            &["--bs", "0"],
            &["--bs", "1GiB"],
            &["--size", "-5"],
            &["--runtime", "soon"],
            &["--rw", "sideways"],
            &["--threads", "0"],
            &["--controller", "bogus"],
            &["--fio-depths", "16,x"],
            &["--fio-depths", "0"],
            &["--backend", "carrier-pigeon"],
            &["--max-p99", "1 fortnight"],
            &["--no-such-flag"],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?} should fail"));
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
        let e = parse(&["--bs", "four"]).unwrap_err().to_string();
        assert!(e.contains("four"), "{e}");
        // Valid alone, invalid together.
        let a = parse(&["--bs", "1000"]).unwrap();
        assert!(a.validate().unwrap_err().contains("512"));
        assert!(parse(&["--bs", "1000", "--buffered"])
            .unwrap()
            .validate()
            .is_ok());
        let a = parse(&["--bs", "2MiB", "--size", "1MiB"]).unwrap();
        assert!(a.validate().unwrap_err().contains("larger"));
        let a = parse(&["--rw", "nop", "--vs-fio"]).unwrap();
        assert!(a.validate().is_err());
        let a = parse(&["--runtime", "0s"]).unwrap();
        assert!(a.validate().is_err());
    }

    #[test]
    fn byte_formatting() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(4096), "4 KiB");
        assert_eq!(fmt_bytes(1 << 30), "1 GiB");
        assert_eq!(fmt_bytes(1536 * 1024), "1.50 MiB");
    }
}
