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

/// True when no git repository can contain `dir`: no folder from `dir` up holds `.git` (or
/// is itself a git directory), and no `GIT_DIR` points elsewhere. Asking git costs a process
/// per agent, which dominates a flight of short agents in a plain folder; when anything looks
/// like git this answers false and git decides.
pub fn surely_outside_a_repository(dir: &Path) -> bool {
    if std::env::var_os("GIT_DIR").is_some() || std::env::var_os("GIT_WORK_TREE").is_some() {
        return false;
    }
    // Physical ancestors, as git walks them: `..` and symlinks resolved.
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    !dir.ancestors().any(looks_like_git)
}

/// A work tree's top (`.git`) or a git directory itself (a bare repository).
fn looks_like_git(folder: &Path) -> bool {
    folder.join(".git").exists()
        || (folder.join("HEAD").is_file() && folder.join("objects").is_dir())
}

#[cfg(test)]
mod tests {
    use super::surely_outside_a_repository;

    #[test]
    fn a_git_folder_anywhere_above_leaves_the_answer_to_git() {
        let root = tempfile::tempdir().expect("temp dir");
        let nested = root.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("folders");
        assert!(surely_outside_a_repository(&nested));
        std::fs::create_dir(root.path().join("a/.git")).expect(".git");
        assert!(!surely_outside_a_repository(&nested));
        assert!(!surely_outside_a_repository(&root.path().join("missing")));
    }
}
