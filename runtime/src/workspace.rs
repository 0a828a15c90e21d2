//! Git workspaces: every agent works in its own worktree on its own branch, created from the
//! base branch with the branches of its upstream agents merged in.

use std::path::{Path, PathBuf};

use crate::git::{self, git, succeeds};

mod base;
pub use base::{BaseMove, Followed};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is not inside a git repository; agents need one to branch from")]
    NotARepository(String),
    #[error("the base branch `{0}` does not exist; set the workspace's base branch or create it")]
    NoBase(String),
    #[error(
        "branch `{0}` already exists and is not this agent's; pick another `branch` or delete it (`git branch -D {0}`)"
    )]
    BranchExists(String),
    #[error(
        "the repository has uncommitted changes ({0}); agents branch from committed work only: commit or stash them first"
    )]
    Dirty(String),
    #[error("merging `{branch}` conflicts in: {}; resolve by hand or change the flight so these agents touch different files", files.join(", "))]
    MergeConflict { branch: String, files: Vec<String> },
    #[error(
        "commit {commit} is not in the repository at {root}, and fetching it from `origin` did not bring it ({reason}); fetch it there (`git fetch origin {commit}`) and retry the run"
    )]
    MissingCommit {
        commit: String,
        root: String,
        reason: String,
    },
    #[error(
        "the base branch `{base}` moved on, and {verb} it conflicts with branch `{branch}` in: {}; the branch is left as it was: resolve by hand (take `{base}` into `{branch}` and push it) or set the repository's conflict_resolution to `none`", files.join(", ")
    )]
    BaseConflict {
        base: String,
        branch: String,
        verb: &'static str,
        files: Vec<String>,
    },
    #[error(transparent)]
    Git(#[from] git::Error),
}

static WORKTREE_ADD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A repository that agents branch from.
#[derive(Debug, Clone)]
pub struct Repository {
    pub root: PathBuf,
    pub base: String,
}

/// An agent's checked-out branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    /// The commit the branch started from, for counting the agent's own commits.
    pub base_commit: String,
}

/// What an agent's branch holds beyond where it started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    pub commits: u32,
    /// `git diff --shortstat`, e.g. "2 files changed, 10 insertions(+)".
    pub diff_stat: String,
}

