//! Moving bases: a long-lived agent's worktree (a follow-up, a wake) whose base branch moved
//! on since its branch started takes the new base in, as its workspace repository's
//! `conflict_resolution` says: merged into the branch, or the agent's commits rebased onto
//! it. The branch's start mark moves with it, so the agent's commits and diff are still
//! counted from where its own work starts. A conflict leaves the branch as it was.

use std::path::Path;

use super::{Error, Repository, Worktree, start_ref};
use crate::git::{git, succeeds};

/// How the base branch's new commits reach an agent's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseMove {
    /// Merge the new base into the branch (a merge commit).
    Merge,
    /// Replay the agent's own commits onto the new base.
    Rebase,
}

impl BaseMove {
    fn verb(self) -> &'static str {
        match self {
            Self::Merge => "merging",
            Self::Rebase => "rebasing onto",
        }
    }
}

/// What following the base did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The branch holds the base's tip already.
    UpToDate,
    /// The base's tip (this commit) is now in the branch.
    Took(String),
}

/// Commits Murmur makes itself are signed with this identity, never the machine's.
const IDENTITY: [&str; 4] = [
    "-c",
    "user.name=murmur",
    "-c",
    "user.email=murmur@localhost",
];

impl Worktree {
    /// Takes the repository's base branch, where it moved past this branch, in `how`.
    pub async fn follow_base(
        &mut self,
        repository: &Repository,
        how: BaseMove,
    ) -> Result<Followed, Error> {
        let base = format!("refs/heads/{}", repository.base);
        let tip = git(&self.path, &["rev-parse", "--verify", &base])
            .await
            .map_err(|_| Error::NoBase(repository.base.clone()))?;
        if is_ancestor(self, &tip, "HEAD").await? {
            return Ok(Followed::UpToDate);
        }
        let conflict = |files: Vec<String>| Error::BaseConflict {
            base: repository.base.clone(),
            branch: self.branch.clone(),
            verb: how.verb(),
            files,
        };
        let start = moved_start(self, &tip).await?.map_err(conflict)?;
        let moved = match how {
            BaseMove::Merge => {
                let message = format!(
                    "Merge base branch `{}` into {}",
                    repository.base, self.branch
                );
                let mut args = IDENTITY.to_vec();
                args.extend(["merge", "--quiet", "--no-edit", "-m", &message, &tip]);
                run_or_abort(self, &args, "merge").await
            }
            BaseMove::Rebase => {
                let mut args = IDENTITY.to_vec();
                args.extend(["rebase", "--quiet", "--onto", &start, &self.base_commit]);
                run_or_abort(self, &args, "rebase").await
            }
        };
        moved?.map_err(conflict)?;
        git(
            &self.path,
            &["update-ref", &start_ref(&self.branch), &start],
        )
        .await?;
        self.base_commit = start;
        Ok(Followed::Took(tip))
    }
}

/// Where the agent's own work starts once the base's tip is in: the tip itself when the
/// branch started on the base, else (upstream branches were merged into the start) a commit
/// Murmur makes merging the tip into the old start. `Err` names the files that conflict.
async fn moved_start(tree: &Worktree, tip: &str) -> Result<Result<String, Vec<String>>, Error> {
    if is_ancestor(tree, &tree.base_commit, tip).await? {
        return Ok(Ok(tip.to_owned()));
    }
    let (clean, listed) = merge_tree(&tree.path, &tree.base_commit, tip).await?;
    let mut lines = listed.lines();
    let tree_id = lines.next().unwrap_or_default().to_owned();
    if !clean {
        return Ok(Err(lines.map(str::to_owned).collect()));
    }
    let message = format!("murmur: where {} starts on the moved base", tree.branch);
    let mut args = IDENTITY.to_vec();
    args.extend([
        "commit-tree",
        &tree_id,
        "-p",
        &tree.base_commit,
        "-p",
        tip,
        "-m",
        &message,
    ]);
    Ok(Ok(git(&tree.path, &args).await?))
}

/// `git merge-tree --write-tree` of two commits: whether it merged cleanly, and its listing
/// (the tree's id, then the conflicted files), which git prints on a conflict too.
async fn merge_tree(dir: &Path, ours: &str, theirs: &str) -> Result<(bool, String), Error> {
    let args = [
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        ours,
        theirs,
    ];
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(crate::git::Error::Missing)?;
    let listed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok((true, listed)),
        Some(1) => Ok((false, listed)),
        _ => Err(crate::git::Error::Failed {
            args: args.join(" "),
            dir: dir.display().to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
        .into()),
    }
}

/// Runs a merge or rebase; on a conflict, aborts it and answers the conflicted files.
async fn run_or_abort(
    tree: &Worktree,
    args: &[&str],
    what: &str,
) -> Result<Result<(), Vec<String>>, Error> {
    let Err(failed) = git(&tree.path, args).await else {
        return Ok(Ok(()));
    };
    let conflicted = git(&tree.path, &["diff", "--name-only", "--diff-filter=U"]).await?;
    if conflicted.is_empty() {
        return Err(failed.into());
    }
    git(&tree.path, &[what, "--abort"]).await?;
    Ok(Err(conflicted.lines().map(str::to_owned).collect()))
}

async fn is_ancestor(tree: &Worktree, older: &str, newer: &str) -> Result<bool, Error> {
    Ok(succeeds(&tree.path, &["merge-base", "--is-ancestor", older, newer]).await?)
}

#[cfg(test)]
#[path = "base_tests.rs"]
mod tests;
