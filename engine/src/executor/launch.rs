//! The one effect that starts work: the driver's decision as an `AttemptSpec`, handed to the
//! pool's placement. Its updates come back tagged with the agent and attempt they belong to.

use std::collections::BTreeMap;
use std::sync::Arc;

use murmur_attempt::CodingRuntime;
use murmur_attempt::secrets::Mask;
use murmur_parser::script::Bound;
use murmur_parser::{Agent, Flight};
use murmur_protocol::{
    AttemptFailure, AttemptKey, AttemptSpec, AttemptUpdate, CodingSpec, ExecSpec, FailureKind,
    Finished, LocalPullRequest, RuntimeSpec, Stream, WorkspaceSpec,
};
use tokio::sync::{mpsc, oneshot};

use super::Error;
use super::environment::AgentEnvironment;
use super::placement::{AttemptHandle, Placement};
use super::pushed::PushedBranch;
use crate::clock::Clock;
use crate::run::{self, Context, UpstreamResult};
use crate::store::{PullRequest, Store};

/// What a running agent task reports back, tagged with the attempt it belongs to.
#[expect(
    clippy::large_enum_variant,
    reason = "one `Exited` per attempt; the channel holds few messages at a time"
)]
pub enum Message {
    Line {
        index: usize,
        attempt: u32,
        stream: Stream,
        text: String,
    },
    Session {
        index: usize,
        attempt: u32,
        session_id: String,
    },
    Placed {
        index: usize,
        attempt: u32,
        machine: String,
        /// The machine holding the agent's session, gone: `machine` resumes it instead.
        instead_of: Option<String>,
    },
    /// The machine is ready and the workspace prepared.
    Running { index: usize, attempt: u32 },
    Exited {
        index: usize,
        attempt: u32,
        result: Result<Finished, AttemptFailure>,
    },
    /// A gate check's result.
    Gate {
        index: usize,
        attempt: u32,
        gate: crate::event::GateKind,
        outcome: super::gates::GateOutcome,
    },
}

/// Everything one attempt needs, gathered by the driver.
pub struct Launch<'a> {
    pub index: usize,
    pub attempt: u32,
    pub agent: &'a Agent,
    pub flight: &'a Flight,
    pub run_id: &'a str,
    pub flight_name: &'a str,
    pub inputs: &'a BTreeMap<String, String>,
    pub event: Option<&'a serde_json::Value>,
    /// A fan-out instance's item.
    pub item: Option<&'a str>,
    pub upstream: Vec<UpstreamResult>,
    /// Gate feedback or a queued message: the attempt works on this in the agent's session.
    pub follow_up: Option<String>,
    pub workspace: WorkspaceSpec,
    /// A coding agent's runtime; `None` runs the agent's script (`exec`).
    pub coding: Option<(CodingRuntime, CodingSpec)>,
    /// Issues the attempt's agent identity, when this process serves the agent API.
    pub identity: Option<&'a crate::identity::Issuer>,
    pub tenant: &'a str,
    /// The machine holding the agent's session and workspace (`AttemptSpec::affinity`).
    pub affinity: Option<String>,
    /// The claim latency of the agent's pool: observed once a machine takes the attempt.
    pub claims: Arc<crate::histogram::Histogram>,
}

/// Where a local pull request is recorded once its attempt reports it.
pub struct Recorder {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
}