impl Repository {
    /// The repository containing `dir`, branching from `base` (or the current branch).
    pub async fn open(dir: &Path, base: Option<&str>) -> Result<Self, Error> {
        if git::surely_outside_a_repository(dir) {
            return Err(Error::NotARepository(dir.display().to_string()));
        }
        let root = git(dir, &["rev-parse", "--show-toplevel"])
            .await
            .map_err(|_| Error::NotARepository(dir.display().to_string()))?;
        let root = PathBuf::from(root);
        let base = match base {
            Some(base) => base.to_owned(),
            None => git(&root, &["symbolic-ref", "--short", "HEAD"]).await?,
        };
        if !succeeds(
            &root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{base}"),
            ],
        )
        .await?
        {
            return Err(Error::NoBase(base));
        }
        Ok(Self { root, base })
    }

    /// Refuses a repository whose tracked files have uncommitted changes: agents would not see them.
    pub async fn ensure_clean(&self) -> Result<(), Error> {
        let status = git(&self.root, &["diff", "HEAD", "--name-only"]).await?;
        let changed: Vec<&str> = status.lines().collect();
        match changed.len() {
            0 => Ok(()),
            1..=3 => Err(Error::Dirty(changed.join(", "))),
            n => Err(Error::Dirty(format!(
                "{}, and {} more",
                changed[..3].join(", "),
                n - 3
            ))),
        }
    }

    /// The agent's worktree at `path` on `branch`, created from the base branch with
    /// `upstream` branches merged in, in order. Idempotent: a retried attempt gets the
    /// worktree its earlier attempt left, with its work, and finishes one whose preparation
    /// was cut short.
    pub async fn worktree(
        &self,
        path: &Path,
        branch: &str,
        upstream: &[String],
    ) -> Result<Worktree, Error> {
        self.worktree_from(path, branch, upstream, None).await
    }

    /// [`Repository::worktree`], a fresh branch starting at `start` (a commit) instead of the
    /// base branch: a run started by a push works on the pushed commit.
    pub async fn worktree_from(
        &self,
        path: &Path,
        branch: &str,
        upstream: &[String],
        start: Option<&str>,
    ) -> Result<Worktree, Error> {
        if let Some(existing) = self.existing(path, branch, upstream).await? {
            return Ok(existing);
        }
        if self.has_ref(&format!("refs/heads/{branch}")).await? {
            // Ours from an earlier turn whose worktree was released (`on_idle: terminate`):
            // attach it again. Any other branch of that name is the user's: never touched.
            if self.has_ref(&start_ref(branch)).await? {
                return self.reattach(path, branch).await;
            }
            return Err(Error::BranchExists(branch.to_owned()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| git::Error::Failed {
                args: "worktree add".into(),
                dir: parent.display().to_string(),
                stderr: e.to_string(),
            })?;
        }
        let path_text = path.display().to_string();
        {
            // Git reads every worktree's metadata while it adds one, and fails on a worktree
            // another `worktree add` is writing at that moment; one add at a time.
            let _adding = WORKTREE_ADD.lock().await;
            git(
                &self.root,
                &[
                    "worktree",
                    "add",
                    "--quiet",
                    "-b",
                    branch,
                    &path_text,
                    start.unwrap_or(&self.base),
                ],
            )
            .await?;
        }
        merge_upstream(path, branch, upstream).await
    }

    /// Makes sure `commit` (a full object name) is here, fetching it from `origin` when not.
    pub async fn ensure_commit(&self, commit: &str) -> Result<(), Error> {
        let object = format!("{commit}^{{commit}}");
        if self.has_ref(&object).await? {
            return Ok(());
        }
        let missing = |reason: String| Error::MissingCommit {
            commit: commit.to_owned(),
            root: self.root.display().to_string(),
            reason,
        };
        if !self.has_remote("origin").await? {
            return Err(missing("the repository has no remote `origin`".to_owned()));
        }
        let fetched = git(&self.root, &["fetch", "--quiet", "origin", commit]).await;
        match (fetched, self.has_ref(&object).await?) {
            (_, true) => Ok(()),
            (Err(error), false) => Err(missing(error.to_string())),
            (Ok(_), false) => Err(missing("origin does not have it".to_owned())),
        }
    }

    async fn has_ref(&self, name: &str) -> Result<bool, Error> {
        Ok(succeeds(&self.root, &["rev-parse", "--verify", "--quiet", name]).await?)
    }

    async fn reattach(&self, path: &Path, branch: &str) -> Result<Worktree, Error> {
        let path_text = path.display().to_string();
        {
            let _adding = WORKTREE_ADD.lock().await;
            git(
                &self.root,
                &["worktree", "add", "--quiet", &path_text, branch],
            )
            .await?;
        }
        let base_commit = git(&self.root, &["rev-parse", &start_ref(branch)]).await?;
        Ok(Worktree {
            path: path.to_path_buf(),
            branch: branch.to_owned(),
            base_commit,
        })
    }

    /// Removes an agent's worktree when its work is done; the branch (and its start ref) stay,
    /// so a later follow-up attaches it again. A worktree that is already gone is fine.
    pub async fn release(&self, path: &Path) -> Result<(), Error> {
        if !path.join(".git").exists() {
            return Ok(());
        }
        let path_text = path.display().to_string();
        git(&self.root, &["worktree", "remove", "--force", &path_text]).await?;
        Ok(())
    }

    async fn existing(
        &self,
        path: &Path,
        branch: &str,
        upstream: &[String],
    ) -> Result<Option<Worktree>, Error> {
        if !path.join(".git").exists() {
            return Ok(None);
        }
        let current = git(path, &["symbolic-ref", "--short", "HEAD"]).await?;
        if current != branch {
            return Err(Error::BranchExists(branch.to_owned()));
        }
        let start = ["rev-parse", "--verify", "--quiet", &start_ref(branch)];
        if let Ok(base_commit) = git(path, &start).await {
            return Ok(Some(Worktree {
                path: path.to_path_buf(),
                branch: branch.to_owned(),
                base_commit,
            }));
        }
        // No start ref: the engine stopped (was killed) while it prepared this worktree, after
        // `worktree add` and before the last merge. No agent has worked here; finish the merges
        // (those done already are up to date), a merge cut short included.
        if succeeds(path, &["rev-parse", "--verify", "--quiet", "MERGE_HEAD"]).await? {
            git(path, &["merge", "--abort"]).await?;
        }
        merge_upstream(path, branch, upstream).await.map(Some)
    }
}

