//! Trace-driven devices: latency distributions measured at known depths,
//! loaded from auraio's JSON-lines traces or from fio latency logs.
//!
//! An [`EmpiricalProfile`] holds one quantile table per depth level. A
//! simulated op arriving when `d` ops are in flight (itself included) draws a
//! uniform `u` and gets the `u`-quantile latency, interpolated linearly
//! between the two recorded depths around `d`. Below the smallest recorded
//! depth the smallest level is used; above the largest, its latency is scaled
//! by `d / d_max` (Little's law with throughput saturated at the largest
//! recorded depth).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::SimError;

/// Points per quantile table (resolution 1/4000 = 0.025 %).
const TABLE_POINTS: usize = 4001;
/// A depth bin of a JSON trace needs at least this many I/O records.
pub const MIN_SAMPLES_PER_LEVEL: usize = 64;

/// Latency distribution measured at one depth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepthLevel {
    /// Ops in flight when these latencies were measured (a bin's mean).
    pub depth: f64,
    /// Samples the level rests on.
    pub samples: usize,
    /// Mean latency, ns.
    pub mean_ns: f64,
    /// Latency quantiles `q = i / (TABLE_POINTS − 1)`, ns, ascending.
    #[serde(skip)]
    pub table: Vec<f64>,
}

impl DepthLevel {
    /// Build from raw latencies (ns). `None` if empty.
    pub fn from_samples(depth: f64, mut lat: Vec<u64>) -> Option<DepthLevel> {
        if lat.is_empty() {
            return None;
        }
        lat.sort_unstable();
        let n = lat.len();
        let mean_ns = lat.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let table = (0..TABLE_POINTS)
            .map(|i| {
                let pos = i as f64 / (TABLE_POINTS - 1) as f64 * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                let f = pos - lo as f64;
                lat[lo] as f64 * (1.0 - f) + lat[hi] as f64 * f
            })
            .collect();
        Some(DepthLevel {
            depth,
            samples: n,
            mean_ns,
            table,
        })
    }

    /// The `u`-quantile latency (u in [0, 1]), ns.
    pub fn quantile(&self, u: f64) -> f64 {
        if self.table.is_empty() {
            return self.mean_ns;
        }
        let pos = u.clamp(0.0, 1.0) * (self.table.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(self.table.len() - 1);
        let f = pos - lo as f64;
        self.table[lo] * (1.0 - f) + self.table[hi] * f
    }
}

/// Depth-conditioned latency distributions of one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EmpiricalProfile {
    /// Name for tables and plots.
    pub name: String,
    /// Levels in ascending depth, at least one.
    pub levels: Vec<DepthLevel>,
}

impl EmpiricalProfile {
    /// Build from levels (sorted here). Errors if there are none.
    pub fn new(name: impl Into<String>, mut levels: Vec<DepthLevel>) -> Result<Self, SimError> {
        let name = name.into();
        if levels.is_empty() {
            return Err(SimError::Config(format!(
                "{name}: no latency samples to build a device from"
            )));
        }
        levels.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        Ok(EmpiricalProfile { name, levels })
    }

    /// Latency (ns) of an op arriving at depth `depth` for uniform draw `u`.
    pub fn latency_ns(&self, depth: f64, u: f64) -> f64 {
        let levels = &self.levels;
        let (Some(first), Some(last)) = (levels.first(), levels.last()) else {
            return 0.0;
        };
        if depth <= first.depth {
            return first.quantile(u);
        }
        if depth >= last.depth {
            return last.quantile(u) * depth / last.depth.max(1e-9);
        }
        // levels.len() >= 2 here and first.depth < depth < last.depth.
        let i = levels.partition_point(|l| l.depth <= depth);
        let (a, b) = (&levels[i - 1], &levels[i]);
        let f = (depth - a.depth) / (b.depth - a.depth);
        a.quantile(u) * (1.0 - f) + b.quantile(u) * f
    }

