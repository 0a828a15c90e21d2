//! A `claude` turn: the CLI in the agent's worktree, resuming its session when there is one,
//! parked and tried again while the model is overloaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use murmur_runtime::claude::{self, ClaudeRequest};
use murmur_runtime::{Line, Stream, Update};
use tokio::sync::{mpsc, oneshot};

use crate::event::Delivered;
use crate::persona::Persona;

pub struct ClaudePlan {
    pub binary: PathBuf,
    pub persona: Persona,
    pub model: Option<String>,
    /// The session to continue: the agent's own after a crash, or the upstream's for `continues`.
    pub resume: Option<String>,
    pub idle_timeout: Duration,
    pub overload_backoff: Duration,
}

/// Runs the agent's turn in `workdir`; the answer, and the cost and turns it took.
pub async fn turn(
    plan: ClaudePlan,
    prompt: String,
    workdir: &Path,
    env: Vec<(String, String)>,
    updates: mpsc::UnboundedSender<Update>,
    stop: oneshot::Receiver<()>,
) -> Result<(String, Delivered), String> {
    let request = ClaudeRequest {
        binary: plan.binary,
        prompt,
        workdir: workdir.to_path_buf(),
        model: plan.model.or_else(|| plan.persona.model.clone()),
        system_prompt: Some(plan.persona.system_prompt).filter(|p| !p.is_empty()),
        allowed_tools: plan.persona.allowed_tools,
        resume: plan.resume,
        env,
        idle_timeout: plan.idle_timeout,
    };
    let outcome = run_parked(request, plan.overload_backoff, updates, stop).await?;
    let delivered = Delivered {
        cost_usd: Some(outcome.cost_usd),
        turns: Some(outcome.turns),
        ..Delivered::default()
    };
    Ok((outcome.response, delivered))
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