/// Merges the upstream branches into the new worktree in order, then records where the
/// agent's own work starts: a ref, so that a retried attempt (or a restarted engine) counts
/// its commits from the same point.
async fn merge_upstream(path: &Path, branch: &str, upstream: &[String]) -> Result<Worktree, Error> {
    for upstream_branch in upstream {
        merge(path, upstream_branch, &["--no-edit"]).await?;
    }
    let base_commit = git(path, &["rev-parse", "HEAD"]).await?;
    git(path, &["update-ref", &start_ref(branch), &base_commit]).await?;
    Ok(Worktree {
        path: path.to_path_buf(),
        branch: branch.to_owned(),
        base_commit,
    })
}

/// Where an agent's branch started, after its upstream merges.
fn start_ref(branch: &str) -> String {
    format!("refs/murmur/start/{branch}")
}

/// Merges `branch` into the checkout at `dir` (`how`: the merge's own flags); on a conflict,
/// aborts and names the files, and any other failure is git's own error.
async fn merge(dir: &Path, branch: &str, how: &[&str]) -> Result<(), Error> {
    let mut args = vec![
        "-c",
        "user.name=murmur",
        "-c",
        "user.email=murmur@localhost",
        "merge",
        "--quiet",
    ];
    args.extend_from_slice(how);
    args.push(branch);
    let Err(failed) = git(dir, &args).await else {
        return Ok(());
    };
    let conflicted = git(dir, &["diff", "--name-only", "--diff-filter=U"]).await?;
    if conflicted.is_empty() {
        return Err(failed.into());
    }
    git(dir, &["merge", "--abort"]).await?;
    Err(Error::MergeConflict {
        branch: branch.to_owned(),
        files: conflicted.lines().map(str::to_owned).collect(),
    })
}

impl Worktree {
    /// Commits on the branch since it started, and their diff stat.
    pub async fn changes(&self) -> Result<Changes, Error> {
        let range = format!("{}..HEAD", self.base_commit);
        let count = git(&self.path, &["rev-list", "--count", "--no-merges", &range]).await?;
        let diff_stat = git(
            &self.path,
            &["diff", "--shortstat", &self.base_commit, "HEAD"],
        )
        .await?;
        Ok(Changes {
            commits: count.parse().unwrap_or(0),
            diff_stat,
        })
    }

    /// The full diff against where the branch started (for `out: diff`).
    pub async fn diff(&self) -> Result<String, Error> {
        Ok(git(&self.path, &["diff", &self.base_commit, "HEAD"]).await?)
    }

    /// Whether the worktree was marked prepared (see [`Worktree::mark_prepared`]).
    pub async fn is_prepared(&self) -> Result<bool, Error> {
        let marker = prepared_ref(&self.branch);
        Ok(succeeds(&self.path, &["rev-parse", "--verify", "--quiet", &marker]).await?)
    }

    /// Records that the repository's prepare hook completed here, so that a retried attempt
    /// does not run it again, and runs it when it was cut short.
    pub async fn mark_prepared(&self) -> Result<(), Error> {
        git(
            &self.path,
            &["update-ref", &prepared_ref(&self.branch), "HEAD"],
        )
        .await?;
        Ok(())
    }
}

fn prepared_ref(branch: &str) -> String {
    format!("refs/murmur/prepared/{branch}")
}

impl Repository {
    /// What `branch` changed since it left the base branch (`git diff base...branch`).
    pub async fn branch_diff(&self, branch: &str) -> Result<String, Error> {
        let range = format!("{}...{branch}", self.base);
        Ok(git(&self.root, &["diff", &range]).await?)
    }

    /// Whether the repository has a remote of that name.
    pub async fn has_remote(&self, name: &str) -> Result<bool, Error> {
        let remotes = git(&self.root, &["remote"]).await?;
        Ok(remotes.lines().any(|remote| remote == name))
    }
}

impl Worktree {
    /// Pushes the branch to `remote`, setting it as upstream.
    pub async fn push(&self, remote: &str) -> Result<(), Error> {
        git(
            &self.path,
            &["push", "--quiet", "--set-upstream", remote, &self.branch],
        )
        .await?;
        Ok(())
    }
}

