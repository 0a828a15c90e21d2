//! One attempt of one agent, start to end: its git workspace (worktree, upstream merges, the
//! prepare hook, delivery), its runtime (`exec`, Claude Code, Codex) and its timeout; or a
//! gate check of an agent's work (`ci`, `review`) in that agent's worktree. The same code
//! runs in-process for the local pool and inside `murmur worker` on a machine.

mod check;
mod clone;
mod environ;
mod files;
mod run;
pub mod secrets;
mod settings;
mod turn;
mod workspace;

use std::path::PathBuf;
use std::sync::Arc;

use murmur_protocol::{AttemptSpec, AttemptUpdate};
use tokio::sync::{mpsc, oneshot};

/// What an agent's process keeps of the machine's environment: the engine's own gate checks
/// (`ci`, `review`) get the same.
pub use clone::folder_name as repository_folder;
pub use environ::kept_here as kept_environment;
pub use settings::{ClaudeSettings, CodexSettings, GitHubSettings, Settings};
pub use turn::{CodingRuntime, CodingTurn, coding_turn};

/// The machine an attempt runs on: where its work goes and how its runtimes are reached.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Worktrees and scratch files go below this (`ROOT/RUN/SLUG`).
    pub work_root: PathBuf,
    pub settings: Settings,
    /// The machine keeps its own clone of each workspace repository (a worker on any host):
    /// branches are fetched before an attempt and the agent's branch is pushed back after it.
    /// Off for the local pool, whose worktrees come from the repository itself.
    pub clones: bool,
}

/// Stops a running attempt (its whole process tree); dropping it stops the attempt as well.
pub struct Stop(oneshot::Sender<()>);

impl Stop {
    pub fn stop(self) {
        let _ = self.0.send(());
    }
}

/// Starts the attempt in a task. Its updates arrive in order, and the last one is always
/// `AttemptUpdate::Ended`, sent once every output line has been.
pub fn start(
    machine: Arc<Machine>,
    spec: AttemptSpec,
    updates: mpsc::UnboundedSender<AttemptUpdate>,
) -> Stop {
    start_keyed(machine, None, spec, updates)
}

/// [`start`] on a machine holding the ephemeral key the attempt's secrets are sealed to.
pub fn start_keyed(
    machine: Arc<Machine>,
    key: Option<Arc<murmur_vault::MachineKey>>,
    spec: AttemptSpec,
    updates: mpsc::UnboundedSender<AttemptUpdate>,
) -> Stop {
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(async move {
        let work = run::run(&machine, key.as_deref(), spec, updates.clone(), stopped);
        let outcome = murmur_runtime::sealed_environment(work).await;
        let _ = updates.send(AttemptUpdate::Ended { outcome });
    });
    Stop(stop)
}
