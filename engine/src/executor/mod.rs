//! The imperative shell around [`RunModel`]: it commits each decision to the store, and only
//! then starts or stops agents. Effects are keyed by (run, agent, attempt), so a resumed run
//! starts a new attempt for work that was in flight and never repeats a finished agent.

mod claimed;
mod driver;
mod environment;
mod gates;
mod launch;
mod leases;
pub mod placement;
mod pools;
mod pushed;
mod workspaces;

use std::path::PathBuf;
use std::sync::Arc;

use murmur_parser::Flight;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::event::Event;
use crate::model::TransitionError;
use crate::run::{self, PrepareError};
use crate::state::RunStatus;
use crate::store::{self, NewRun, Store};
pub use claimed::PreparedRun;
pub use driver::Verdict;
use driver::{Driver, History};
pub use environment::AgentEnvironment;
pub use leases::{DEFAULT_TTL, LeaseCounts, Leases, RunLease};
pub use murmur_attempt::{ClaudeSettings, CodexSettings, GitHubSettings};
pub use placement::{AttemptHandle, LocalPlacement, Placement, PlacementError, Placements};
pub(crate) use pools::RunPools;
pub use pools::{LOCAL_POOL, Pools};
pub use workspaces::WorkspaceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("the run's event log does not replay: {0}")]
    Replay(#[from] TransitionError),
    #[error("the flight stored with run {0} no longer parses; it cannot be resumed")]
    StoredFlight(String),
    #[error(transparent)]
    Persona(#[from] crate::persona::Error),
    #[error("run {0} did not fail and was not canceled, so there is nothing to retry")]
    NothingToRetry(String),
    #[error("run has no agent `{0}`")]
    NoAgent(String),
    #[error("agent `{slug}` is not waiting for approval (it is {state})")]
    NotAwaitingApproval {
        slug: String,
        state: crate::state::AgentState,
    },
    #[error(
        "agent `{slug}` is {state}: it takes no follow-ups (`murmur runs retry {run}` runs it again)"
    )]
    CannotFollowUp {
        run: String,
        slug: String,
        state: crate::state::AgentState,
    },
    #[error(
        "run {run} is {status}: its agents take no follow-ups (`murmur runs retry {run}` runs it again)"
    )]
    RunEnded { run: String, status: RunStatus },
    #[error("agent `{slug}` is {state}: only {wanted} agents can be {}", if *.wanted == crate::state::AgentState::Idle { "put to sleep" } else { "woken" })]
    NotResting {
        slug: String,
        state: crate::state::AgentState,
        wanted: crate::state::AgentState,
    },
    #[error("agent `{slug}` already ended: {state}")]
    AlreadyEnded {
        slug: String,
        state: crate::state::AgentState,
    },
    #[error(
        "run {run} is driven by {holder}{}; it goes on there (`murmur runs logs {run} --follow` shows it)",
        since_text(.since)
    )]
    Driven {
        run: String,
        holder: String,
        since: String,
    },
    #[error(
        "run {0} was taken over by another process while this one could not renew its lease; this process stopped its agents"
    )]
    LeaseLost(String),
    /// Another process ended the run (a cancel) while this one drove it.
    #[error("run {run} was {status} by another process")]
    EndedElsewhere { run: String, status: RunStatus },
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

fn since_text(since: &str) -> String {
    if since.is_empty() {
        String::new()
    } else {
        format!(" since {since}")
    }
}

/// A committed event, as observers (the live view, `runs logs`) see it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: i64,
    pub at: String,
    pub event: Event,
}

pub struct StartRequest<'a> {
    pub flight_name: &'a str,
    pub flight_path: Option<&'a str>,
    pub source: &'a str,
    pub flight: &'a Flight,
    pub inputs: &'a [String],
    /// The trigger's payload (a webhook event), for `${{ event.* }}`.
    pub event: Option<&'a serde_json::Value>,
}

#[derive(Clone)]
pub struct Executor {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Machines of the local pool.
    pub slots: usize,
    /// Agents' working folders are created below this.
    pub work_root: PathBuf,
    /// The repository the flight belongs to, given to agents as `MURMUR_REPO`.
    pub repository: PathBuf,
    pub claude: ClaudeSettings,
    pub codex: CodexSettings,
    /// First wait before a failed attempt runs again (`retries`); doubles each time.
    pub retry_backoff: std::time::Duration,
    pub github: GitHubSettings,
    /// The workspace's check command, which the `ci` gate runs on an agent's branch.
    pub check_command: Option<String>,
    /// The run leases this process holds: only the holder of a run's lease drives it.
    pub leases: Leases,
    /// Pools whose machines are not this host's slots (a `workers` pool): where their
    /// attempts go. Every other pool runs on the local placement.
    pub placements: Placements,
    /// Pool settings the driver applies (`sleep_after`).
    pub pools: Pools,
    /// What agents keep of the machine's environment and which secrets they get.
    pub environment: AgentEnvironment,
    /// Gives every attempt's process its agent identity (`MURMUR_API_URL`,
    /// `MURMUR_AGENT_TOKEN`) while this process serves the agent API; `None` gives none.
    pub identity: Option<crate::identity::Issuer>,
    /// How the agents of a workspace's run branch and where its flight's agents run
    /// (`Executor::in_workspace`); empty for the implicit workspace.
    pub workspace: crate::workspace::RunSettings,
}

