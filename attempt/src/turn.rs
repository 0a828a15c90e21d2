//! A coding agent's turn: Claude Code or Codex in a working folder, resuming its session when
//! there is one, parked and tried again while the model is overloaded (the runtime's CLI-agent
//! driver does both).

use std::path::Path;
use std::time::Duration;

use murmur_protocol::{CodingSpec, Delivered};
use murmur_runtime::Update;
use murmur_runtime::claude::{self, ClaudeRequest};
use murmur_runtime::cli_agent::Overload;
use murmur_runtime::codex::{self, CodexRequest};
use tokio::sync::{mpsc, oneshot};

use crate::Settings;

/// Which coding CLI runs the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodingRuntime {
    Claude,
    Codex,
}

/// One turn of a coding agent.
pub struct CodingTurn<'a> {
    pub runtime: CodingRuntime,
    pub spec: CodingSpec,
    pub prompt: String,
    pub workdir: &'a Path,
    pub env: Vec<(String, String)>,
}

/// Runs one turn; the answer, and the cost and turns it took.
pub async fn coding_turn(
    settings: &Settings,
    turn: CodingTurn<'_>,
    updates: mpsc::UnboundedSender<Update>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(String, Delivered), String> {
    let CodingTurn {
        runtime,
        spec,
        prompt,
        workdir,
        env,
    } = turn;
    let idle_timeout = Duration::from_secs(spec.idle_timeout_secs);
    match runtime {
        CodingRuntime::Claude => {
            let request = ClaudeRequest {
                binary: settings.claude.binary.clone(),
                prompt,
                workdir: workdir.to_path_buf(),
                model: spec.model,
                system_prompt: spec.system_prompt,
                allowed_tools: spec.allowed_tools,
                resume: spec.resume,
                env,
                idle_timeout,
            };
            let overload = Overload {
                backoff: settings.claude.overload_backoff,
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
        CodingRuntime::Codex => {
            let request = CodexRequest {
                binary: settings.codex.binary.clone(),
                prompt,
                workdir: workdir.to_path_buf(),
                model: spec.model,
                system_prompt: spec.system_prompt,
                resume: spec.resume,
                env,
                idle_timeout,
                extra_config: settings.codex.config.clone(),
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
    }
}
