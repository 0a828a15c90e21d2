//! The one effect that starts work: launching an agent's attempt with its runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use murmur_parser::script::Bound;
use murmur_parser::{Agent, Flight};
use murmur_runtime::{Line, Update, exec};
use tokio::sync::{mpsc, oneshot};

use super::Error;
use super::claude::{self, ClaudePlan};
use super::codex::{self, CodexPlan};
use super::workspace::{self, WorkspacePlan};
use crate::event::Delivered;
use crate::run::{self, Context, UpstreamResult};

/// What a running agent task reports back, tagged with the attempt it belongs to.
pub enum Message {
    Line {
        index: usize,
        attempt: u32,
        line: Line,
    },
    Session {
        index: usize,
        attempt: u32,
        session_id: String,
    },
    Exited {
        index: usize,
        attempt: u32,
        result: Result<Finished, String>,
    },
    /// A gate check's result.
    Gate {
        index: usize,
        attempt: u32,
        gate: crate::event::GateKind,
        outcome: super::gates::GateOutcome,
    },
}

/// A successful attempt's answer and deliverables.
pub struct Finished {
    pub response: String,
    pub delivered: Delivered,
}

/// How this attempt runs.
pub enum RuntimePlan {
    Exec,
    Claude(Box<ClaudePlan>),
    Codex(Box<CodexPlan>),
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
    pub work_root: &'a Path,
    pub repository: &'a Path,
    pub workspace: WorkspacePlan,
    pub runtime: RuntimePlan,
}

/// Starts the attempt in a task; returns the handle that stops it.
pub fn launch(
    launch: Launch<'_>,
    messages: mpsc::UnboundedSender<Message>,
) -> Result<oneshot::Sender<()>, Error> {
    let Launch { index, attempt, .. } = launch;
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
    let run_dir = launch.work_root.join(launch.run_id);
    let results_path = write_upstream_results(&run_dir, &launch.agent.slug, &launch.upstream)?;
    let env = environment(&launch, &results_path);
    let (updates, update_rx) = mpsc::unbounded_channel();
    // Awaited before the exit is reported, so an attempt's last lines never arrive after it.
    let forwarding = tokio::spawn(forward(update_rx, messages.clone(), index, attempt));
    let (stop, stopped) = oneshot::channel();
    let plain = run_dir.join(&launch.agent.slug);
    // Only an `exec` agent's script runs; a coding agent's shell blocks are prompt text.
    let script = match launch.runtime {
        RuntimePlan::Exec => context
            .script(launch.agent)
            .unwrap_or_else(|| Ok(Bound::default()))
            .map_err(|error| format!("the script of agent `{}`: {error}", launch.agent.slug)),
        _ => Ok(Bound::default()),
    };
    let timeout = launch
        .agent
        .timeout
        .or(launch.flight.frontmatter.timeout)
        .map(|t| t.as_std());
    let attempt_work = Attempt {
        timeout,
        workspace: launch.workspace,
        runtime: launch.runtime,
        plain,
        script,
        prompt,
        env,
    };
    tokio::spawn(async move {
        let result = attempt_work.run(updates, stopped).await;
        let _ = forwarding.await;
        let _ = messages.send(Message::Exited {
            index,
            attempt,
            result,
        });
    });
    Ok(stop)
}

/// One attempt, owned by its task: workspace, runtime, delivery.
struct Attempt {
    workspace: WorkspacePlan,
    runtime: RuntimePlan,
    /// Where an `exec` agent works when the folder is no git repository.
    plain: PathBuf,
    /// The script with its references bound to variables, or why it cannot run.
    script: Result<Bound, String>,
    prompt: String,
    env: Vec<(String, String)>,
    /// The agent's `timeout`: the attempt is stopped (its whole process tree) when it is up.
    timeout: Option<Duration>,
}