    /// Highest `depth / mean latency` over the levels, IOPS.
    pub fn nominal_peak_iops(&self) -> f64 {
        self.levels
            .iter()
            .map(|l| l.depth / (l.mean_ns.max(1.0) * 1e-9))
            .fold(0.0, f64::max)
    }

    /// Load from an auraio JSON-lines trace (`auraio_controller::read_trace`):
    /// the `io` records, grouped by `in_flight_at_submit`; adjacent depths are
    /// merged until each bin has [`MIN_SAMPLES_PER_LEVEL`] records. Records
    /// with an error result are skipped.
    pub fn from_auraio_trace(path: &Path) -> Result<Self, SimError> {
        let trace = auraio_controller::read_trace(path)?;
        let mut by_depth: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for io in trace.ios.iter().filter(|io| io.result >= 0) {
            by_depth
                .entry(io.in_flight_at_submit.max(1))
                .or_default()
                .push(io.latency_ns);
        }
        let total: usize = by_depth.values().map(Vec::len).sum();
        if total < MIN_SAMPLES_PER_LEVEL {
            return Err(SimError::Empty {
                path: path.to_path_buf(),
                what: format!(
                    "the trace has {total} successful `io` records; the simulator needs at least \
                     {MIN_SAMPLES_PER_LEVEL} (record with trace_io_sample_every set)"
                ),
            });
        }
        // Bins of raw samples: (sum of depth × samples, samples).
        let mut bins: Vec<(f64, Vec<u64>)> = Vec::new();
        let mut acc: Vec<u64> = Vec::new();
        let mut depth_sum = 0.0;
        for (d, lats) in by_depth {
            depth_sum += f64::from(d) * lats.len() as f64;
            acc.extend(lats);
            if acc.len() >= MIN_SAMPLES_PER_LEVEL {
                bins.push((depth_sum, std::mem::take(&mut acc)));
                depth_sum = 0.0;
            }
        }
        if !acc.is_empty() {
            // Fold a short tail into the last full bin (there is one: total >= MIN).
            if let Some(last) = bins.last_mut() {
                last.0 += depth_sum;
                last.1.extend(acc);
            }
        }
        let levels = bins
            .into_iter()
            .filter_map(|(dsum, lats)| {
                let depth = dsum / lats.len().max(1) as f64;
                DepthLevel::from_samples(depth, lats)
            })
            .collect();
        let name = format!("trace:{}", file_name(path));
        EmpiricalProfile::new(name, levels)
    }

    /// Load fio latency logs, each recorded at a known iodepth (see
    /// [`parse_fio_lat_log`]); logs at the same depth are merged.
    pub fn from_fio_logs(
        name: impl Into<String>,
        logs: &[(PathBuf, u32)],
        unit: LatUnit,
    ) -> Result<Self, SimError> {
        let mut by_depth: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (path, depth) in logs {
            let text = fs::read_to_string(path).map_err(|e| SimError::Io {
                path: path.clone(),
                err: e,
            })?;
            let samples = parse_fio_lat_log(path, &text, unit)?;
            by_depth
                .entry((*depth).max(1))
                .or_default()
                .extend(samples.into_iter().map(|s| s.latency_ns));
        }
        let levels = by_depth
            .into_iter()
            .filter_map(|(d, l)| DepthLevel::from_samples(f64::from(d), l))
            .collect();
        EmpiricalProfile::new(name, levels)
    }