impl Executor {
    /// How this host reaches the agent runtimes and GitHub.
    pub fn machine_settings(&self) -> murmur_attempt::Settings {
        murmur_attempt::Settings {
            claude: self.claude.clone(),
            codex: self.codex.clone(),
            github: self.github.clone(),
        }
    }

    /// Slots on this host, with a machine key of their own made in memory.
    pub fn local_placement(&self) -> std::sync::Arc<dyn Placement> {
        std::sync::Arc::new(LocalPlacement::new(murmur_attempt::Machine {
            work_root: self.work_root.clone(),
            settings: self.machine_settings(),
            clones: false,
        }))
    }

    /// Records a new run, after checking its inputs and that every agent can run here.
    pub async fn create(&self, request: &StartRequest<'_>) -> Result<String, Error> {
        let inputs = run::resolve_inputs(request.flight, request.inputs)?;
        let agents = run::agents_of(request.flight);
        let has_check = self.check_command.is_some();
        run::check_runnable(request.flight, &agents, &self.repository, has_check)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let slugs: Vec<String> = agents.iter().map(|a| a.slug.clone()).collect();
        let inputs = serde_json::to_value(&inputs).unwrap_or_default();
        self.store
            .create_run(&NewRun {
                id: &id,
                flight: request.flight_name,
                flight_path: request.flight_path,
                source: request.source,
                digest: &run::digest(request.source),
                inputs: &inputs,
                created_at: &self.clock.stamp(),
                agents: &slugs,
                event: request.event,
            })
            .await?;
        Ok(id)
    }

    /// Runs (or resumes) a run until it ends. Every committed event is sent to `observer`.
    pub async fn drive(
        &self,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
    ) -> Result<RunStatus, Error> {
        let (_keep, cancel) = oneshot::channel();
        self.drive_until(run_id, observer, cancel).await
    }

    /// As [`Self::drive`]; sending on `cancel` cancels the run (running agents are stopped).
    pub async fn drive_until(
        &self,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
        cancel: oneshot::Receiver<()>,
    ) -> Result<RunStatus, Error> {
        let row = self.store.run(run_id).await?;
        // Boxed: a drive is a deep future, and callers nest it further.
        Box::pin(self.drive_row(row, false, observer, cancel)).await
    }

    /// As [`Self::drive_until`] for a run this process has just created, whose row it knows
    /// ([`PreparedRun::created_row`]): unless another driver held it meanwhile, nothing of it
    /// is read back. A commit of another process racing it (a `murmur runs cancel`) is taken
    /// in when the driver's first commit conflicts, as for any driver.
    pub async fn drive_created(
        &self,
        row: crate::store::RunRow,
        observer: mpsc::UnboundedSender<Committed>,
        cancel: oneshot::Receiver<()>,
    ) -> Result<RunStatus, Error> {
        Box::pin(self.drive_row(row, true, observer, cancel)).await
    }

    async fn drive_row(
        &self,
        row: crate::store::RunRow,
        created: bool,
        observer: mpsc::UnboundedSender<Committed>,
        cancel: oneshot::Receiver<()>,
    ) -> Result<RunStatus, Error> {
        let run_id = row.id.clone();
        let lease = self
            .leases
            .acquire(&self.store, &self.clock, &run_id)
            .await?;
        let never_driven = lease.previous.epoch == 0 && lease.previous.owner.is_none();
        let history = if created && never_driven {
            History::Unwritten
        } else {
            History::Stored
        };
        // A run of a workspace works in this host's mirror of its repository.
        let executor = match self.for_run(&run_id).await {
            Ok(executor) => executor,
            Err(error) => {
                self.leases.release(&self.store, &run_id, &lease).await;
                return Err(error.into());
            }
        };
        let mut driver = match Driver::from_row(&executor, row, observer, history).await {
            Ok(driver) => driver,
            Err(error) => {
                self.leases.release(&self.store, &run_id, &lease).await;
                return Err(error);
            }
        };
        let ended = driver.drive_with(lease, cancel).await;
        if let Some(lease) = driver.take_lease() {
            self.leases.release(&self.store, &run_id, &lease).await;
        }
        ended
    }

