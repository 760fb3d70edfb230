//! Where the runner puts its files: `target/auraio-bench/` under the workspace root.

use std::path::{Path, PathBuf};

/// The nearest ancestor of `start` (itself included) whose `Cargo.toml`
/// declares a `[workspace]`, if any.
pub fn workspace_root_from(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|l| l.trim() == "[workspace]") {
                return Some(dir.to_path_buf());
            }
        }
    }
    None
}

/// The output directory: `<workspace root>/target/auraio-bench`, or
/// `./target/auraio-bench` when the current directory is not inside a
/// cargo workspace.
pub fn output_dir() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let base = workspace_root_from(&cwd).unwrap_or(cwd);
    base.join("target").join("auraio-bench")
}

/// Default test file path.
pub fn default_test_file() -> PathBuf {
    output_dir().join("testfile")
}

/// Default trace path.
pub fn default_trace() -> PathBuf {
    output_dir().join("trace.jsonl")
}

/// Default plot path.
pub fn default_plot() -> PathBuf {
    output_dir().join("convergence.png")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root_from_a_member() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        let member = dir.path().join("benches").join("src");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(dir.path().join("benches/Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(workspace_root_from(&member).as_deref(), Some(dir.path()));
    }

    #[test]
    fn no_workspace_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        // The temp dir's ancestors (/tmp, /) hold no workspace manifest.
        assert_eq!(workspace_root_from(dir.path()), None);
    }
}