impl Repository {
    /// Merges `branch` into the base branch with a merge commit; returns the new base commit.
    /// Works in the user's checkout only when it is on the base branch and clean; otherwise
    /// in a temporary worktree, so the checkout is never disturbed.
    pub async fn merge_into_base(
        &self,
        branch: &str,
        message: &str,
        scratch: &Path,
    ) -> Result<String, Error> {
        let current = git(&self.root, &["symbolic-ref", "--quiet", "--short", "HEAD"])
            .await
            .ok();
        if current.as_deref() == Some(self.base.as_str()) {
            self.ensure_clean().await?;
            merge(&self.root, branch, &["--no-ff", "-m", message]).await?;
            return Ok(git(&self.root, &["rev-parse", "HEAD"]).await?);
        }
        let path = scratch.display().to_string();
        {
            let _adding = WORKTREE_ADD.lock().await;
            git(
                &self.root,
                &["worktree", "add", "--quiet", &path, &self.base],
            )
            .await?;
        }
        let merged = merge(scratch, branch, &["--no-ff", "-m", message]).await;
        let head = git(scratch, &["rev-parse", "HEAD"]).await;
        git(&self.root, &["worktree", "remove", "--force", &path]).await?;
        merged?;
        Ok(head?)
    }
}

impl Repository {
    /// The configured URL of `remote`, as written (not rewritten by `insteadOf`).
    pub async fn remote_url(&self, remote: &str) -> Result<Option<String>, Error> {
        let key = format!("remote.{remote}.url");
        Ok(git(&self.root, &["config", "--get", &key])
            .await
            .ok()
            .filter(|url| !url.is_empty()))
    }
}

/// Housekeeping for `murmur runs prune`: finding and removing what finished runs left.
impl Repository {
    /// The repository at `root` with no base branch: removing worktrees and branches needs
    /// none, and a checkout on a detached HEAD must still be prunable.
    pub fn for_housekeeping(root: PathBuf) -> Self {
        Self {
            root,
            base: String::new(),
        }
    }

    /// The local branches whose names start with `prefix` (e.g. `murmur/FLIGHT/RUN/`).
    pub async fn branches_under(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let listed = git(
            &self.root,
            &["for-each-ref", "--format=%(refname)", "refs/heads/murmur/"],
        )
        .await?;
        // Filtered here, not by git's pattern: a flight name may hold glob characters.
        Ok(listed
            .lines()
            .filter_map(|name| name.strip_prefix("refs/heads/"))
            .filter(|branch| branch.starts_with(prefix))
            .map(str::to_owned)
            .collect())
    }

    /// Whether Murmur made `branch` (it records where every branch it makes started).
    pub async fn is_agent_branch(&self, branch: &str) -> Result<bool, Error> {
        self.has_ref(&start_ref(branch)).await
    }

    /// Whether the local branch exists.
    pub async fn has_branch(&self, branch: &str) -> Result<bool, Error> {
        self.has_ref(&format!("refs/heads/{branch}")).await
    }

    /// Every worktree's folder with the branch checked out there, the user's own checkout
    /// included (a detached one has none and is left out).
    pub async fn checked_out_branches(&self) -> Result<Vec<(PathBuf, String)>, Error> {
        let listed = git(&self.root, &["worktree", "list", "--porcelain"]).await?;
        let mut found = Vec::new();
        let mut folder = None;
        for line in listed.lines() {
            if let Some(path) = line.strip_prefix("worktree ") {
                folder = Some(PathBuf::from(path));
            } else if let (Some(branch), Some(path)) =
                (line.strip_prefix("branch refs/heads/"), &folder)
            {
                found.push((path.clone(), branch.to_owned()));
            }
        }
        Ok(found)
    }

    /// Deletes an agent's branch and Murmur's refs for it (where it started, whether it was
    /// prepared). Refuses, returning false, a branch Murmur did not make: it is the user's.
    pub async fn delete_agent_branch(&self, branch: &str) -> Result<bool, Error> {
        if !self.is_agent_branch(branch).await? {
            return Ok(false);
        }
        if self.has_branch(branch).await? {
            git(&self.root, &["branch", "--quiet", "-D", branch]).await?;
        }
        for marker in [start_ref(branch), prepared_ref(branch)] {
            if self.has_ref(&marker).await? {
                git(&self.root, &["update-ref", "-d", &marker]).await?;
            }
        }
        Ok(true)
    }

    /// Drops git's records of worktrees whose folders are gone, so their branches can be
    /// checked out again.
    pub async fn prune_worktrees(&self) -> Result<(), Error> {
        git(&self.root, &["worktree", "prune"]).await?;
        Ok(())
    }
}
