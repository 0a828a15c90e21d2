//! The effects of committed `gate_opened` events that the engine checks itself. `ci` (the
//! workspace's check command) and `review` (a reviewer session over the diff) run on the
//! machine that holds the agent's workspace: they go to the placement of the agent's pool as an
//! attempt whose runtime is the check (`RuntimeSpec::Check`), like an agent's turn, and come
//! back with a typed verdict. `merge` acts on the repository, not on a machine, and stays here.
//! `approve` waits for a person instead. Each check may run twice (a restart repeats an
//! unanswered one), so each is repeatable.

use std::path::PathBuf;
use std::sync::Arc;

use murmur_protocol::{AttemptFailure, AttemptSpec, AttemptUpdate, FailureKind, Finished};
use murmur_runtime::github;
use murmur_runtime::workspace::{self, Repository};
use tokio::sync::{mpsc, oneshot};

use murmur_attempt::Settings;
use murmur_attempt::secrets::Mask;

use super::environment::AgentEnvironment;
use super::launch::Message;
use super::placement::{AttemptHandle, Placement};
use crate::clock::Clock;
use crate::event::GateKind;
use crate::store::Store;

/// What a check found: passed (a note), failed (feedback for the agent), broken (the agent
/// fails). The machine's verdict, as the protocol carries it.
pub use murmur_protocol::Verdict as GateOutcome;

/// How many machines a check may lose before it counts as broken: a machine that died is
/// not the agent's failure, so its check runs again on another (from the agent's branch).
const LOST_MACHINES_TOLERATED: u32 = 3;

/// One gate check, as the driver decided it.
pub struct GateCheck {
    pub index: usize,
    pub attempt: u32,
    pub gate: GateKind,
    pub work: CheckWork,
}

/// Who checks the gate.
pub enum CheckWork {
    /// `ci`, `review`: the machine holding the agent's workspace, through its pool's placement.
    Placed(Box<PlacedCheck>),
    /// `merge`: the engine, on the repository.
    Merge(Box<MergeCheck>),
    /// Nothing can be checked (no check command, no branch, no reviewer): said at once.
    Broken(String),
}

/// A `ci` or `review` check handed to a placement.
pub struct PlacedCheck {
    /// Its key names the check (`SLUG:GATE:VERSION`), so that it never shares an update
    /// stream with an attempt of the agent, nor with an earlier opening of the same gate.
    pub spec: AttemptSpec,
    pub placement: Arc<dyn Placement>,
    /// The agents' environment: the check gets their secrets, sealed to its machine.
    pub environment: AgentEnvironment,
    pub store: Store,
}

/// Everything a `merge` needs, gathered by the driver.
pub struct MergeCheck {
    pub slug: String,
    pub repository: PathBuf,
    /// The agent's worktree; a branch merges only when it exists.
    pub worktree: PathBuf,
    pub branch: Option<String>,
    pub prs: Vec<String>,
    /// A scratch folder for merging without touching the user's checkout.
    pub scratch: PathBuf,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// How this host reaches GitHub.
    pub settings: Settings,
}

/// Starts the check in a task; returns the handle that stops it. The check's end always
/// comes back as a `Message::Gate`, a stopped one too (the driver waits for it).
pub fn check(check: GateCheck, messages: mpsc::UnboundedSender<Message>) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(async move {
        let (index, attempt, gate) = (check.index, check.attempt, check.gate);
        if gate == GateKind::Approve {
            return;
        }
        let outcome = match check.work {
            CheckWork::Placed(placed) => on_machine(*placed, stopped).await,
            CheckWork::Merge(merge_check) => merge(&merge_check).await,
            CheckWork::Broken(reason) => GateOutcome::Broken(reason),
        };
        let _ = messages.send(Message::Gate {
            index,
            attempt,
            gate,
            outcome,
        });
    });
    stop
}

/// Runs the check on a machine of the agent's pool, again on another when its machine is lost.
async fn on_machine(check: PlacedCheck, stopped: oneshot::Receiver<()>) -> GateOutcome {
    let key = check.spec.key.clone();
    // `None` once the driver asked for the stop.
    let mut stopped = Some(stopped);
    for _ in 0..=LOST_MACHINES_TOLERATED {
        let (updates, received) = mpsc::unbounded_channel();
        let (handle, mask) = match hand_over(&check, updates).await {
            Ok(started) => started,
            Err(reason) => return GateOutcome::Broken(reason),
        };
        match follow(handle, received, &mut stopped).await {
            Ok(finished) => {
                let verdict = finished.verdict.map(|verdict| masked(verdict, &mask));
                return verdict.unwrap_or_else(|| {
                    GateOutcome::Broken(format!("the machine that ran check {key} gave no verdict (is `murmur worker` older than the server?)"))
                });
            }
            Err(failure) if failure.kind == FailureKind::Lost && stopped.is_some() => {
                tracing::warn!(check = %key, "the machine running the check was lost; running it again on another");
            }
            Err(failure) => return GateOutcome::Broken(failure.message),
        }
    }
    GateOutcome::Broken(format!(
        "check {key} lost its machine {} times",
        LOST_MACHINES_TOLERATED + 1
    ))
}

/// Hands the check to its placement, its secrets sealed to the machine that takes it; what
/// masks their values in its verdict here too (the machine masks them first).
async fn hand_over(
    check: &PlacedCheck,
    updates: mpsc::UnboundedSender<AttemptUpdate>,
) -> Result<(AttemptHandle, Mask), String> {
    let spec = check.spec.clone();
    if !check.environment.has_secrets() {
        let handle = check.placement.start(spec, updates);
        return Ok((handle.map_err(|e| e.to_string())?, Mask::default()));
    }
    let secrets = check.environment.open(&check.store).await?;
    let mask = Mask::new(&secrets);
    let handle = check.placement.start_sealed(spec, secrets, updates);
    Ok((handle.map_err(|e| e.to_string())?, mask))
}

