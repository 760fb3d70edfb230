//! [`ControllerConfig`]: a serde-able choice of policy, also parseable from a
//! short string for command lines (`aimd`, `fixed:64`, `fixed:64:8`,
//! `replay:trace.jsonl`, or the JSON form).

use crate::aimd::{Aimd, AimdConfig};
use crate::controller::{Controller, ControllerError, Limits};
use crate::fixed::Fixed;
use crate::replay::TraceReplay;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Batch threshold of `fixed:N` when no batch is given.
pub const DEFAULT_FIXED_BATCH: u32 = 8;

fn default_fixed_batch() -> u32 {
    DEFAULT_FIXED_BATCH
}

/// Which policy to run, with its parameters. JSON form:
/// `{"policy":"aimd", …AimdConfig fields…}`, `{"policy":"fixed","in_flight":64,"batch":8}`,
/// `{"policy":"replay","path":"trace.jsonl"}`.
// The AIMD variant is a few hundred bytes of plain numbers; a config is
// built once per engine and never sits on a hot path, so boxing it (and
// every `ControllerConfig::Aimd(c)` pattern users write) buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ControllerConfig {
    /// Additive increase / multiplicative decrease (the default).
    Aimd(AimdConfig),
    /// A constant limit and batch.
    Fixed {
        /// In-flight limit.
        in_flight: u32,
        /// Batch threshold (default 8, clamped to `in_flight`).
        #[serde(default = "default_fixed_batch")]
        batch: u32,
    },
    /// Replays the decisions of a recorded trace.
    Replay {
        /// The trace file (JSON lines).
        path: PathBuf,
    },
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig::Aimd(AimdConfig::default())
    }
}

