//! Controller configuration. TEMPORARY shim until `auraio_controller::ControllerConfig` lands.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which controller the engine runs.
#[derive(Clone, Debug, PartialEq)]
pub enum ControllerConfig {
    /// AIMD with defaults.
    Aimd,
    /// A fixed limit and batch.
    Fixed {
        /// In-flight limit.
        in_flight: u32,
        /// Batch threshold.
        batch: u32,
    },
    /// Replay a trace.
    Replay {
        /// Trace path.
        path: PathBuf,
    },
}

impl FromStr for ControllerConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.splitn(2, ':');
        match (it.next(), it.next()) {
            (Some("aimd"), None) => Ok(Self::Aimd),
            (Some("fixed"), Some(rest)) => {
                let mut p = rest.split(':');
                let n: u32 = p.next().and_then(|x| x.parse().ok()).ok_or("bad fixed")?;
                let b: u32 = match p.next() {
                    Some(x) => x.parse().map_err(|_| "bad batch")?,
                    None => 8,
                };
                Ok(Self::Fixed {
                    in_flight: n,
                    batch: b,
                })
            }
            (Some("replay"), Some(p)) if !p.is_empty() => Ok(Self::Replay { path: p.into() }),
            _ => Err(format!("unknown controller `{s}`")),
        }
    }
}

impl fmt::Display for ControllerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aimd => write!(f, "aimd"),
            Self::Fixed { in_flight, .. } => write!(f, "fixed:{in_flight}"),
            Self::Replay { path } => write!(f, "replay:{}", path.display()),
        }
    }
}