fn masked(verdict: GateOutcome, mask: &Mask) -> GateOutcome {
    match verdict {
        GateOutcome::Passed(text) => GateOutcome::Passed(mask.apply(text)),
        GateOutcome::Failed(text) => GateOutcome::Failed(mask.apply(text)),
        GateOutcome::Broken(text) => GateOutcome::Broken(mask.apply(text)),
    }
}

/// The check's end; a channel that closes without one means its machine was lost. A stop is
/// passed on, and the end still awaited, so nothing of the check outlives its report.
async fn follow(
    handle: AttemptHandle,
    mut updates: mpsc::UnboundedReceiver<AttemptUpdate>,
    stopped: &mut Option<oneshot::Receiver<()>>,
) -> Result<Finished, AttemptFailure> {
    let mut handle = Some(handle);
    loop {
        let asked = async {
            match stopped.as_mut() {
                Some(stop) => {
                    let _ = stop.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            update = updates.recv() => match update {
                Some(AttemptUpdate::Ended { outcome }) => return outcome,
                // Where it runs, and its output, are the machine's business: the verdict
                // carries what the agent needs.
                Some(_) => {}
                None => return Err(AttemptFailure::new(
                    FailureKind::Lost,
                    "the machine running the check stopped reporting",
                )),
            },
            // A dropped sender is a stop too: the driver is gone.
            () = asked => {
                *stopped = None;
                if let Some(handle) = handle.take() {
                    handle.stop();
                }
            }
        }
    }
}

async fn merge(check: &MergeCheck) -> GateOutcome {
    let repository = match Repository::open(&check.repository, None).await {
        Ok(repository) => repository,
        Err(error) => return GateOutcome::Broken(error.to_string()),
    };
    if check.prs.is_empty() {
        let branch = match worktree_of(check) {
            Ok(branch) => branch,
            Err(broken) => return broken,
        };
        return merge_branch(check, &repository, &branch).await;
    }
    let mut merged = Vec::new();
    for pr in &check.prs {
        let outcome = match pr.strip_prefix("local:") {
            Some(id) => merge_local(check, &repository, id).await,
            None => merge_on_github(check, pr).await,
        };
        match outcome {
            GateOutcome::Passed(note) => merged.push(note),
            other => return other,
        }
    }
    GateOutcome::Passed(merged.join("; "))
}

async fn merge_branch(check: &MergeCheck, repository: &Repository, branch: &str) -> GateOutcome {
    let message = format!("Merge {branch} (murmur: {})", check.slug);
    match repository
        .merge_into_base(branch, &message, &check.scratch)
        .await
    {
        Ok(commit) => GateOutcome::Passed(format!(
            "merged {branch} into {} at {commit}",
            repository.base
        )),
        Err(workspace::Error::MergeConflict { files, .. }) => GateOutcome::Failed(format!(
            "The `merge` gate failed: your branch `{branch}` conflicts with `{}` in: {}. Merge `{}` into your branch, resolve the conflicts, and commit.",
            repository.base,
            files.join(", "),
            repository.base
        )),
        Err(error) => GateOutcome::Broken(error.to_string()),
    }
}

async fn merge_local(check: &MergeCheck, repository: &Repository, id: &str) -> GateOutcome {
    let pr = match check.store.pull_request(id).await {
        Ok(Some(pr)) => pr,
        Ok(None) => return GateOutcome::Broken(format!("pull request local:{id} is not recorded")),
        Err(error) => return GateOutcome::Broken(error.to_string()),
    };
    if pr.state == "merged" {
        return GateOutcome::Passed(format!("local:{id} was already merged"));
    }
    let outcome = merge_branch(check, repository, &pr.branch).await;
    if let GateOutcome::Passed(_) = outcome
        && let Err(error) = check.store.mark_merged(id, &check.clock.stamp()).await
    {
        return GateOutcome::Broken(error.to_string());
    }
    outcome
}

async fn merge_on_github(check: &MergeCheck, url: &str) -> GateOutcome {
    let Some(token) = check.settings.github.token.as_deref() else {
        return GateOutcome::Broken(format!(
            "merging {url} needs a GitHub token: set GITHUB_TOKEN (or MURMUR_GITHUB_TOKEN)"
        ));
    };
    match github::merge(&check.settings.github.api_url, token, url).await {
        Ok(()) => GateOutcome::Passed(format!("merged {url}")),
        Err(github::Error::Refused {
            status: 405 | 409,
            message,
            ..
        }) => GateOutcome::Failed(format!(
            "The `merge` gate failed: GitHub will not merge {url}: {message}. Bring your branch up to date with the base branch and resolve any conflicts."
        )),
        Err(error) => GateOutcome::Broken(error.to_string()),
    }
}

/// The agent's branch, when its worktree exists; a merge has nothing to merge otherwise.
fn worktree_of(check: &MergeCheck) -> Result<String, GateOutcome> {
    match &check.branch {
        Some(branch) if check.worktree.join(".git").exists() => Ok(branch.clone()),
        _ => Err(GateOutcome::Broken(format!(
            "the `merge` gate needs the agent's git branch, and agent `{}` has none (is the flight in a git repository?)",
            check.slug
        ))),
    }
}
