//! The side-by-side table of fio's depths and auraio's runs.

use std::fmt::Write as _;

use super::{compare, compare_points, runners_up, FioResult};
use crate::summary::{fmt_count, fmt_ns, RunResult};

/// The side-by-side table; `extra` are further auraio runs (e.g. a fixed
/// depth) shown as rows without entering the verdict.
pub fn render_table(auraio: &RunResult, fio: &[FioResult], extra: &[RunResult]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "IOPS", "MiB/s", "avg", "p50", "p99", "p99.9"
    );
    let cmp = compare(auraio, fio);
    for (i, f) in fio.iter().enumerate() {
        let mark = if cmp.as_ref().is_some_and(|c| c.best == i) {
            " *"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "{:<40} {:>9} {:>9.1} {:>9} {:>9} {:>9} {:>9}",
            format!("fio io_uring iodepth={}{mark}", f.iodepth),
            fmt_count(f.iops),
            f.bw_bytes / (1 << 20) as f64,
            fmt_ns(f.clat.mean.round() as u64),
            fmt_ns(f.clat.p50),
            fmt_ns(f.clat.p99),
            fmt_ns(f.clat.p999)
        );
    }
    for a in std::iter::once(auraio).chain(extra) {
        let _ = writeln!(
            o,
            "{:<40} {:>9} {:>9.1} {:>9} {:>9} {:>9} {:>9}",
            match a.in_flight_mean {
                Some(m) => format!(
                    "auraio {} (limit {}, {m:.0} in flight)",
                    a.controller, a.final_limit
                ),
                None => format!("auraio {} (limit {})", a.controller, a.final_limit),
            },
            fmt_count(a.iops()),
            a.bw_bytes() / (1 << 20) as f64,
            fmt_ns(a.latency.mean.round() as u64),
            fmt_ns(a.latency.p50),
            fmt_ns(a.latency.p99),
            fmt_ns(a.latency.p999)
        );
    }
    match cmp {
        Some(c) => {
            let _ = writeln!(
                o,
                "auraio vs fio's best (iodepth={}, *): {}",
                fio[c.best].iodepth,
                c.verdict()
            );
            for i in runners_up(fio, c.best) {
                let f = &fio[i];
                let single = [(f.iops, f.clat.p99)];
                let point = (auraio.iops(), auraio.latency.p99);
                if let Some(r) = compare_points(point, &single, auraio.direct) {
                    let _ = writeln!(
                        o,
                        "  context: fio's iodepth={} was within {:.1} % of its best (within a run's noise); against it: {}",
                        f.iodepth,
                        (1.0 - f.iops / fio[c.best].iops) * 100.0,
                        r.verdict()
                    );
                }
            }
        }
        None => {
            let _ = writeln!(o, "no fio result to compare with");
        }
    }
    o
}