    /// Load every fio latency log in `dir`: files named `*_lat.N.log` (total
    /// latency; if there are none, `*_clat.N.log`). The iodepth of each comes
    /// from `depths` (file name → depth) or else from the file name
    /// (`qd64`, `iodepth64`, `depth64`, case-insensitive).
    pub fn from_fio_dir(
        dir: &Path,
        depths: &BTreeMap<String, u32>,
        unit: LatUnit,
    ) -> Result<Self, SimError> {
        let rd = fs::read_dir(dir).map_err(|e| SimError::Io {
            path: dir.to_path_buf(),
            err: e,
        })?;
        let mut lat = Vec::new();
        let mut clat = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SimError::Io {
                path: dir.to_path_buf(),
                err: e,
            })?;
            let path = entry.path();
            let name = file_name(&path);
            match fio_log_kind(&name) {
                Some(FioKind::Lat) => lat.push(path),
                Some(FioKind::Clat) => clat.push(path),
                None => {}
            }
        }
        let mut files = if lat.is_empty() { clat } else { lat };
        files.sort();
        if files.is_empty() {
            return Err(SimError::Config(format!(
                "{}: no fio latency logs (*_lat.N.log or *_clat.N.log) found",
                dir.display()
            )));
        }
        let mut logs = Vec::new();
        for f in files {
            let name = file_name(&f);
            let depth = match depths.get(&name) {
                Some(&d) => d,
                None => depth_from_name(&name).ok_or_else(|| {
                    SimError::Config(format!(
                        "{}: cannot tell this log's iodepth: put `qd<N>` in the file name \
                         (e.g. randread_qd64_lat.1.log) or pass --fio-depth {name}=<N>",
                        f.display()
                    ))
                })?,
            };
            logs.push((f, depth));
        }
        EmpiricalProfile::from_fio_logs(format!("fio:{}", file_name(dir)), &logs, unit)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

enum FioKind {
    Lat,
    Clat,
}

fn fio_log_kind(name: &str) -> Option<FioKind> {
    // NAME_lat.N.log / NAME_clat.N.log (N = job index), or without ".N".
    let stem = name.strip_suffix(".log")?;
    let stem = match stem.rsplit_once('.') {
        Some((s, n)) if n.chars().all(|c| c.is_ascii_digit()) => s,
        _ => stem,
    };
    if stem.ends_with("_clat") {
        Some(FioKind::Clat)
    } else if stem.ends_with("_slat") {
        None
    } else if stem.ends_with("_lat") {
        Some(FioKind::Lat)
    } else {
        None
    }
}

/// The iodepth written in a file name: `qd64`, `iodepth64`, `iodepth=64`,
/// `depth64` (case-insensitive).
pub fn depth_from_name(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    for key in ["iodepth", "depth", "qd"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let start = from + pos + key.len();
            let rest = lower[start..].trim_start_matches(['=', '-', '_']);
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(d) = digits.parse::<u32>() {
                if d > 0 {
                    return Some(d);
                }
            }
            from = start;
        }
    }
    None
}

/// Unit of the latency column of a fio log. fio 3.x writes nanoseconds;
/// fio 2.x wrote microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LatUnit {
    /// Nanoseconds (fio ≥ 3.0).
    Ns,
    /// Microseconds (fio 2.x).
    Us,
}

impl std::str::FromStr for LatUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ns" => Ok(LatUnit::Ns),
            "us" => Ok(LatUnit::Us),
            other => Err(format!("unknown latency unit `{other}` (ns or us)")),
        }
    }
}

/// One line of a fio latency log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FioSample {
    /// Time since the job started, ms.
    pub time_ms: u64,
    /// Latency, ns.
    pub latency_ns: u64,
    /// 0 read, 1 write, 2 trim.
    pub direction: u8,
    /// Block size, bytes.
    pub bs: u64,
    /// Offset, bytes (5- and 6-column variants).
    pub offset: Option<u64>,
    /// Command priority (6-column variant).
    pub prio: Option<u64>,
}