impl Attempt {
    async fn run(
        self,
        updates: mpsc::UnboundedSender<Update>,
        stopped: oneshot::Receiver<()>,
    ) -> Result<Finished, String> {
        let script = self.script?;
        let prepared = workspace::prepare(&self.workspace, &self.env).await?;
        let workdir = match &prepared {
            Some(prepared) => prepared.tree.path.clone(),
            None => {
                std::fs::create_dir_all(&self.plain)
                    .map_err(|e| workdir_error(&self.plain, e).to_string())?;
                self.plain.clone()
            }
        };
        let (stopped, timed_out) = with_deadline(stopped, self.timeout);
        let outcome = match self.runtime {
            RuntimePlan::Exec => {
                let mut env = self.env;
                env.extend(script.env);
                let request = exec::ExecRequest {
                    script: script.script,
                    prompt: self.prompt,
                    workdir,
                    env,
                };
                exec::run(request, updates, stopped)
                    .await
                    .map(|outcome| (outcome.response, Delivered::default()))
                    .map_err(|e| e.to_string())
            }
            RuntimePlan::Claude(plan) => {
                claude::turn(*plan, self.prompt, &workdir, self.env, updates, stopped).await
            }
            RuntimePlan::Codex(plan) => {
                codex::turn(*plan, self.prompt, &workdir, self.env, updates, stopped).await
            }
        };
        let (response, mut delivered) = match (outcome, self.timeout) {
            (Err(_), Some(limit)) if timed_out.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(format!(
                    "timed out after {} (the agent's `timeout`)",
                    murmur_parser::Duration::from_secs(limit.as_secs())
                ));
            }
            (outcome, _) => outcome?,
        };
        if let Some(prepared) = &prepared {
            workspace::deliver(&self.workspace, prepared, &response, &mut delivered).await?;
        }
        Ok(Finished {
            response,
            delivered,
        })
    }
}

/// A stop signal that also fires when `timeout` is up; the flag tells which of the two it was.
fn with_deadline(
    stop: oneshot::Receiver<()>,
    timeout: Option<Duration>,
) -> (
    oneshot::Receiver<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let Some(timeout) = timeout else {
        return (stop, Default::default());
    };
    let (mut relay, relayed) = oneshot::channel();
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = timed_out.clone();
    tokio::spawn(async move {
        tokio::select! {
            Ok(()) = stop => {}
            () = tokio::time::sleep(timeout) => flag.store(true, std::sync::atomic::Ordering::SeqCst),
            () = relay.closed() => return,
        }
        let _ = relay.send(());
    });
    (relayed, timed_out)
}

/// The run context every runtime sees in its environment.
fn environment(launch: &Launch<'_>, results_path: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("MURMUR_RUN_ID".to_owned(), launch.run_id.to_owned()),
        ("MURMUR_FLIGHT".to_owned(), launch.flight_name.to_owned()),
        ("MURMUR_AGENT".to_owned(), launch.agent.slug.clone()),
        (
            "MURMUR_REPO".to_owned(),
            launch.repository.display().to_string(),
        ),
        ("MURMUR_ATTEMPT".to_owned(), launch.attempt.to_string()),
        (
            "MURMUR_UPSTREAM_RESULTS".to_owned(),
            results_path.display().to_string(),
        ),
    ];
    if let Some(text) = &launch.follow_up {
        env.push(("MURMUR_FOLLOW_UP".to_owned(), text.clone()));
    }
    env.extend(
        launch
            .inputs
            .iter()
            .map(|(name, value)| (input_variable(name), value.clone())),
    );
    env
}

/// Tags the runtime's updates with the attempt they belong to.
async fn forward(
    mut updates: mpsc::UnboundedReceiver<Update>,
    messages: mpsc::UnboundedSender<Message>,
    index: usize,
    attempt: u32,
) {
    while let Some(update) = updates.recv().await {
        let message = match update {
            Update::Line(line) => Message::Line {
                index,
                attempt,
                line,
            },
            Update::Session(session_id) => Message::Session {
                index,
                attempt,
                session_id,
            },
        };
        let _ = messages.send(message);
    }
}

/// The JSON file `MURMUR_UPSTREAM_RESULTS` names. Agents without upstreams share one empty
/// list: a file per agent would be thousands of inode creations for a wide flight.
fn write_upstream_results(
    run_dir: &Path,
    slug: &str,
    upstream: &[UpstreamResult],
) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(run_dir).map_err(|e| workdir_error(run_dir, e))?;
    let (path, contents) = if upstream.is_empty() {
        (run_dir.join("no-upstream.json"), "[]".to_owned())
    } else {
        let json = serde_json::to_string_pretty(upstream).unwrap_or_default();
        (run_dir.join(format!("{slug}.upstream.json")), json)
    };
    if !(upstream.is_empty() && path.is_file()) {
        std::fs::write(&path, contents).map_err(|e| workdir_error(&path, e))?;
    }
    Ok(path)
}

/// `MURMUR_INPUT_<NAME>`, upper-cased, `-` as `_`.
fn input_variable(name: &str) -> String {
    format!("MURMUR_INPUT_{}", name.to_uppercase().replace('-', "_"))
}

fn workdir_error(path: &Path, source: std::io::Error) -> Error {
    Error::Workdir {
        path: path.display().to_string(),
        source,
    }
}