impl ControllerConfig {
    /// The policy's short name (`"aimd"`, `"fixed"`, `"replay"`).
    pub fn name(&self) -> &'static str {
        match self {
            ControllerConfig::Aimd(_) => "aimd",
            ControllerConfig::Fixed { .. } => "fixed",
            ControllerConfig::Replay { .. } => "replay",
        }
    }

    /// Checks the parameters (does not open a replay's trace).
    pub fn validate(&self) -> Result<(), ControllerError> {
        match self {
            ControllerConfig::Aimd(c) => c.validate().map_err(ControllerError::InvalidConfig),
            ControllerConfig::Fixed { in_flight, batch } => {
                if *in_flight == 0 {
                    Err(ControllerError::InvalidConfig(
                        "fixed: in_flight must be at least 1".into(),
                    ))
                } else if *batch == 0 {
                    Err(ControllerError::InvalidConfig(
                        "fixed: batch must be at least 1".into(),
                    ))
                } else {
                    Ok(())
                }
            }
            ControllerConfig::Replay { path } => {
                if path.as_os_str().is_empty() {
                    Err(ControllerError::InvalidConfig(
                        "replay: the trace path is empty".into(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Builds the controller for ring 0 (see [`build_for_ring`](Self::build_for_ring)).
    pub fn build(&self, limits: Limits) -> Result<Box<dyn Controller>, ControllerError> {
        self.build_for_ring(0, limits)
    }

    /// Builds the controller for ring `ring` (only `replay` uses it: it
    /// replays that ring's recorded decisions).
    pub fn build_for_ring(
        &self,
        ring: u32,
        limits: Limits,
    ) -> Result<Box<dyn Controller>, ControllerError> {
        self.validate()?;
        Ok(match self {
            ControllerConfig::Aimd(c) => Box::new(Aimd::new(c.clone(), limits)),
            ControllerConfig::Fixed { in_flight, batch } => {
                Box::new(Fixed::new(*in_flight, *batch, limits))
            }
            ControllerConfig::Replay { path } => {
                Box::new(TraceReplay::from_file(path, ring, limits)?)
            }
        })
    }
}

const FORMS: &str =
    "expected `aimd`, `fixed:<in_flight>`, `fixed:<in_flight>:<batch>`, `replay:<trace.jsonl>` or a JSON object";

impl FromStr for ControllerConfig {
    type Err = ControllerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('{') {
            let c: ControllerConfig = serde_json::from_str(s).map_err(|e| {
                ControllerError::InvalidConfig(format!("bad controller JSON {s:?}: {e}"))
            })?;
            c.validate()?;
            return Ok(c);
        }
        let (name, rest) = match s.split_once(':') {
            Some((n, r)) => (n, Some(r)),
            None => (s, None),
        };
        let bad = |why: String| ControllerError::InvalidConfig(format!("{why}; {FORMS}"));
        let num = |what: &str, v: &str| -> Result<u32, ControllerError> {
            match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(format!(
                    "bad {what} {v:?} in {s:?} (a whole number >= 1)"
                ))),
            }
        };
        let c = match (name.trim().to_ascii_lowercase().as_str(), rest) {
            ("aimd", None) => ControllerConfig::default(),
            ("fixed", Some(r)) => {
                let mut parts = r.split(':');
                let in_flight = num("in-flight limit", parts.next().unwrap_or(""))?;
                let batch = match parts.next() {
                    Some(b) => num("batch", b)?,
                    None => DEFAULT_FIXED_BATCH.min(in_flight),
                };
                if parts.next().is_some() {
                    return Err(bad(format!("too many fields in {s:?}")));
                }
                ControllerConfig::Fixed { in_flight, batch }
            }
            ("replay", Some(p)) if !p.trim().is_empty() => ControllerConfig::Replay {
                path: PathBuf::from(p.trim()),
            },
            ("", _) => return Err(bad("empty controller".into())),
            _ => return Err(bad(format!("unknown controller {s:?}"))),
        };
        Ok(c)
    }
}

impl fmt::Display for ControllerConfig {
    /// The short form where there is one (`aimd` for the default AIMD,
    /// `fixed:N:B`, `replay:PATH`), else the JSON form; either parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControllerConfig::Aimd(c) if *c == AimdConfig::default() => f.write_str("aimd"),
            ControllerConfig::Fixed { in_flight, batch } => write!(f, "fixed:{in_flight}:{batch}"),
            ControllerConfig::Replay { path }
                if path
                    .to_str()
                    .is_some_and(|p| p.trim() == p && !p.starts_with('{')) =>
            {
                write!(f, "replay:{}", path.display())
            }
            other => {
                let j = serde_json::to_string(other).map_err(|_| fmt::Error)?;
                f.write_str(&j)
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sample::Sample;

    #[test]
    fn short_forms_parse() {
        assert_eq!(
            "aimd".parse::<ControllerConfig>().unwrap(),
            ControllerConfig::default()
        );
        assert_eq!(
            " Fixed:64 ".parse::<ControllerConfig>().unwrap(),
            ControllerConfig::Fixed {
                in_flight: 64,
                batch: 8
            }
        );
        assert_eq!(
            "fixed:4".parse::<ControllerConfig>().unwrap(),
            ControllerConfig::Fixed {
                in_flight: 4,
                batch: 4
            }
        );
        assert_eq!(
            "fixed:64:16".parse::<ControllerConfig>().unwrap(),
            ControllerConfig::Fixed {
                in_flight: 64,
                batch: 16
            }
        );
        assert_eq!(
            "replay:/tmp/a:b.jsonl".parse::<ControllerConfig>().unwrap(),
            ControllerConfig::Replay {
                path: "/tmp/a:b.jsonl".into()
            }
        );
        for bad in [
            "",
            "fixed",
            "fixed:",
            "fixed:0",
            "fixed:x",
            "fixed:1:2:3",
            "fixed:8:0",
            "replay:",
            "vegas",
            "aimd:3",
            "{",
        ] {
            let e = bad.parse::<ControllerConfig>().unwrap_err();
            assert!(matches!(e, ControllerError::InvalidConfig(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        let custom = AimdConfig {
            backoff_factor: 0.5,
            p99_ceiling_us: 2_000,
            ..AimdConfig::default()
        };
        for c in [
            ControllerConfig::default(),
            ControllerConfig::Fixed {
                in_flight: 32,
                batch: 4,
            },
            ControllerConfig::Replay {
                path: "t.jsonl".into(),
            },
            ControllerConfig::Aimd(custom),
        ] {
            let s = c.to_string();
            assert_eq!(s.parse::<ControllerConfig>().unwrap(), c, "{s}");
        }
        assert_eq!(ControllerConfig::default().to_string(), "aimd");
        assert_eq!(
            ControllerConfig::Fixed {
                in_flight: 32,
                batch: 4
            }
            .to_string(),
            "fixed:32:4"
        );
    }

    #[test]
    fn serde_forms() {
        let c: ControllerConfig = serde_json::from_str(r#"{"policy":"aimd"}"#).unwrap();
        assert_eq!(c, ControllerConfig::default());
        let c: ControllerConfig =
            serde_json::from_str(r#"{"policy":"aimd","backoff_factor":0.7}"#).unwrap();
        match &c {
            ControllerConfig::Aimd(a) => {
                assert_eq!(a.backoff_factor, 0.7);
                assert_eq!(a.baseline_ticks, 10);
            }
            other => panic!("{other:?}"),
        }
        let c: ControllerConfig =
            serde_json::from_str(r#"{"policy":"fixed","in_flight":9}"#).unwrap();
        assert_eq!(
            c,
            ControllerConfig::Fixed {
                in_flight: 9,
                batch: 8
            }
        );
        let j = serde_json::to_string(&ControllerConfig::Replay { path: "x".into() }).unwrap();
        assert_eq!(j, r#"{"policy":"replay","path":"x"}"#);
        assert!(serde_json::from_str::<ControllerConfig>(r#"{"policy":"nope"}"#).is_err());
    }

    #[test]
    fn build_each_policy() {
        let limits = Limits::new(1, 128, 16);
        let mut f = ControllerConfig::Fixed {
            in_flight: 64,
            batch: 8,
        }
        .build(limits)
        .unwrap();
        assert_eq!(f.current().in_flight_limit, 64);
        assert_eq!(f.tick(&Sample::default()).in_flight_limit, 64);
        assert_eq!(f.state().name, "fixed");
        let a = ControllerConfig::default().build(limits).unwrap();
        assert_eq!(a.current().in_flight_limit, 16);
        assert_eq!(a.state().name, "aimd");
        assert_eq!(a.state().phase, "baseline");
        let e = ControllerConfig::Replay {
            path: "/nonexistent/t.jsonl".into(),
        }
        .build(limits)
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/t.jsonl"), "{e}");
        let bad = AimdConfig {
            backoff_factor: 1.5,
            ..AimdConfig::default()
        };
        let e = ControllerConfig::Aimd(bad).build(limits).unwrap_err();
        assert!(e.to_string().contains("backoff_factor"), "{e}");
        assert!(ControllerConfig::Fixed {
            in_flight: 0,
            batch: 1
        }
        .build(limits)
        .is_err());
    }
}
