//! A server's mirror of a workspace repository: a clone with the base branch checked out,
//! from which agents' worktrees are made and workers clone. It is brought up to date before
//! a run starts and when the repository's host says it was pushed to. A credential reaches
//! git only through its environment (an `http.extraHeader` config entry), never through a
//! URL or an argument, so it is in no command line, no remote URL and no message.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

mod pushed;
pub use pushed::take_pushed_branch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run git: {0} (is git installed and on PATH?)")]
    Missing(std::io::Error),
    #[error("`{url}` cannot be read as a git repository: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("`{url}` has no branch `{base}`; push it or pick another base branch (--base)")]
    NoBase { url: String, base: String },
    #[error("`{url}` refused the credential: {reason}")]
    Refused { url: String, reason: String },
    #[error("cannot bring the mirror at {dir} up to date: {reason}")]
    Update { dir: String, reason: String },
}

/// A token git presents to an HTTP(S) host, as GitHub and most hosts take it. Its value is
/// only ever an environment variable of the git process.
#[derive(Clone)]
pub struct Credential {
    header: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

impl Credential {
    pub fn token(token: &[u8]) -> Self {
        let mut basic = b"x-access-token:".to_vec();
        basic.extend_from_slice(token);
        Self {
            header: format!("Authorization: Basic {}", base64(&basic)),
        }
    }
}

/// One mirror updated at a time per process: two fetches into one clone race for its locks.
static UPDATES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The branch agents start from: `base`, checked to exist, or the origin's default branch.
pub async fn check_remote(
    url: &str,
    base: Option<&str>,
    credential: Option<&Credential>,
) -> Result<String, Error> {
    let here = std::env::temp_dir();
    let listed = run(
        &here,
        &["ls-remote", "--symref", url, "HEAD", "refs/heads/*"],
        credential,
    )
    .await
    .map_err(|reason| remote_error(url, reason, credential))?;
    match base {
        Some(base) => {
            let wanted = format!("refs/heads/{base}");
            let found = listed
                .lines()
                .any(|line| line.split('\t').nth(1) == Some(wanted.as_str()));
            found.then(|| base.to_owned()).ok_or_else(|| Error::NoBase {
                url: url.to_owned(),
                base: base.to_owned(),
            })
        }
        None => listed
            .lines()
            .find_map(|line| line.strip_prefix("ref: refs/heads/"))
            .and_then(|rest| rest.split('\t').next())
            .map(str::to_owned)
            .ok_or_else(|| Error::Unreachable {
                url: url.to_owned(),
                reason: "it has no default branch (is it empty?); give --base".to_owned(),
            }),
    }
}

/// The mirror of `url` at `dir` on branch `base`: cloned when missing, else left as it is.
pub async fn ensure(
    url: &str,
    dir: &Path,
    base: &str,
    credential: Option<&Credential>,
) -> Result<(), Error> {
    if dir.join(".git").is_dir() {
        return Ok(());
    }
    let _one = UPDATES.lock().await;
    if dir.join(".git").is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| update_error(dir, e.to_string()))?;
    // Cloned beside its place and moved in whole: a cut-short clone is never taken for one.
    let partial = PathBuf::from(format!("{}.partial", dir.display()));
    let _ = std::fs::remove_dir_all(&partial);
    let target = partial.display().to_string();
    let args = ["clone", "--quiet", "--branch", base, "--", url, &target];
    run(parent, &args, credential)
        .await
        .map_err(|reason| remote_error(url, reason, credential))?;
    std::fs::rename(&partial, dir).map_err(|e| update_error(dir, e.to_string()))
}

/// Fetches the mirror at `dir` from its origin and moves its base branch forward to the
/// origin's when it can (a branch the server merged into itself stays); answers the base's
/// commit.
pub async fn fetch(dir: &Path, credential: Option<&Credential>) -> Result<String, Error> {
    let _one = UPDATES.lock().await;
    let origin = run(dir, &["remote", "get-url", "origin"], None)
        .await
        .map_err(|reason| update_error(dir, reason))?;
    run(dir, &["fetch", "--quiet", "--prune", "origin"], credential)
        .await
        .map_err(|reason| remote_error(&origin, reason, credential))?;
    let base = run(dir, &["symbolic-ref", "--short", "HEAD"], None)
        .await
        .map_err(|reason| update_error(dir, reason))?;
    let remote = format!("refs/remotes/origin/{base}");
    let behind = run(dir, &["merge-base", "--is-ancestor", "HEAD", &remote], None)
        .await
        .is_ok();
    if behind {
        run(dir, &["merge", "--ff-only", "--quiet", &remote], None)
            .await
            .map_err(|reason| update_error(dir, reason))?;
    }
    head(dir).await
}

/// Makes the mirror's local branch `branch` what its origin's is (a run's own base branch,
/// beside the mirror's checked-out one), as of the mirror's last fetch; moved forward only.
pub async fn take_branch(dir: &Path, branch: &str) -> Result<(), Error> {
    let _one = UPDATES.lock().await;
    let checked_out = run(dir, &["symbolic-ref", "--short", "HEAD"], None)
        .await
        .map_err(|reason| update_error(dir, reason))?;
    if checked_out == branch {
        return Ok(());
    }
    let remote = format!("refs/remotes/origin/{branch}");
    if run(dir, &["rev-parse", "--verify", "--quiet", &remote], None)
        .await
        .is_err()
    {
        let url = run(dir, &["remote", "get-url", "origin"], None)
            .await
            .map_err(|reason| update_error(dir, reason))?;
        return Err(Error::NoBase {
            url,
            base: branch.to_owned(),
        });
    }
    let local = format!("refs/heads/{branch}");
    let has_local = run(dir, &["rev-parse", "--verify", "--quiet", &local], None)
        .await
        .is_ok();
    let behind = !has_local
        || run(dir, &["merge-base", "--is-ancestor", &local, &remote], None)
            .await
            .is_ok();
    if behind {
        run(dir, &["update-ref", &local, &remote], None)
            .await
            .map_err(|reason| update_error(dir, reason))?;
    }
    Ok(())
}

