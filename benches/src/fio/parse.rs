//! Reading fio's `--output-format=json` into a [`FioResult`].

use serde_json::Value;

use super::FioResult;
use crate::summary::LatencyStats;

/// Parses fio's `--output-format=json` text (anything before the first line
/// starting with `{`, such as warnings, is skipped). Sums IOPS and bandwidth
/// over jobs and directions; latency comes from the direction with more I/Os.
pub fn parse_fio_json(text: &str, iodepth: u32) -> anyhow::Result<FioResult> {
    let start = text
        .find("\n{")
        .map(|i| i + 1)
        .or_else(|| text.starts_with('{').then_some(0))
        .ok_or_else(|| anyhow::anyhow!("no JSON object in fio's output"))?;
    let v: Value = serde_json::from_str(&text[start..])
        .map_err(|e| anyhow::anyhow!("fio's JSON does not parse: {e}"))?;
    let jobs = v
        .get("jobs")
        .and_then(Value::as_array)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| anyhow::anyhow!("fio's JSON has no jobs"))?;
    let mut iops = 0.0;
    let mut bw = 0.0;
    let mut best: Option<(u64, &Value)> = None;
    for job in jobs {
        for dir in ["read", "write"] {
            let Some(d) = job.get(dir) else { continue };
            iops += num(d, "iops");
            bw += num(d, "bw_bytes");
            let ios = d.get("total_ios").and_then(Value::as_u64).unwrap_or(0);
            if ios > 0 && best.is_none_or(|(n, _)| ios > n) {
                best = Some((ios, d));
            }
        }
    }
    let clat = match best.and_then(|(_, d)| d.get("clat_ns")) {
        Some(c) => parse_clat(c)?,
        None => LatencyStats::default(),
    };
    Ok(FioResult {
        iodepth,
        iops,
        bw_bytes: bw,
        clat,
    })
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn parse_clat(c: &Value) -> anyhow::Result<LatencyStats> {
    let pct = c
        .get("percentile")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow::anyhow!("fio's clat_ns has no percentiles"))?;
    let at = |q: f64| -> anyhow::Result<u64> {
        pct.iter()
            .find(|(k, _)| k.parse::<f64>().is_ok_and(|x| (x - q).abs() < 1e-6))
            .and_then(|(_, v)| v.as_u64())
            .ok_or_else(|| anyhow::anyhow!("fio's clat_ns lacks the {q} percentile"))
    };
    Ok(LatencyStats {
        samples: c.get("N").and_then(Value::as_u64).unwrap_or(0),
        min: c.get("min").and_then(Value::as_u64).unwrap_or(0),
        mean: num(c, "mean"),
        p50: at(50.0)?,
        p99: at(99.0)?,
        p999: at(99.9)?,
        max: c.get("max").and_then(Value::as_u64).unwrap_or(0),
    })
}
