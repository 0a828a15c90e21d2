//! The agent's git workspace around any runtime: a worktree on its own branch with its
//! upstreams merged in, the repository's prepare hook, and afterwards what `out` asks for
//! (a push, a pull request) plus the branch's commits and diff stat.

use std::path::PathBuf;
use std::time::Duration;

use murmur_protocol::{Delivered, FollowBase, LocalPullRequest, WorkspaceSpec};
use murmur_runtime::exec;
use murmur_runtime::github;
use murmur_runtime::workspace::{self, BaseMove, Repository, Worktree};
use tokio::sync::{mpsc, oneshot};

use crate::GitHubSettings;

/// How long `.murmur/hooks/prepare-workspace.sh` may take before the start fails.
const PREPARE_BUDGET: Duration = Duration::from_secs(5 * 60);
const PREPARE_HOOK: &str = ".murmur/hooks/prepare-workspace.sh";

/// The agent's workspace on this machine: the spec with its paths resolved.
pub struct WorkspacePlan {
    pub spec: WorkspaceSpec,
    pub repository: PathBuf,
    /// Where the spec's other repositories are on this machine, in its order: a worker's
    /// clones of them, or the repositories themselves.
    pub extra: Vec<PathBuf>,
    pub worktree: PathBuf,
    pub github: GitHubSettings,
}

/// A ready worktree, or `None` when the folder is no repository and none is required.
pub struct Prepared {
    repository: Repository,
    pub tree: Worktree,
}

/// Where a multi-repository workspace's other repositories are, inside the agent's worktree.
pub const EXTRA_REPOSITORIES: &str = ".murmur/repos";

