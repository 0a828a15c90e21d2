//! A machine that is not the server's host (a worker) keeps its own clone of each workspace
//! repository: worktrees come from the clone, the branches an attempt needs are fetched from
//! the repository first (so an agent whose machine was lost resumes from its branch on a fresh
//! one), and the agent's branch is pushed back after its turn for the engine and its
//! downstream agents to see. A clone of an origin (`origin`) talks to it with the attempt's
//! credential, which stays in memory and in git's environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use murmur_runtime::git::{git, succeeds};
use murmur_runtime::mirror::{self, Credential};

mod origin;
pub use origin::sources_for;

/// The credential each clone's origin takes, in memory only: set by every preparation of a
/// clone of an origin, used by its fetches and its push back.
static CREDENTIALS: Mutex<BTreeMap<PathBuf, Credential>> = Mutex::new(BTreeMap::new());

/// The clone of `source` below `root`, made or brought up to date, with `branches` present
/// locally wherever the source has them and this clone has not moved past them.
pub async fn prepare(source: &str, root: &Path, branches: &[&str]) -> Result<PathBuf, String> {
    prepare_with(source, None, root, branches).await
}

/// [`prepare`], talking to `source` with `credential`.
async fn prepare_with(
    source: &str,
    credential: Option<Credential>,
    root: &Path,
    branches: &[&str],
) -> Result<PathBuf, String> {
    let clone = root.join("repositories").join(folder_name(source));
    {
        let mut known = CREDENTIALS.lock().unwrap_or_else(PoisonError::into_inner);
        match &credential {
            Some(credential) => known.insert(clone.clone(), credential.clone()),
            None => known.remove(&clone),
        };
    }
    if clone.join(".git").is_dir() {
        remote(&clone, &["fetch", "--quiet", "--prune", "origin"]).await?;
        follow_base(&clone).await?;
    } else {
        std::fs::create_dir_all(root.join("repositories"))
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let target = clone.display().to_string();
        let args = ["clone", "--quiet", "--", source, &target];
        mirror::git_with(root, &args, credential.as_ref())
            .await
            .map_err(|e| format!("git clone: {e}"))?;
    }
    for branch in branches {
        take_branch(&clone, branch).await?;
    }
    Ok(clone)
}

/// `git ARGS` in `clone` that talks to its remotes, with its origin's credential if any.
async fn remote(clone: &Path, args: &[&str]) -> Result<(), String> {
    let credential = CREDENTIALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(clone)
        .cloned();
    mirror::git_with(clone, args, credential.as_ref())
        .await
        .map(drop)
        .map_err(|e| format!("git {}: {e}", args.first().unwrap_or(&"")))
}

/// Moves the clone's checked-out base branch forward to the origin's, so a fresh worktree
/// starts where the repository's base is now (a workspace mirror moves on every fetch).
async fn follow_base(clone: &Path) -> Result<(), String> {
    let Ok(base) = git(clone, &["symbolic-ref", "--short", "HEAD"]).await else {
        return Ok(());
    };
    let remote = format!("refs/remotes/origin/{base}");
    let behind = succeeds(clone, &["merge-base", "--is-ancestor", "HEAD", &remote])
        .await
        .map_err(|e| e.to_string())?;
    if behind {
        run(clone, &["merge", "--ff-only", "--quiet", &remote]).await?;
    }
    Ok(())
}

/// Pushes the agent's branch back to the repository it was cloned from, with the ref that
/// marks it as Murmur's (where it started), so a machine that resumes it later owns it too.
pub async fn push_back(clone: &Path, branch: &str) -> Result<(), String> {
    let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let start = start_ref(branch);
    let marked = succeeds(clone, &["rev-parse", "--verify", "--quiet", &start])
        .await
        .map_err(|e| e.to_string())?;
    let start_spec = format!("+{start}:{start}");
    for target in pushed_to(clone).await? {
        let mut args = vec!["push", "--quiet", target, spec.as_str()];
        if marked {
            args.push(&start_spec);
        }
        remote(clone, &args).await?;
    }
    Ok(())
}

/// Where a clone's pushes go: its origin, and for a clone of a workspace's origin the
/// server's mirror too, when this machine reaches it (`origin::MIRROR`), so the server sees
/// the branch at once.
async fn pushed_to(clone: &Path) -> Result<Vec<&'static str>, String> {
    let remotes = git(clone, &["remote"]).await.map_err(|e| e.to_string())?;
    let mirrored = remotes.lines().any(|r| r == origin::MIRROR);
    Ok(if mirrored {
        vec!["origin", origin::MIRROR]
    } else {
        vec!["origin"]
    })
}

/// Where Murmur records the commit an agent's branch started at (`runtime::workspace`).
fn start_ref(branch: &str) -> String {
    format!("refs/murmur/start/{branch}")
}

/// A local branch for `origin/BRANCH`: created when missing, moved forward when the origin is
/// ahead (another machine worked on it since), left alone when this clone is ahead.
pub(crate) async fn take_branch(clone: &Path, branch: &str) -> Result<(), String> {
    let tracked = format!("refs/remotes/origin/{branch}");
    let local = format!("refs/heads/{branch}");
    if !succeeds(clone, &["rev-parse", "--verify", "--quiet", &tracked])
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let has_local = succeeds(clone, &["rev-parse", "--verify", "--quiet", &local])
        .await
        .map_err(|e| e.to_string())?;
    let behind = has_local
        && succeeds(clone, &["merge-base", "--is-ancestor", &local, &tracked])
            .await
            .map_err(|e| e.to_string())?;
    if !has_local || behind {
        run(clone, &["update-ref", &local, &tracked]).await?;
    }
    if !has_local {
        // The branch is Murmur's where the origin marks it so; without the mark a fresh
        // worktree would refuse it as the user's. A branch the origin has no mark for stays
        // unmarked (the fetch fails, and that is the answer).
        let start = start_ref(branch);
        let spec = format!("+{start}:{start}");
        let _ = remote(clone, &["fetch", "--quiet", "origin", &spec]).await;
    }
    Ok(())
}

async fn run(dir: &Path, args: &[&str]) -> Result<(), String> {
    git(dir, args)
        .await
        .map(drop)
        .map_err(|e| format!("git {}: {e}", args.first().unwrap_or(&"")))
}

/// A folder name for a repository: readable, and distinct for distinct sources (a worker's
/// clones and the server's mirrors).
pub fn folder_name(source: &str) -> String {
    let readable: String = source
        .rsplit(['/', ':'])
        .find(|part| !part.is_empty())
        .unwrap_or("repository")
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = source.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{readable}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::folder_name;

    #[test]
    fn folder_names_are_readable_and_distinct() {
        let a = folder_name("/srv/repos/app");
        let b = folder_name("/home/me/app");
        assert!(a.starts_with("app-") && b.starts_with("app-"), "{a} {b}");
        assert_ne!(a, b);
        assert!(folder_name("https://github.com/acme/app.git").starts_with("app-"));
        assert!(!folder_name("../../etc").contains('/'));
    }
}
