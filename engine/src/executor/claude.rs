//! A `claude` turn: the CLI in the agent's worktree, resuming its session when there is one,
//! parked and tried again while the model is overloaded (the runtime's CLI-agent driver).

use std::path::{Path, PathBuf};
use std::time::Duration;

use murmur_runtime::Update;
use murmur_runtime::claude::{self, ClaudeRequest, Overload};
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
    mut stop: oneshot::Receiver<()>,
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
    let overload = Overload {
        backoff: plan.overload_backoff,
        ..Overload::default()
    };
    let outcome = claude::turn(request, overload, updates, &mut stop)
        .await
        .map_err(|e| e.to_string())?;
    let delivered = Delivered {
        cost_usd: Some(outcome.cost_usd),
        turns: Some(outcome.turns),
        ..Delivered::default()
    };
    Ok((outcome.response, delivered))
}