/// The commit the mirror's base branch is at.
pub async fn head(dir: &Path) -> Result<String, Error> {
    run(dir, &["rev-parse", "HEAD"], None)
        .await
        .map_err(|reason| update_error(dir, reason))
}

fn update_error(dir: &Path, reason: String) -> Error {
    Error::Update {
        dir: dir.display().to_string(),
        reason,
    }
}

/// A failed remote operation: with a credential, an authentication failure says so.
fn remote_error(url: &str, reason: String, credential: Option<&Credential>) -> Error {
    let denied = [
        "Authentication failed",
        "could not read Username",
        "403",
        "401",
    ];
    if credential.is_some() && denied.iter().any(|d| reason.contains(d)) {
        return Error::Refused {
            url: url.to_owned(),
            reason,
        };
    }
    Error::Unreachable {
        url: url.to_owned(),
        reason,
    }
}

/// `git ARGS` in `dir` with `credential` for the remote it talks to, as the mirror runs git
/// (for a worker's own clones): never prompting, the credential in git's environment only.
pub async fn git_with(
    dir: &Path,
    args: &[&str],
    credential: Option<&Credential>,
) -> Result<String, String> {
    run(dir, args, credential).await
}

/// `git ARGS` in `dir`, never prompting; the credential, if any, in its environment only.
async fn run(dir: &Path, args: &[&str], credential: Option<&Credential>) -> Result<String, String> {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    if let Some(credential) = credential {
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", &credential.header);
    }
    let output = command
        .output()
        .await
        .map_err(|e| Error::Missing(e).to_string())?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(if stderr.is_empty() {
        format!("git {} failed", args.first().unwrap_or(&""))
    } else {
        stderr
    })
}

/// Standard base64 with padding (RFC 4648), for the one header git is given.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn a_credential_never_shows() {
        let credential = Credential::token(b"s3cr3t");
        assert_eq!(format!("{credential:?}"), "Credential(***)");
        let error = remote_error(
            "https://h/r",
            "fatal: Authentication failed".into(),
            Some(&credential),
        );
        assert!(matches!(error, Error::Refused { .. }));
        assert!(!error.to_string().contains("s3cr3t"));
    }

    async fn git_in(dir: &Path, args: &[&str]) {
        run(dir, args, None).await.expect("git");
    }

    #[tokio::test]
    async fn a_mirror_follows_its_origin() {
        let root = tempfile::tempdir().expect("temp dir");
        let origin = root.path().join("origin");
        std::fs::create_dir(&origin).expect("origin");
        git_in(&origin, &["init", "--quiet", "-b", "trunk"]).await;
        for args in [
            ["config", "user.email", "t@t"],
            ["config", "user.name", "t"],
        ] {
            git_in(&origin, &args).await;
        }
        git_in(
            &origin,
            &["commit", "--quiet", "--allow-empty", "-m", "one"],
        )
        .await;
        let url = origin.display().to_string();
        assert_eq!(
            check_remote(&url, None, None).await.expect("default"),
            "trunk"
        );
        let missing = check_remote(&url, Some("nope"), None)
            .await
            .expect_err("no base");
        assert!(matches!(missing, Error::NoBase { .. }), "{missing}");
        let nowhere = root.path().join("nowhere").display().to_string();
        let unreachable = check_remote(&nowhere, None, None)
            .await
            .expect_err("no repo");
        assert!(
            matches!(unreachable, Error::Unreachable { .. }),
            "{unreachable}"
        );

        let mirror = root.path().join("mirrors/a");
        ensure(&url, &mirror, "trunk", None).await.expect("clone");
        let first = head(&mirror).await.expect("head");
        git_in(
            &origin,
            &["commit", "--quiet", "--allow-empty", "-m", "two"],
        )
        .await;
        assert_eq!(head(&mirror).await.expect("head"), first, "not fetched yet");
        let second = fetch(&mirror, None).await.expect("fetch");
        assert_ne!(second, first);
        assert_eq!(
            second,
            run(&origin, &["rev-parse", "HEAD"], None)
                .await
                .expect("origin")
        );

        // A run's own base branch: taken from the origin, refused (named) where it has none.
        git_in(&origin, &["branch", "release"]).await;
        fetch(&mirror, None).await.expect("fetch");
        take_branch(&mirror, "release").await.expect("release");
        let taken = run(&mirror, &["rev-parse", "refs/heads/release"], None).await;
        assert_eq!(taken.expect("local release"), second);
        let missing = take_branch(&mirror, "nope").await.expect_err("no branch");
        assert!(
            matches!(&missing, Error::NoBase { base, .. } if base == "nope"),
            "{missing}"
        );
        take_branch(&mirror, "trunk")
            .await
            .expect("the checked-out base");
    }
}
