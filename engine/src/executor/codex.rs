//! A `codex` turn: the Codex CLI in the agent's worktree, resuming its thread when there is
//! one, parked and tried again while the model is overloaded (the runtime's CLI-agent
//! driver). A thread the CLI never saved starts afresh in the same worktree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use murmur_runtime::Update;
use murmur_runtime::codex::{self, CodexRequest, Overload};
use tokio::sync::{mpsc, oneshot};

use crate::event::Delivered;
use crate::persona::Persona;

pub struct CodexPlan {
    pub binary: PathBuf,
    pub config: Vec<String>,
    pub persona: Persona,
    pub model: Option<String>,
    pub resume: Option<String>,
    pub idle_timeout: Duration,
}

/// Runs the agent's turn in `workdir`; the answer, and the turns it took.
pub async fn turn(
    plan: CodexPlan,
    prompt: String,
    workdir: &Path,
    env: Vec<(String, String)>,
    updates: mpsc::UnboundedSender<Update>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(String, Delivered), String> {
    let request = CodexRequest {
        binary: plan.binary,
        prompt,
        workdir: workdir.to_path_buf(),
        model: plan.model.or_else(|| plan.persona.model.clone()),
        system_prompt: Some(plan.persona.system_prompt).filter(|p| !p.is_empty()),
        resume: plan.resume,
        env,
        idle_timeout: plan.idle_timeout,
        extra_config: plan.config,
    };
    // The backoff is not configurable for codex yet (no `runtimes.codex.overload_backoff`).
    let outcome = codex::turn(request, Overload::default(), updates, &mut stop)
        .await
        .map_err(|e| e.to_string())?;
    let delivered = Delivered {
        turns: Some(outcome.turns),
        ..Delivered::default()
    };
    Ok((outcome.response, delivered))
}