/// Parse the text of a fio `--write_lat_log` log: lines of
/// `time_ms, latency, direction, bs[, offset[, prio]]` (4 to 6
/// comma-separated integers). Blank lines are skipped. `path` is only used in
/// errors, which name the file and the 1-based line.
pub fn parse_fio_lat_log(
    path: &Path,
    text: &str,
    unit: LatUnit,
) -> Result<Vec<FioSample>, SimError> {
    let mut out = Vec::new();
    let mut last_line = 0;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        last_line = lineno;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |msg: String| SimError::Parse {
            path: path.to_path_buf(),
            line: lineno,
            msg,
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if !(4..=6).contains(&cols.len()) {
            return Err(err(format!(
                "expected 4 to 6 comma-separated columns (time, latency, direction, bs[, offset[, prio]]), found {}",
                cols.len()
            )));
        }
        let mut vals = [0u64; 6];
        for (j, c) in cols.iter().enumerate() {
            vals[j] = c.parse::<u64>().map_err(|_| {
                err(format!(
                    "column {} is not a non-negative integer: `{c}`",
                    j + 1
                ))
            })?;
        }
        if vals[2] > 2 {
            return Err(err(format!(
                "direction (column 3) must be 0 (read), 1 (write) or 2 (trim), found {}",
                vals[2]
            )));
        }
        let latency_ns = match unit {
            LatUnit::Ns => vals[1],
            LatUnit::Us => vals[1].saturating_mul(1000),
        };
        out.push(FioSample {
            time_ms: vals[0],
            latency_ns,
            direction: vals[2] as u8,
            bs: vals[3],
            offset: (cols.len() >= 5).then_some(vals[4]),
            prio: (cols.len() >= 6).then_some(vals[5]),
        });
    }
    if out.is_empty() {
        return Err(SimError::Parse {
            path: path.to_path_buf(),
            line: last_line.max(1),
            msg: "empty log: no latency samples".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("x_qd8_lat.1.log")
    }

    #[test]
    fn parses_all_column_variants() {
        let text = "1, 80000, 0, 4096\n2, 90000, 1, 8192, 4096\n\n3, 100000, 0, 4096, 0, 1\n";
        let s = parse_fio_lat_log(&p(), text, LatUnit::Ns).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].latency_ns, 80_000);
        assert_eq!(s[0].offset, None);
        assert_eq!(s[1].direction, 1);
        assert_eq!(s[1].bs, 8192);
        assert_eq!(s[1].offset, Some(4096));
        assert_eq!(s[1].prio, None);
        assert_eq!(s[2].prio, Some(1));
        let us = parse_fio_lat_log(&p(), "5, 80, 0, 4096\n", LatUnit::Us).unwrap();
        assert_eq!(us[0].latency_ns, 80_000);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("1, 2, 0, 4096\n1, 2, 0\n", 2, "columns"),
            ("1, 2, 0, 4096\n\n1, abc, 0, 4096\n", 3, "column 2"),
            ("1, 2, 7, 4096\n", 1, "direction"),
            ("1, 2, 0, 4096, 1, 2, 3\n", 1, "columns"),
            ("1, -5, 0, 4096\n", 1, "column 2"),
        ];
        for (text, line, what) in cases {
            let e = parse_fio_lat_log(&p(), text, LatUnit::Ns).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("x_qd8_lat.1.log:{line}:")),
                "{msg} should name line {line}"
            );
            assert!(msg.contains(what), "{msg} should mention {what}");
        }
        let e = parse_fio_lat_log(&p(), "\n \n", LatUnit::Ns).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = parse_fio_lat_log(&p(), "", LatUnit::Ns).unwrap_err();
        assert!(e.to_string().contains("x_qd8_lat.1.log:1:"), "{e}");
    }

    #[test]
    fn depth_from_file_names() {
        assert_eq!(depth_from_name("randread_qd64_lat.1.log"), Some(64));
        assert_eq!(depth_from_name("job-iodepth=32_clat.2.log"), Some(32));
        assert_eq!(depth_from_name("QD1_lat.log"), Some(1));
        assert_eq!(depth_from_name("depth_128_lat.1.log"), Some(128));
        assert_eq!(depth_from_name("randread_lat.1.log"), None);
        assert_eq!(depth_from_name("qd0_lat.1.log"), None);
    }

    #[test]
    fn log_kinds() {
        assert!(matches!(fio_log_kind("a_lat.1.log"), Some(FioKind::Lat)));
        assert!(matches!(fio_log_kind("a_clat.12.log"), Some(FioKind::Clat)));
        assert!(matches!(fio_log_kind("a_lat.log"), Some(FioKind::Lat)));
        assert!(fio_log_kind("a_slat.1.log").is_none());
        assert!(fio_log_kind("a_bw.1.log").is_none());
        assert!(fio_log_kind("notes.txt").is_none());
    }

    #[test]
    fn interpolates_between_depths_and_extrapolates() {
        let a = DepthLevel::from_samples(1.0, vec![100; 10]).unwrap();
        let b = DepthLevel::from_samples(9.0, vec![900; 10]).unwrap();
        let prof = EmpiricalProfile::new("t", vec![b, a]).unwrap();
        assert_eq!(prof.levels[0].depth, 1.0);
        assert!((prof.latency_ns(0.5, 0.5) - 100.0).abs() < 1e-9);
        assert!((prof.latency_ns(5.0, 0.5) - 500.0).abs() < 1e-9);
        assert!((prof.latency_ns(18.0, 0.5) - 1800.0).abs() < 1e-9);
        // Peak: 9 in flight at 900 ns = 10M IOPS.
        assert!((prof.nominal_peak_iops() - 1e7).abs() < 1.0);
    }

    #[test]
    fn quantile_table_matches_samples() {
        let l = DepthLevel::from_samples(4.0, (1..=1000).collect()).unwrap();
        assert_eq!(l.samples, 1000);
        assert!((l.quantile(0.0) - 1.0).abs() < 1e-9);
        assert!((l.quantile(1.0) - 1000.0).abs() < 1e-9);
        assert!((l.quantile(0.5) - 500.5).abs() < 0.5);
        assert!((l.mean_ns - 500.5).abs() < 1e-9);
        assert!(DepthLevel::from_samples(1.0, vec![]).is_none());
    }

    #[test]
    fn fio_dir_loads_and_reports_missing_depth() {
        let dir = tempfile::tempdir().unwrap();
        let mut body1 = String::new();
        let mut body64 = String::new();
        for i in 0..200u64 {
            body1.push_str(&format!(
                "{i}, {}, 0, 4096, {}\n",
                79_000 + i * 10,
                i * 4096
            ));
            body64.push_str(&format!(
                "{i}, {}, 0, 4096, {}, 0\n",
                490_000 + i * 100,
                i * 4096
            ));
        }
        fs::write(dir.path().join("rr_qd1_lat.1.log"), &body1).unwrap();
        fs::write(dir.path().join("rr_qd64_lat.1.log"), &body64).unwrap();
        fs::write(dir.path().join("rr_qd64_slat.1.log"), "garbage").unwrap();
        fs::write(dir.path().join("rr_qd64_bw.1.log"), "garbage").unwrap();
        let prof =
            EmpiricalProfile::from_fio_dir(dir.path(), &BTreeMap::new(), LatUnit::Ns).unwrap();
        assert_eq!(prof.levels.len(), 2);
        assert_eq!(prof.levels[0].depth, 1.0);
        assert_eq!(prof.levels[1].depth, 64.0);
        assert_eq!(prof.levels[1].samples, 200);
        // An unnamed depth is an error naming the file, unless mapped.
        fs::write(dir.path().join("mystery_lat.1.log"), &body1).unwrap();
        let e =
            EmpiricalProfile::from_fio_dir(dir.path(), &BTreeMap::new(), LatUnit::Ns).unwrap_err();
        assert!(e.to_string().contains("mystery_lat.1.log"), "{e}");
        let mut map = BTreeMap::new();
        map.insert("mystery_lat.1.log".to_string(), 16);
        let prof = EmpiricalProfile::from_fio_dir(dir.path(), &map, LatUnit::Ns).unwrap();
        assert_eq!(prof.levels.len(), 3);
        // A malformed log names its line.
        fs::write(
            dir.path().join("bad_qd4_lat.1.log"),
            "1, 2, 0, 4096\noops\n",
        )
        .unwrap();
        let e = EmpiricalProfile::from_fio_dir(dir.path(), &map, LatUnit::Ns).unwrap_err();
        assert!(e.to_string().contains("bad_qd4_lat.1.log:2:"), "{e}");
    }
}
