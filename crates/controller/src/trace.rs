//! Trace files: JSON lines, one serde record per line, tagged by `"type"`.
//!
//! ```text
//! {"type":"header","format":"auraio-trace","version":1,"controller":"aimd","rings":1,...}
//! {"type":"tick","ring":0,"sample":{...},"decision":{...},"state":{...}}
//! {"type":"io","ring":0,"t_submit_ns":...,"latency_ns":...,"op":"read","len":4096,...}
//! ```
//! The header comes first; tick and io records follow in any order. Blank
//! lines are ignored. The engine writes traces ([`TraceWriter`]); the
//! simulator and [`crate::TraceReplay`] read them ([`read_trace`]).

use crate::sample::{ControllerState, Decision, Sample};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The `format` string of every trace header.
pub const TRACE_FORMAT: &str = "auraio-trace";
/// The trace format version this crate writes and reads.
pub const TRACE_VERSION: u32 = 1;

/// One line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceRecord {
    /// First line: what produced the trace.
    Header(TraceHeader),
    /// One controller tick of one ring.
    Tick(TickRecord),
    /// One (sampled) I/O.
    Io(IoRecord),
}

/// Borrowing twin of [`TraceRecord`] for writing without clones.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TraceRecordRef<'a> {
    Header(&'a TraceHeader),
    Tick(&'a TickRecord),
    Io(&'a IoRecord),
}

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always [`TRACE_FORMAT`].
    pub format: String,
    /// Always [`TRACE_VERSION`] for traces this crate writes.
    pub version: u32,
    /// The controller that ran (its short form, e.g. `"aimd"`).
    pub controller: String,
    /// Number of rings.
    pub rings: u32,
    /// Slots per ring.
    pub ring_capacity: u32,
    /// Tick period in milliseconds.
    pub tick_ms: u64,
    /// Free text (device, workload, …).
    #[serde(default)]
    pub note: Option<String>,
}

impl TraceHeader {
    /// A header with the current format and version.
    pub fn new(
        controller: impl Into<String>,
        rings: u32,
        ring_capacity: u32,
        tick_ms: u64,
    ) -> Self {
        TraceHeader {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            controller: controller.into(),
            rings,
            ring_capacity,
            tick_ms,
            note: None,
        }
    }
}

/// One controller tick: what it saw, what it decided, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    /// Ring index.
    pub ring: u32,
    /// The sample given to the controller.
    pub sample: Sample,
    /// The decision it returned.
    pub decision: Decision,
    /// Its state after the tick.
    pub state: ControllerState,
}

/// One I/O (traces usually record a sampled subset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoRecord {
    /// Ring index.
    pub ring: u32,
    /// Submission time since the start of the run (ns).
    pub t_submit_ns: u64,
    /// Submit-to-completion latency (ns).
    pub latency_ns: u64,
    /// Operation name (`"read"`, `"write"`, `"fsync"`, …).
    pub op: String,
    /// Requested length in bytes.
    pub len: u64,
    /// Ops in flight on the ring when this one was submitted (including it).
    pub in_flight_at_submit: u32,
    /// The CQE result (bytes, or `-errno`).
    pub result: i64,
}

/// Writes a trace, one JSON line per record. Wrap slow writers in a
/// [`BufWriter`] (as [`TraceWriter::create`] does).
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    w: W,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `w` by writing `header`.
    pub fn new(w: W, header: TraceHeader) -> io::Result<Self> {
        let mut t = TraceWriter { w };
        t.line(&TraceRecordRef::Header(&header))?;
        Ok(t)
    }

    fn line(&mut self, rec: &TraceRecordRef<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, rec).map_err(io::Error::other)?;
        self.w.write_all(b"\n")
    }

    /// Appends a tick record.
    pub fn tick(&mut self, rec: &TickRecord) -> io::Result<()> {
        self.line(&TraceRecordRef::Tick(rec))
    }

    /// Appends an I/O record.
    pub fn io(&mut self, rec: &IoRecord) -> io::Result<()> {
        self.line(&TraceRecordRef::Io(rec))
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }
}

impl TraceWriter<BufWriter<File>> {
    /// Creates (truncates) `path` and writes `header` to it.
    pub fn create(path: &Path, header: TraceHeader) -> io::Result<Self> {
        let f = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create trace {}: {e}", path.display()),
            )
        })?;
        TraceWriter::new(BufWriter::new(f), header)
    }
}

/// A whole trace in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The header line.
    pub header: TraceHeader,
    /// Tick records, in file order.
    pub ticks: Vec<TickRecord>,
    /// I/O records, in file order.
    pub ios: Vec<IoRecord>,
}

impl Default for TraceHeader {
    fn default() -> Self {
        TraceHeader::new("unknown", 1, 0, 10)
    }
}

