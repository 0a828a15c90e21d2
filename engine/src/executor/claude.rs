//! A `claude` attempt from start to delivery: the agent's worktree, the repository's
//! prepare hook, the CLI turn (resuming its session when there is one), then what `out`
//! asks for: a push, a pull request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use murmur_runtime::claude::{self, ClaudeRequest};
use murmur_runtime::workspace::{Repository, Worktree};
use murmur_runtime::{Line, Stream, Update, exec};
use tokio::sync::{mpsc, oneshot};

use super::launch::Finished;
use crate::clock::Clock;
use crate::event::Delivered;
use crate::persona::Persona;
use crate::store::{PullRequest, Store};

/// How long `.murmur/hooks/prepare-workspace.sh` may take before the start fails.
const PREPARE_BUDGET: Duration = Duration::from_secs(5 * 60);
const PREPARE_HOOK: &str = ".murmur/hooks/prepare-workspace.sh";

pub struct ClaudePlan {
    pub binary: PathBuf,
    pub persona: Persona,
    pub model: Option<String>,
    /// The session to continue: the agent's own after a crash, or the upstream's for `continues`.
    pub resume: Option<String>,
    pub idle_timeout: Duration,
    pub overload_backoff: Duration,
    pub repository: PathBuf,
    pub base: Option<String>,
    pub worktree: PathBuf,
    pub branch: String,
    /// Upstream branches with commits, merged into a fresh worktree in `needs` order.
    pub merge: Vec<String>,
    pub out: Option<String>,
    pub pull_request: PullRequestDraft,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
}

/// What a pull request will say, decided when the attempt starts.
pub struct PullRequestDraft {
    pub id: String,
    pub run_id: String,
    pub slug: String,
    pub title: String,
}

pub async fn attempt(
    plan: ClaudePlan,
    prompt: String,
    env: Vec<(String, String)>,
    updates: mpsc::UnboundedSender<Update>,
    stop: oneshot::Receiver<()>,
) -> Result<Finished, String> {
    let repository = Repository::open(&plan.repository, plan.base.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let fresh = !plan.worktree.join(".git").exists();
    if fresh {
        repository.ensure_clean().await.map_err(|e| e.to_string())?;
    }
    let tree = repository
        .worktree(&plan.worktree, &plan.branch, &plan.merge)
        .await
        .map_err(|e| e.to_string())?;
    if fresh {
        prepare(&tree, &env).await?;
    }
    let request = ClaudeRequest {
        binary: plan.binary.clone(),
        prompt,
        workdir: tree.path.clone(),
        model: plan.model.clone().or_else(|| plan.persona.model.clone()),
        system_prompt: Some(plan.persona.system_prompt.clone()).filter(|p| !p.is_empty()),
        allowed_tools: plan.persona.allowed_tools.clone(),
        resume: plan.resume.clone(),
        env,
        idle_timeout: plan.idle_timeout,
    };
    let outcome = run_parked(request, plan.overload_backoff, updates, stop).await?;
    let changes = tree.changes().await.map_err(|e| e.to_string())?;
    let mut delivered = Delivered {
        branch: Some(tree.branch.clone()),
        commits: changes.commits,
        diff_stat: Some(changes.diff_stat).filter(|s| !s.is_empty()),
        prs: Vec::new(),
        cost_usd: Some(outcome.cost_usd),
        turns: Some(outcome.turns),
    };
    deliver(&plan, &repository, &tree, &outcome.response, &mut delivered).await?;
    Ok(Finished {
        response: outcome.response,
        delivered,
    })
}

/// How often a turn is tried again while the model stays overloaded or rate limited.
const OVERLOAD_TRIES: u32 = 5;

/// Runs the turn; while the model is overloaded or rate limited, parks (waits, doubling the
/// wait each time) and tries again instead of failing the run. A stop ends the wait too.
async fn run_parked(
    request: ClaudeRequest,
    backoff: Duration,
    updates: mpsc::UnboundedSender<Update>,
    mut stop: oneshot::Receiver<()>,
) -> Result<claude::ClaudeOutcome, String> {
    let mut wait = backoff;
    for attempt in 1..=OVERLOAD_TRIES {
        match run_turn(request.clone(), updates.clone(), &mut stop).await {
            Err(TurnError::Overloaded(message)) if attempt < OVERLOAD_TRIES => {
                let text = format!(
                    "murmur: {message}; parked, trying again in {}s ({attempt} of {OVERLOAD_TRIES})",
                    wait.as_secs()
                );
                let _ = updates.send(Update::Line(Line {
                    stream: Stream::Stderr,
                    text,
                }));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut stop => return Err(claude::Error::Stopped.to_string()),
                }
                wait = wait.saturating_mul(2);
            }
            Err(TurnError::Overloaded(message)) => {
                return Err(format!("the model stayed overloaded: {message}"));
            }
            Err(TurnError::Other(message)) => return Err(message),
            Ok(outcome) => return Ok(outcome),
        }
    }
    Err("the model stayed overloaded".to_owned())
}

