//! Running git: one place that turns a failed git command into an error that says what failed.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run git: {0} (is git installed and on PATH?)")]
    Missing(std::io::Error),
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: String,
        stderr: String,
    },
}

/// Runs `git ARGS` in `dir` and returns its trimmed stdout.
pub async fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::Missing)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    Err(Error::Failed {
        args: args.join(" "),
        dir: dir.display().to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Whether `git ARGS` succeeds (for questions git answers with its exit status).
pub async fn succeeds(dir: &Path, args: &[&str]) -> Result<bool, Error> {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map_err(Error::Missing)?;
    Ok(status.success())
}
