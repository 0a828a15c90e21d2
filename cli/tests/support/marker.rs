//! Looking for a secret's marker where it must not be: files below a folder (a SQLite store
//! and its WAL, `.murmur/`, worktrees, logs).

use std::path::{Path, PathBuf};

/// Files below `dir` whose bytes hold `marker`.
pub fn files_holding(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding(&path, marker));
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}