    /// Prepares a failed or canceled run to run again: failed, skipped and canceled agents
    /// go back to waiting; succeeded agents are kept and never repeated. Drive it afterwards.
    pub async fn retry(&self, run_id: &str) -> Result<(), Error> {
        let (observer, _) = mpsc::unbounded_channel();
        let executor = self.for_run(run_id).await?;
        let mut driver = Driver::load(&executor, run_id, observer).await?;
        driver.retry_now().await
    }

    /// Cancels a run no process is driving. A process driving it notices the new version
    /// within half a second and stops its agents.
    pub async fn cancel(&self, run_id: &str) -> Result<RunStatus, Error> {
        let (observer, _) = mpsc::unbounded_channel();
        let mut driver = Driver::load(self, run_id, observer).await?;
        driver.cancel_now().await
    }
}

impl Executor {
    /// A person's decision at an agent's `approve` gate. The process driving the run takes
    /// it in within half a second; a run nobody drives continues on `runs resume`.
    /// A commit racing the driver's is tried again on the new state.
    pub async fn decide_gate(
        &self,
        run_id: &str,
        slug: &str,
        verdict: &Verdict,
    ) -> Result<(), Error> {
        self.record_on(run_id, Action::Decide(slug, verdict))
            .await
            .map(drop)
    }

    /// `murmur queue add`: a message for one agent, taken when its turn is over. Returns
    /// whether its completed run was reopened (then nobody drives it: drive it next).
    pub async fn queue_follow_up(
        &self,
        run_id: &str,
        slug: &str,
        text: &str,
    ) -> Result<bool, Error> {
        self.record_on(run_id, Action::FollowUp(slug, text)).await
    }

    /// `murmur sleep` (`sleep: true`) and `murmur wake`: the driving process puts the idle
    /// agent's machine to sleep, or wakes the sleeping agent on its machine.
    pub async fn request_rest(&self, run_id: &str, slug: &str, sleep: bool) -> Result<(), Error> {
        self.record_on(run_id, Action::Rest(slug, sleep))
            .await
            .map(drop)
    }

    /// `murmur kill`: cancels one agent of a run; the run ends as after a failure.
    pub async fn kill(&self, run_id: &str, slug: &str) -> Result<(), Error> {
        self.record_on(run_id, Action::Kill(slug)).await.map(drop)
    }

    /// Records an action on a run another process may be driving: a commit that races the
    /// driver's is tried again on the new state.
    async fn record_on(&self, run_id: &str, action: Action<'_>) -> Result<bool, Error> {
        let (observer, _) = mpsc::unbounded_channel();
        let mut driver = Driver::load(self, run_id, observer).await?;
        let mut tries = 0;
        loop {
            let recorded = match action {
                Action::Decide(slug, verdict) => {
                    driver.decide_gate_now(slug, verdict).await.map(|()| false)
                }
                Action::FollowUp(slug, text) => driver.queue_follow_up_now(slug, text).await,
                Action::Kill(slug) => driver.kill_now(slug).await.map(|()| false),
                Action::Rest(slug, sleep) => {
                    driver.request_rest_now(slug, sleep).await.map(|()| false)
                }
            };
            match recorded {
                // The driver committed meanwhile (it may do so every few milliseconds): catch
                // up on its events, which is quick, and try again on the new state.
                Err(Error::Store(store::Error::Conflict { .. })) if tries < RECORD_TRIES => {
                    tries += 1;
                    driver.catch_up().await?;
                }
                other => return other,
            }
        }
    }
}

/// How often an act recorded on a busy run is tried again before giving up.
const RECORD_TRIES: u32 = 100;

/// What another process records on a run: a person's or an operator's act.
#[derive(Clone, Copy)]
enum Action<'a> {
    Decide(&'a str, &'a Verdict),
    FollowUp(&'a str, &'a str),
    Kill(&'a str),
    Rest(&'a str, bool),
}

/// Kills every process this machine runs for `run_id` (agents and whatever they started).
/// For a process that stops driving a run without finishing it: the run stays resumable,
/// and its in-flight attempts will start again.
pub fn stop_processes(run_id: &str) -> usize {
    murmur_runtime::kill_marked("MURMUR_RUN_ID", run_id)
}

/// How many agents a run of this flight has (a zero-agent flight has its one root agent).
pub fn agent_count(flight: &Flight) -> usize {
    run::agents_of(flight).len()
}