/// Why a trace could not be read. Every variant names the file; line numbers
/// are 1-based.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {}: {source}", path.display())]
    Io {
        /// The trace file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has no records at all.
    #[error("trace {} is empty (expected an auraio-trace header line)", path.display())]
    Empty {
        /// The trace file.
        path: PathBuf,
    },
    /// A line is not a valid record, or the records are out of place.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The trace file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl From<TraceError> for io::Error {
    fn from(e: TraceError) -> io::Error {
        let kind = match &e {
            TraceError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Reads a whole trace file. Errors name the file and the 1-based line.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let f = File::open(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_trace(BufReader::new(f), path)
}

/// Reads a trace from any reader; `path` is only used in error messages.
pub fn parse_trace<R: BufRead>(reader: R, path: &Path) -> Result<Trace, TraceError> {
    let malformed = |line: usize, message: String| TraceError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut header: Option<TraceHeader> = None;
    let mut ticks = Vec::new();
    let mut ios = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                malformed(n, format!("not UTF-8 text: {e}"))
            } else {
                TraceError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let rec: TraceRecord = serde_json::from_str(text)
            .map_err(|e| malformed(n, format!("not a trace record: {e}")))?;
        match rec {
            TraceRecord::Header(h) => {
                if header.is_some() {
                    return Err(malformed(n, "second header line".into()));
                }
                if h.format != TRACE_FORMAT {
                    return Err(malformed(
                        n,
                        format!("format is {:?}, expected {TRACE_FORMAT:?}", h.format),
                    ));
                }
                if h.version != TRACE_VERSION {
                    return Err(malformed(
                        n,
                        format!(
                            "unsupported trace version {} (this build reads version {TRACE_VERSION})",
                            h.version
                        ),
                    ));
                }
                header = Some(h);
            }
            TraceRecord::Tick(t) => {
                if header.is_none() {
                    return Err(malformed(n, "tick record before the header line".into()));
                }
                ticks.push(t);
            }
            TraceRecord::Io(r) => {
                if header.is_none() {
                    return Err(malformed(n, "io record before the header line".into()));
                }
                ios.push(r);
            }
        }
    }
    let header = header.ok_or_else(|| TraceError::Empty {
        path: path.to_path_buf(),
    })?;
    Ok(Trace { header, ticks, ios })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tick(ring: u32, ms: u64, limit: u32) -> TickRecord {
        let mut sample = Sample {
            now: Duration::from_millis(ms),
            interval: Duration::from_millis(10),
            completions: 2,
            ..Sample::default()
        };
        sample.latency.record(90_000);
        sample.latency.record(110_000);
        TickRecord {
            ring,
            sample,
            decision: Decision {
                in_flight_limit: limit,
                batch_threshold: 8,
            },
            state: ControllerState {
                name: "aimd".into(),
                phase: "probing".into(),
                reason: "+1".into(),
            },
        }
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut h = TraceHeader::new("aimd", 2, 256, 10);
        h.note = Some("test".into());
        let mut w = TraceWriter::create(&path, h.clone()).unwrap();
        let t0 = tick(0, 10, 17);
        let t1 = tick(1, 10, 18);
        let io = IoRecord {
            ring: 0,
            t_submit_ns: 5,
            latency_ns: 80_000,
            op: "read".into(),
            len: 4096,
            in_flight_at_submit: 3,
            result: 4096,
        };
        w.tick(&t0).unwrap();
        w.io(&io).unwrap();
        w.tick(&t1).unwrap();
        w.flush().unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"type":"header","format":"auraio-trace","version":1"#));
        assert_eq!(text.lines().count(), 4);
        let t = read_trace(&path).unwrap();
        assert_eq!(t.header, h);
        assert_eq!(t.ticks, vec![t0, t1]);
        assert_eq!(t.ios, vec![io]);
    }

    fn parse(s: &str) -> Result<Trace, TraceError> {
        parse_trace(s.as_bytes(), Path::new("x.jsonl"))
    }

    #[test]
    fn malformed_traces_name_file_and_line() {
        let hdr = serde_json::to_string(&TraceRecord::Header(TraceHeader::new("aimd", 1, 8, 10)))
            .unwrap();
        let e = parse("").unwrap_err();
        assert!(matches!(e, TraceError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("x.jsonl"));

        let e = parse(&format!("{hdr}\n\n{{\"type\":\"tick\"}}\n")).unwrap_err();
        assert!(e.to_string().starts_with("x.jsonl:3: "), "{e}");

        let e = parse("not json\n").unwrap_err();
        assert!(e.to_string().starts_with("x.jsonl:1: "), "{e}");

        let tick_line = serde_json::to_string(&TraceRecord::Tick(tick(0, 10, 1))).unwrap();
        let e = parse(&format!("{tick_line}\n")).unwrap_err();
        assert!(e.to_string().contains("before the header"), "{e}");

        let e = parse(&format!("{hdr}\n{hdr}\n")).unwrap_err();
        assert!(e.to_string().starts_with("x.jsonl:2: second header"), "{e}");

        let e = parse(&hdr.replace("\"version\":1", "\"version\":9")).unwrap_err();
        assert!(e.to_string().contains("unsupported trace version 9"), "{e}");

        let e = parse(&hdr.replace("auraio-trace", "other")).unwrap_err();
        assert!(e.to_string().contains("format"), "{e}");

        let e = read_trace(Path::new("/nonexistent/dir/t.jsonl")).unwrap_err();
        assert!(matches!(e, TraceError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/dir/t.jsonl"));
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);

        let ok = parse(&format!("{hdr}\n{tick_line}\n\n")).unwrap();
        assert_eq!(ok.ticks.len(), 1);
    }
}