pub async fn prepare(
    plan: &WorkspacePlan,
    env: &[(String, String)],
) -> Result<Option<Prepared>, String> {
    if let Some(base) = plan.spec.base.as_deref().filter(|_| clones(plan)) {
        // A base other than the clone's own branch: taken from where the clone came from.
        crate::clone::take_branch(&plan.repository, base).await?;
    }
    let repository = match Repository::open(&plan.repository, plan.spec.base.as_deref()).await {
        Ok(repository) => repository,
        Err(workspace::Error::NotARepository(_) | workspace::Error::NoBase(_))
            if !plan.spec.required =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error.to_string()),
    };
    let fresh = !plan.worktree.join(".git").exists();
    // A long-lived agent's branch (a follow-up, a wake, a retry) may have been left behind by
    // its base; a branch made now starts where the base is.
    let continued = !fresh
        || repository
            .has_branch(&plan.spec.branch)
            .await
            .map_err(|e| e.to_string())?;
    if fresh {
        repository.ensure_clean().await.map_err(|e| e.to_string())?;
        if let Some(commit) = &plan.spec.start {
            repository
                .ensure_commit(commit)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let start = plan.spec.start.as_deref();
    let mut tree = repository
        .worktree_from(&plan.worktree, &plan.spec.branch, &plan.spec.merge, start)
        .await
        .map_err(|e| e.to_string())?;
    if continued && let Some(how) = plan.spec.follow_base {
        let how = match how {
            FollowBase::Merge => BaseMove::Merge,
            FollowBase::Rebase => BaseMove::Rebase,
        };
        tree.follow_base(&repository, how)
            .await
            .map_err(|e| e.to_string())?;
    }
    prepare_extra(plan, &tree).await?;
    run_prepare_hook(&tree, env).await?;
    Ok(Some(Prepared { repository, tree }))
}

/// Whether this machine works in its own clone of the repository (a worker) rather than in
/// the repository itself.
fn clones(plan: &WorkspacePlan) -> bool {
    plan.repository != std::path::Path::new(&plan.spec.repository)
}

/// The other repositories of the workspace, each on the agent's branch at
/// `.murmur/repos/<name>` in its worktree (kept out of the first repository's status), with
/// the upstream branches it has merged in.
async fn prepare_extra(plan: &WorkspacePlan, tree: &Worktree) -> Result<(), String> {
    if plan.spec.extra.is_empty() {
        return Ok(());
    }
    exclude_extra(tree).await?;
    for (extra, source) in plan.spec.extra.iter().zip(&plan.extra) {
        let safe = !extra.name.is_empty()
            && extra
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !safe {
            return Err(format!("`{}` is not a repository folder name", extra.name));
        }
        let repository = Repository::open(source, None)
            .await
            .map_err(|e| e.to_string())?;
        let path = tree.path.join(EXTRA_REPOSITORIES).join(&extra.name);
        let mut upstream = Vec::new();
        for branch in &plan.spec.extra_merge {
            if repository
                .has_branch(branch)
                .await
                .map_err(|e| e.to_string())?
            {
                upstream.push(branch.clone());
            }
        }
        repository
            .worktree_from(&path, &plan.spec.branch, &upstream, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `/.murmur/repos/` in the first repository's `info/exclude`, once.
async fn exclude_extra(tree: &Worktree) -> Result<(), String> {
    let common = murmur_runtime::git::git(&tree.path, &["rev-parse", "--git-common-dir"])
        .await
        .map_err(|e| e.to_string())?;
    let exclude = tree.path.join(common).join("info/exclude");
    let line = format!("/{EXTRA_REPOSITORIES}/");
    let text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if text.lines().any(|l| l == line) {
        return Ok(());
    }
    if let Some(parent) = exclude.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let joined = format!(
        "{text}{}{line}\n",
        if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        }
    );
    std::fs::write(&exclude, joined).map_err(|e| format!("cannot write {}: {e}", exclude.display()))
}

/// Records the branch's commits and diff stat, then pushes or opens the pull request; a
/// pull request in the local repository comes back for the engine to record.
pub async fn deliver(
    plan: &WorkspacePlan,
    prepared: &Prepared,
    response: &str,
    delivered: &mut Delivered,
) -> Result<Option<LocalPullRequest>, String> {
    let tree = &prepared.tree;
    let changes = tree.changes().await.map_err(|e| e.to_string())?;
    delivered.branch = Some(tree.branch.clone());
    delivered.commits = changes.commits;
    delivered.diff_stat = Some(changes.diff_stat).filter(|s| !s.is_empty());
    if plan.spec.out.as_deref() == Some("diff") {
        delivered.diff = Some(tree.diff().await.map_err(|e| e.to_string())?);
    }
    if clones(plan) {
        // A worker's clones: the agent's branch of every other repository goes back to where
        // it was cloned from, as the first one's does.
        for source in &plan.extra {
            crate::clone::push_back(source, &tree.branch).await?;
        }
    }
    push_or_open(plan, prepared, response, delivered).await
}

/// Runs the repository's prepare hook in a worktree where it has not completed yet (a new
/// one, or one where an engine kill or a failure cut it short); a failure fails the start.
async fn run_prepare_hook(tree: &Worktree, env: &[(String, String)]) -> Result<(), String> {
    if !tree.path.join(PREPARE_HOOK).is_file()
        || tree.is_prepared().await.map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let request = exec::ExecRequest {
        script: format!("sh {PREPARE_HOOK}"),
        prompt: String::new(),
        workdir: tree.path.clone(),
        env: env.to_vec(),
    };
    let (lines, _) = mpsc::unbounded_channel();
    let (_keep, stop) = oneshot::channel();
    match tokio::time::timeout(PREPARE_BUDGET, exec::run(request, lines, stop)).await {
        Ok(Ok(_)) => tree.mark_prepared().await.map_err(|e| e.to_string()),
        Ok(Err(error)) => Err(format!("{PREPARE_HOOK} failed: {error}")),
        Err(_) => Err(format!(
            "{PREPARE_HOOK} took longer than {} minutes",
            PREPARE_BUDGET.as_secs() / 60
        )),
    }
}

async fn open_on_github(
    plan: &WorkspacePlan,
    repository: &Repository,
    tree: &Worktree,
    response: &str,
    owner: &str,
    repo: &str,
) -> Result<String, String> {
    let token = plan.github.token.as_deref().ok_or_else(|| {
        format!("`out: pr` on the GitHub repository {owner}/{repo} needs a token: set GITHUB_TOKEN (or MURMUR_GITHUB_TOKEN)")
    })?;
    let request = github::NewPullRequest {
        api: &plan.github.api_url,
        token,
        owner,
        repo,
        title: &plan.spec.pull_request.title,
        head: &tree.branch,
        base: &repository.base,
        body: response,
    };
    github::open(request).await.map_err(|e| e.to_string())
}

/// `push` pushes the branch to `origin`; `pr` pushes when there is a remote, and opens the
/// pull request on GitHub or, without a GitHub remote, hands it back as a local one.
async fn push_or_open(
    plan: &WorkspacePlan,
    prepared: &Prepared,
    response: &str,
    delivered: &mut Delivered,
) -> Result<Option<LocalPullRequest>, String> {
    let (repository, tree) = (&prepared.repository, &prepared.tree);
    let out = plan.spec.out.as_deref().unwrap_or("");
    if !matches!(out, "push" | "pr") {
        return Ok(None);
    }
    let has_origin = repository
        .has_remote("origin")
        .await
        .map_err(|e| e.to_string())?;
    if has_origin {
        tree.push("origin").await.map_err(|e| e.to_string())?;
    } else if out == "push" {
        return Err("`out: push` needs a remote named `origin`; add one or use `out: pr` for a local pull request".to_owned());
    }
    if out == "pr" && has_origin {
        let remote = repository
            .remote_url("origin")
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if let Some((owner, repo)) = github::repository_of(&remote) {
            let url = open_on_github(plan, repository, tree, response, &owner, &repo).await?;
            delivered.prs.push(url);
            return Ok(None);
        }
    }
    if out == "pr" {
        let draft = &plan.spec.pull_request;
        delivered.prs.push(format!("local:{}", draft.id));
        return Ok(Some(LocalPullRequest {
            id: draft.id.clone(),
            branch: tree.branch.clone(),
            base: repository.base.clone(),
            title: draft.title.clone(),
            body: response.to_owned(),
        }));
    }
    Ok(None)
}