/// Starts the attempt on `placement`; returns the handle that stops it.
pub fn launch(
    launch: Launch<'_>,
    placement: Arc<dyn Placement>,
    environment: &AgentEnvironment,
    recorder: Recorder,
    messages: mpsc::UnboundedSender<Message>,
) -> Result<oneshot::Sender<()>, Error> {
    let (index, attempt) = (launch.index, launch.attempt);
    let claims = Some((std::time::Instant::now(), launch.claims.clone()));
    let mut spec = spec_of(launch);
    spec.environment.pass.clone_from(&environment.pass);
    spec.environment
        .variables
        .clone_from(&environment.variables);
    let key = spec.key.clone();
    let (updates, update_rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel();
    let relay = Relay {
        index,
        attempt,
        key,
        messages,
        recorder,
        mask: Mask::default(),
        claims,
        machine: None,
        pushed: None,
    };
    if !environment.has_secrets() {
        let relay = Relay {
            pushed: PushedBranch::of(&spec.workspace, None),
            ..relay
        };
        let handle = placement.start(spec, updates)?;
        tokio::spawn(relay.run(handle, update_rx, stopped));
        return Ok(stop);
    }
    let environment = environment.clone();
    tokio::spawn(async move {
        let mut relay = relay;
        let secrets = match environment.open(&relay.recorder.store).await {
            Ok(secrets) => secrets,
            Err(error) => return relay.fail(error),
        };
        relay.mask = Mask::new(&secrets);
        relay.pushed = PushedBranch::of(&spec.workspace, Some(&secrets));
        match placement.start_sealed(spec, secrets, updates) {
            Ok(handle) => relay.run(handle, update_rx, stopped).await,
            Err(error) => relay.fail(error.to_string()),
        }
    });
    Ok(stop)
}

/// The attempt as the placement receives it: prompt, bound script, run context, timeout.
fn spec_of(launch: Launch<'_>) -> AttemptSpec {
    let context = Context {
        event: launch.event,
        run_id: launch.run_id,
        flight_name: launch.flight_name,
        inputs: launch.inputs,
        upstream: &launch.upstream,
        item: launch.item,
    };
    let prompt = match &launch.follow_up {
        Some(text) => text.clone(),
        None => run::prompt_for(launch.flight, launch.agent, &context),
    };
    // Only an `exec` agent's script runs; a coding agent's shell blocks are prompt text.
    let runtime = match launch.coding.clone() {
        Some((CodingRuntime::Claude, coding)) => RuntimeSpec::Claude(coding),
        Some((CodingRuntime::Codex, coding)) => RuntimeSpec::Codex(coding),
        None => {
            let bound = context
                .script(launch.agent)
                .unwrap_or_else(|| Ok(Bound::default()))
                .map_err(|error| format!("the script of agent `{}`: {error}", launch.agent.slug));
            let script_env = bound.as_ref().map(|b| b.env.clone()).unwrap_or_default();
            RuntimeSpec::Exec(ExecSpec {
                script: bound.map(|b| b.script),
                script_env,
            })
        }
    };
    let timeout_secs = launch
        .agent
        .timeout
        .or(launch.flight.frontmatter.timeout)
        .map(|t| t.as_secs());
    AttemptSpec {
        key: AttemptKey {
            run_id: launch.run_id.to_owned(),
            slug: launch.agent.slug.clone(),
            attempt: launch.attempt,
        },
        env: environment(&launch),
        prompt,
        runtime,
        workspace: launch.workspace,
        upstream: launch.upstream,
        timeout_secs,
        environment: Default::default(),
        affinity: launch.affinity,
        tenant: launch.tenant.to_owned(),
    }
}

/// The run context every runtime sees in its environment.
fn environment(launch: &Launch<'_>) -> Vec<(String, String)> {
    let mut env = vec![
        ("MURMUR_RUN_ID".to_owned(), launch.run_id.to_owned()),
        ("MURMUR_FLIGHT".to_owned(), launch.flight_name.to_owned()),
        ("MURMUR_AGENT".to_owned(), launch.agent.slug.clone()),
        ("MURMUR_ATTEMPT".to_owned(), launch.attempt.to_string()),
    ];
    if let Some(text) = &launch.follow_up {
        env.push(("MURMUR_FOLLOW_UP".to_owned(), text.clone()));
    }
    if let Some(issuer) = launch.identity {
        env.extend(issuer.environment(&crate::identity::Grant {
            tenant: launch.tenant.to_owned(),
            run: launch.run_id.to_owned(),
            slug: launch.agent.slug.clone(),
            attempt: launch.attempt,
        }));
    }
    env.extend(
        launch
            .inputs
            .iter()
            .map(|(name, value)| (input_variable(name), value.clone())),
    );
    env
}

/// `MURMUR_INPUT_<NAME>`, upper-cased, `-` as `_`.
fn input_variable(name: &str) -> String {
    format!("MURMUR_INPUT_{}", name.to_uppercase().replace('-', "_"))
}

/// Passes one attempt's updates to the driver, and the driver's stop to the attempt.
struct Relay {
    index: usize,
    attempt: u32,
    key: AttemptKey,
    messages: mpsc::UnboundedSender<Message>,
    recorder: Recorder,
    /// The attempt's secret values: masked in what comes back from its machine too, which
    /// may run code of its own between the agent and here.
    mask: Mask,
    /// When the attempt was handed to its placement, until a machine took it.
    claims: Option<(std::time::Instant, Arc<crate::histogram::Histogram>)>,
    /// The machine running the attempt, once known.
    machine: Option<String>,
    /// The agent's branch, for a workspace repository with an origin.
    pushed: Option<PushedBranch>,
}

impl Relay {
    /// Ends an attempt that could not start, as a failure that may be retried.
    fn fail(&self, message: String) {
        let _ = self.messages.send(Message::Exited {
            index: self.index,
            attempt: self.attempt,
            result: Err(AttemptFailure::new(FailureKind::Failed, message)),
        });
    }

    async fn run(
        mut self,
        handle: AttemptHandle,
        mut updates: mpsc::UnboundedReceiver<AttemptUpdate>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        if let Some(machine) = handle.machine.clone() {
            self.machine = Some(machine.clone());
            self.pass_on(AttemptUpdate::Placed {
                machine,
                instead_of: None,
            });
        }
        let mut handle = Some(handle);
        let result = loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Some(AttemptUpdate::Ended { outcome }) => break outcome,
                    Some(AttemptUpdate::Placed { machine, instead_of }) => {
                        self.machine = Some(machine.clone());
                        self.pass_on(AttemptUpdate::Placed { machine, instead_of });
                    }
                    Some(update) => self.pass_on(update),
                    None => break Err(AttemptFailure::new(
                        FailureKind::Lost,
                        format!("the machine running attempt {} stopped reporting", self.key),
                    )),
                },
                // A dropped sender is a stop too: the driver is gone.
                _ = &mut stopped, if handle.is_some() => {
                    if let Some(handle) = handle.take() {
                        handle.stop();
                    }
                }
            }
        };
        let result = match result {
            Ok(mut finished) => {
                finished.response = self.mask.apply(finished.response);
                self.take_pushed_branch().await;
                self.record(finished).await
            }
            Err(mut failure) => {
                failure.message = self.mask.apply(failure.message);
                Err(failure)
            }
        };
        let _ = self.messages.send(Message::Exited {
            index: self.index,
            attempt: self.attempt,
            result,
        });
    }

    fn pass_on(&mut self, update: AttemptUpdate) {
        if matches!(update, AttemptUpdate::Placed { .. })
            && let Some((handed, claims)) = self.claims.take()
        {
            claims.observe(handed.elapsed());
        }
        let (index, attempt) = (self.index, self.attempt);
        let message = match update {
            AttemptUpdate::Line { stream, text } => Message::Line {
                index,
                attempt,
                stream,
                text: self.mask.apply(text),
            },
            AttemptUpdate::Session { id } => Message::Session {
                index,
                attempt,
                session_id: id,
            },
            AttemptUpdate::Placed {
                machine,
                instead_of,
            } => Message::Placed {
                index,
                attempt,
                machine,
                instead_of,
            },
            AttemptUpdate::Running => Message::Running { index, attempt },
            AttemptUpdate::Ended { .. } => return,
        };
        let _ = self.messages.send(message);
    }

    /// The agent's branch from the origin, when a machine with a clone of its own (not this
    /// host's slot) ran the attempt.
    async fn take_pushed_branch(&self) {
        if let (Some(pushed), Some(machine)) = (&self.pushed, &self.machine)
            && !super::placement::is_local_machine(machine)
        {
            pushed.take(&self.key).await;
        }
    }

    /// A local pull request is recorded before the attempt's success is reported, so the
    /// `local:ID` it delivers always names a row.
    async fn record(&self, finished: Finished) -> Result<Finished, AttemptFailure> {
        let Some(pull) = &finished.local_pull_request else {
            return Ok(finished);
        };
        let record = pull_request(&self.key, pull, self.recorder.clock.stamp());
        match self.recorder.store.open_pull_request(&record).await {
            Ok(()) => Ok(finished),
            Err(error) => Err(AttemptFailure::new(
                FailureKind::Failed,
                format!("cannot record the pull request: {error}"),
            )),
        }
    }
}

fn pull_request(key: &AttemptKey, pull: &LocalPullRequest, at: String) -> PullRequest {
    PullRequest {
        id: pull.id.clone(),
        run_id: key.run_id.clone(),
        slug: key.slug.clone(),
        branch: pull.branch.clone(),
        base: pull.base.clone(),
        title: pull.title.clone(),
        body: pull.body.clone(),
        state: "open".to_owned(),
        created_at: at,
        merged_at: None,
    }
}
