//! The attempt a placement runs: everything decided before it starts, with paths relative to
//! the machine that runs it.

use serde::{Deserialize, Serialize};

use crate::CheckSpec;

/// Which attempt of which agent: unique in a store, and the key events are acknowledged by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptKey {
    pub run_id: String,
    pub slug: String,
    pub attempt: u32,
}

impl std::fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.run_id, self.slug, self.attempt)
    }
}

/// One attempt of one agent, as the driver decided it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptSpec {
    pub key: AttemptKey,
    /// What the agent works on: its rendered prompt, or the follow-up sent into its session.
    pub prompt: String,
    pub runtime: RuntimeSpec,
    pub workspace: WorkspaceSpec,
    /// The run's context for the agent's process (`MURMUR_RUN_ID`, inputs, …). The machine adds
    /// what only it knows: where the repository and the upstream results are.
    pub env: Vec<(String, String)>,
    /// Finished upstream agents, written to the file `MURMUR_UPSTREAM_RESULTS` names.
    pub upstream: Vec<UpstreamResult>,
    /// The agent's `timeout` in seconds: the attempt is stopped when it is up.
    pub timeout_secs: Option<u64>,
    /// What else the agent's process gets in its environment: nothing of the machine's but
    /// a documented base and the names passed, plus the attempt's secrets.
    #[serde(default)]
    pub environment: EnvironmentSpec,
    /// The machine holding the agent's session and workspace (its last attempt's, or for
    /// `continues` its upstream's): a placement runs the attempt there while that machine
    /// lives, and elsewhere, from the agent's branch, once it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// The tenant of the attempt's run: a machine that belongs to a tenant (a worker
    /// registered with that tenant's token) takes that tenant's attempts only.
    pub tenant: String,
}

/// The agent's environment beyond the run's context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvironmentSpec {
    /// Variables of the machine's own environment the agent keeps (`environment.pass`).
    #[serde(default)]
    pub pass: Vec<String>,
    /// Variables set for the agent as given, over the machine's (the workspace's
    /// `defaults.environment`); the run's context and the secrets win over them. Values are
    /// data: they reach the process's environment, never a shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<(String, String)>,
    /// The attempt's secrets sealed to the machine's ephemeral key (HPKE), base64; only that
    /// machine opens them, in memory, into the agent process's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secrets: Option<String>,
}

/// How the attempt runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeSpec {
    Exec(ExecSpec),
    Claude(CodingSpec),
    Codex(CodingSpec),
    /// A gate check of the agent's work (`ci`, `review`), run where its workspace is.
    Check(CheckSpec),
}

/// An `exec` agent's script, with its `${{ }}` references already bound to variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The script, or why it cannot run (a reference the binder refused): such an attempt
    /// fails without retries, since it would fail the same way again.
    pub script: Result<String, String>,
    /// The variables the bound script reads its values from.
    pub script_env: Vec<(String, String)>,
}

/// A coding agent's turn: persona and model resolved, the session to continue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodingSpec {
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub allowed_tools: Vec<String>,
    /// The agent's own session after a crash or a follow-up, or its upstream's for `continues`.
    pub resume: Option<String>,
    pub idle_timeout_secs: u64,
}

/// The agent's git workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    /// A local path or a clone URL of the workspace's repository.
    pub repository: String,
    pub base: Option<String>,
    /// The commit a fresh worktree starts at instead of the base branch (a push's `after`).
    pub start: Option<String>,
    /// The worktree's folder below the machine's work root (`RUN/SLUG`): the agent's own, or for
    /// `continues` the one its conversation began in.
    pub worktree: String,
    /// Where an `exec` agent works when the repository is no git repository (`RUN/SLUG`).
    pub plain: String,
    pub branch: String,
    /// Upstream branches with commits, merged into a fresh worktree in `needs` order.
    pub merge: Vec<String>,
    pub out: Option<String>,
    pub pull_request: PullRequestDraft,
    /// Coding agents need a repository; an `exec` agent may run in a plain folder.
    pub required: bool,
    /// The workspace's other repositories: each is checked out on the agent's branch too, at
    /// `.murmur/repos/<name>` inside the agent's worktree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraRepository>,
    /// Upstream branches merged into a fresh worktree of each of `extra` that has them, in
    /// `needs` order: every upstream's, for its commits may be in any repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_merge: Vec<String>,
    /// For a worktree that exists already (a follow-up, a wake, a retry) whose base branch
    /// moved on: how the new base reaches the agent's branch; `None` leaves the branch as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_base: Option<FollowBase>,
    /// Where the repository comes from, for a machine that keeps its own clone (a worker):
    /// it clones from here when it reaches it, else from `repository` (the server's mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RepositoryOrigin>,
}

/// A workspace repository's origin as a worker clones it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryOrigin {
    /// A clone URL or a path; never with a credential in it.
    pub url: String,
    /// The attempt's secret holding the token git presents to the origin (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// How a moved base branch reaches a long-lived agent's branch (the workspace repository's
/// `conflict_resolution`, `none` being no `FollowBase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowBase {
    Merge,
    Rebase,
}

/// A repository of a multi-repository workspace beside the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraRepository {
    /// Its folder's name below `.murmur/repos/`.
    pub name: String,
    /// A local path or a clone URL, as `WorkspaceSpec::repository`.
    pub repository: String,
    /// Where it comes from for a machine that keeps its own clones, as `WorkspaceSpec::origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RepositoryOrigin>,
}

/// What a pull request will say, decided when the attempt starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequestDraft {
    pub id: String,
    pub title: String,
}

/// A pull request opened in the local repository (no GitHub remote): the engine records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalPullRequest {
    pub id: String,
    pub branch: String,
    pub base: String,
    pub title: String,
    pub body: String,
}

/// What a finished upstream agent hands downstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpstreamResult {
    pub slug: String,
    pub response: String,
    pub branch: Option<String>,
    pub commits: u32,
    pub prs: Vec<String>,
}
