//! What one finished run left on disk and in git, and removing it: the run's folder under
//! `.murmur/work/RUN/` (its agents' worktrees, plain folders, result files) and, on request,
//! its agents' branches. Nothing outside that folder is removed, and no branch Murmur did not
//! make, nor one checked out or still wanted elsewhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use murmur_engine::Store;
use murmur_engine::store::{AgentRow, RunRow};
use murmur_runtime::workspace::Repository;
use serde::Serialize;

/// What a run gave back (or, in a dry run, would give back).
#[derive(Debug, Default, Serialize)]
pub struct Freed {
    /// The worktrees' folders.
    pub worktrees: Vec<String>,
    pub branches: Vec<String>,
    /// Branches of the run that stay, and why.
    pub kept_branches: Vec<KeptBranch>,
    /// The size of the run's folder before it was removed.
    pub bytes: u64,
}

impl Freed {
    pub fn is_empty(&self) -> bool {
        self.worktrees.is_empty() && self.branches.is_empty() && self.bytes == 0
    }
}

#[derive(Debug, Serialize)]
pub struct KeptBranch {
    pub branch: String,
    pub reason: String,
}

/// Branches no prune may delete, whichever run they seem to belong to.
#[derive(Debug, Default)]
pub struct Protected {
    /// Branches of local pull requests still open: `murmur pr merge` needs them.
    open_pulls: BTreeSet<String>,
    /// Branches that runs not pruned now recorded (an agent's `branch` directive can name
    /// the same branch in several runs).
    other_runs: BTreeSet<String>,
}

impl Protected {
    pub async fn gather(store: &Store, chosen: &[RunRow]) -> anyhow::Result<Self> {
        let open_pulls = store
            .pull_requests()
            .await?
            .into_iter()
            .filter(|pr| pr.state == "open")
            .map(|pr| pr.branch)
            .collect();
        let mut named_elsewhere = false;
        for row in chosen {
            let agents = store.agents(&row.id).await?;
            named_elsewhere |= agents
                .iter()
                .filter_map(|agent| agent.branch.as_deref())
                .any(|branch| !branch.starts_with(&run_prefix(row)));
        }
        // Only a `branch` directive can put two runs on one branch; without one, no other
        // run's agents need reading.
        let mut other_runs = BTreeSet::new();
        if named_elsewhere {
            let chosen_ids: BTreeSet<&str> = chosen.iter().map(|row| row.id.as_str()).collect();
            for row in store.runs(i64::MAX as u64).await? {
                if chosen_ids.contains(row.id.as_str()) {
                    continue;
                }
                let agents = store.agents(&row.id).await?;
                other_runs.extend(agents.into_iter().filter_map(|agent| agent.branch));
            }
        }
        Ok(Self {
            open_pulls,
            other_runs,
        })
    }

    fn reason(&self, branch: &str) -> Option<&'static str> {
        if self.open_pulls.contains(branch) {
            Some("its pull request is open (`murmur pr merge` needs it)")
        } else if self.other_runs.contains(branch) {
            Some("another run works on it too")
        } else {
            None
        }
    }
}

/// One run to prune.
pub struct Target<'a> {
    pub row: &'a RunRow,
    pub agents: Vec<AgentRow>,
    /// `.murmur/work/RUN`.
    pub run_dir: PathBuf,
    /// The repository, when the folder is one.
    pub git: Option<&'a Repository>,
    /// Whether to delete branches.
    pub branches: bool,
    pub protected: &'a Protected,
}

/// `murmur/FLIGHT/RUN/`: where the run's agents' branches live unless they name their own.
fn run_prefix(row: &RunRow) -> String {
    format!("murmur/{}/{}/", row.flight, row.id)
}