enum TurnError {
    Overloaded(String),
    Other(String),
}

impl From<claude::Error> for TurnError {
    fn from(error: claude::Error) -> Self {
        match error {
            claude::Error::Overloaded(message) => TurnError::Overloaded(message),
            other => TurnError::Other(other.to_string()),
        }
    }
}

/// One CLI turn. A session the CLI never saved (it was killed before its first reply) cannot
/// be resumed; the turn then starts a new session in the same worktree, which keeps whatever
/// the earlier attempt committed.
async fn run_turn(
    request: ClaudeRequest,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<claude::ClaudeOutcome, TurnError> {
    match claude::run(request.clone(), updates.clone(), stop).await {
        Err(claude::Error::SessionNotFound(session)) => {
            let text = format!(
                "murmur: session {session} was never saved; starting a new session in the same worktree"
            );
            let _ = updates.send(Update::Line(Line {
                stream: Stream::Stderr,
                text,
            }));
            let fresh = ClaudeRequest {
                resume: None,
                ..request
            };
            Ok(claude::run(fresh, updates, stop).await?)
        }
        other => Ok(other?),
    }
}

/// Runs the repository's prepare hook in a fresh worktree; a failure fails the start.
async fn prepare(tree: &Worktree, env: &[(String, String)]) -> Result<(), String> {
    if !tree.path.join(PREPARE_HOOK).is_file() {
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
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("{PREPARE_HOOK} failed: {error}")),
        Err(_) => Err(format!(
            "{PREPARE_HOOK} took longer than {} minutes",
            PREPARE_BUDGET.as_secs() / 60
        )),
    }
}

/// `push` pushes the branch to `origin`; `pr` pushes when there is a remote and records the
/// pull request. (GitHub's REST API is not reachable from here; see the issue notes.)
async fn deliver(
    plan: &ClaudePlan,
    repository: &Repository,
    tree: &Worktree,
    response: &str,
    delivered: &mut Delivered,
) -> Result<(), String> {
    let out = plan.out.as_deref().unwrap_or("");
    if !matches!(out, "push" | "pr") {
        return Ok(());
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
    if out == "pr" {
        let draft = &plan.pull_request;
        let record = PullRequest {
            id: draft.id.clone(),
            run_id: draft.run_id.clone(),
            slug: draft.slug.clone(),
            branch: tree.branch.clone(),
            base: repository.base.clone(),
            title: draft.title.clone(),
            body: response.to_owned(),
            state: "open".to_owned(),
            created_at: plan.clock.stamp(),
            merged_at: None,
        };
        plan.store
            .open_pull_request(&record)
            .await
            .map_err(|e| e.to_string())?;
        delivered.prs.push(format!("local:{}", draft.id));
    }
    Ok(())
}