/// Removes what the run left (with `dry_run`, only finds it) and says what that was.
pub async fn prune_run(target: &Target<'_>, dry_run: bool) -> anyhow::Result<Freed> {
    let mut freed = Freed::default();
    if !plausible_id(&target.row.id) {
        // A run id that could lead out of `.murmur/work` is no folder of ours to remove.
        return Ok(freed);
    }
    // Where git lists this run's worktrees, read while the folder still exists.
    let own_dir = target
        .run_dir
        .canonicalize()
        .unwrap_or_else(|_| target.run_dir.clone());
    if target.run_dir.is_dir() {
        freed.bytes = folder_size(&target.run_dir);
        freed.worktrees = worktrees_in(&target.run_dir);
        if !dry_run {
            remove_run_dir(target, &freed.worktrees).await?;
        }
    }
    if let (Some(git), true) = (target.git, target.branches) {
        branches(target, git, &own_dir, dry_run, &mut freed).await?;
    }
    Ok(freed)
}

/// Ids are made by Murmur (letters, digits, `-`, `_`); anything else is not trusted as a
/// folder name.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The worktrees among the run's folders: agents' (`SLUG`) and a merge gate's scratch ones.
fn worktrees_in(run_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .filter(|path| path.join(".git").is_file())
        .map(|path| path.display().to_string())
        .collect();
    found.sort();
    found
}

/// Removes the worktrees through git (so it forgets them), then the rest of the folder.
async fn remove_run_dir(target: &Target<'_>, worktrees: &[String]) -> anyhow::Result<()> {
    if let Some(git) = target.git {
        for worktree in worktrees {
            // A worktree git no longer knows (its repository's records were pruned) is a
            // plain folder now: removing the folder below is enough.
            let _ = git.release(Path::new(worktree)).await;
        }
    }
    std::fs::remove_dir_all(&target.run_dir)
        .with_context(|| format!("cannot remove {}", target.run_dir.display()))?;
    if let Some(git) = target.git {
        // Git refuses to delete a branch it still thinks is checked out in a folder that
        // is gone; drop those records first.
        git.prune_worktrees().await?;
    }
    Ok(())
}

/// Deletes the run's branches that Murmur made and nothing else needs.
async fn branches(
    target: &Target<'_>,
    git: &Repository,
    own_dir: &Path,
    dry_run: bool,
    freed: &mut Freed,
) -> anyhow::Result<()> {
    let mut candidates: BTreeSet<String> = git
        .branches_under(&run_prefix(target.row))
        .await?
        .into_iter()
        .collect();
    candidates.extend(target.agents.iter().filter_map(|a| a.branch.clone()));
    let checked_out: BTreeSet<String> = git
        .checked_out_branches()
        .await?
        .into_iter()
        .filter(|(folder, _)| !folder.starts_with(own_dir))
        .map(|(_, branch)| branch)
        .collect();
    for branch in candidates {
        let ours = git.is_agent_branch(&branch).await?;
        if !ours {
            if git.has_branch(&branch).await? {
                keep(freed, &branch, "Murmur did not make it");
            }
            continue;
        }
        let reason = if checked_out.contains(&branch) {
            Some("it is checked out")
        } else {
            target.protected.reason(&branch)
        };
        if let Some(reason) = reason {
            keep(freed, &branch, reason);
            continue;
        }
        if dry_run || git.delete_agent_branch(&branch).await? {
            freed.branches.push(branch);
        }
    }
    Ok(())
}

fn keep(freed: &mut Freed, branch: &str, reason: &str) {
    freed.kept_branches.push(KeptBranch {
        branch: branch.to_owned(),
        reason: reason.to_owned(),
    });
}

/// The bytes of the files under `dir`, not following symbolic links (a link counts as
/// itself, not what it points to). Unreadable entries count as nothing.
pub fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_files_once_and_never_follow_links() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/one"), vec![0u8; 1000]).expect("write");
        std::fs::write(dir.path().join("a/b/two"), vec![0u8; 234]).expect("write");
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("big"), vec![0u8; 100_000]).expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/link")).expect("link");
        let link_size = dir
            .path()
            .join("a/link")
            .symlink_metadata()
            .expect("meta")
            .len();
        assert_eq!(folder_size(dir.path()), 1234 + link_size);
        assert_eq!(folder_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn only_murmur_made_ids_name_folders() {
        assert!(plausible_id("01JABCDEF-x_1"));
        for bad in ["", "..", "../x", "a/b", "a b", "é"] {
            assert!(!plausible_id(bad), "{bad:?}");
        }
    }
}
