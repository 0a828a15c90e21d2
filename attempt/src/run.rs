//! An attempt from start to end on this machine: workspace, runtime, timeout, delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use murmur_protocol::{
    AttemptFailure, AttemptSpec, AttemptUpdate, Delivered, FailureKind, Finished, RuntimeSpec,
    Stream,
};
use murmur_runtime::{Update, exec};
use murmur_vault::{MachineKey, SecretSet};
use tokio::sync::{mpsc, oneshot};

use crate::Machine;
use crate::clone;
use crate::files::{self, workdir_error};
use crate::secrets::{self, Mask};
use crate::turn::{CodingRuntime, CodingTurn, coding_turn};
use crate::workspace::{self, WorkspacePlan};

/// Runs the attempt; every update but the last is sent on `updates` before this returns.
pub async fn run(
    machine: &Machine,
    machine_key: Option<&MachineKey>,
    spec: AttemptSpec,
    updates: mpsc::UnboundedSender<AttemptUpdate>,
    stop: oneshot::Receiver<()>,
) -> Result<Finished, AttemptFailure> {
    let failed = |message: String| AttemptFailure::new(FailureKind::Failed, message);
    if let RuntimeSpec::Check(check) = &spec.runtime {
        let check = check.clone();
        return crate::check::run(machine, machine_key, spec, check, stop).await;
    }
    if let RuntimeSpec::Exec(exec) = &spec.runtime
        && let Err(refused) = &exec.script
    {
        return Err(AttemptFailure::new(FailureKind::Refused, refused.clone()));
    }
    let secrets = match &spec.environment.sealed_secrets {
        Some(sealed) => secrets::open(machine_key, sealed, &spec.key).map_err(failed)?,
        None => SecretSet::new(),
    };
    let run_dir = machine.work_root.join(&spec.key.run_id);
    let results =
        files::write_upstream_results(&run_dir, &spec.key.slug, &spec.upstream).map_err(failed)?;
    let mut branches = vec![spec.workspace.branch.as_str()];
    branches.extend(spec.workspace.merge.iter().map(String::as_str));
    let (repository, extra) = clone::sources_for(machine, &spec.workspace, &secrets, &branches)
        .await
        .map_err(failed)?;
    let env = files::environment(&spec, &repository, &results, &machine.settings);
    let plan = WorkspacePlan {
        repository,
        extra,
        worktree: machine.work_root.join(&spec.workspace.worktree),
        github: machine.settings.github.clone(),
        spec: spec.workspace.clone(),
    };
    let prepared = workspace::prepare(&plan, &env).await.map_err(failed)?;
    let workdir = match &prepared {
        Some(prepared) => prepared.tree.path.clone(),
        None => {
            let plain = machine.work_root.join(&spec.workspace.plain);
            std::fs::create_dir_all(&plain).map_err(|e| failed(workdir_error(&plain, &e)))?;
            plain
        }
    };
    // Sent before any line of the runtime's: the agent is `starting` until here.
    let _ = updates.send(AttemptUpdate::Running);
    let timeout = spec.timeout_secs.map(Duration::from_secs);
    let (runtime_updates, update_rx) = mpsc::unbounded_channel();
    // Awaited before the end is reported, so an attempt's last lines never arrive after it.
    let mask = Mask::new(&secrets);
    let forwarding = tokio::spawn(forward(update_rx, updates, mask.clone()));
    // Only the agent's own process gets the secrets, not the prepare hook before it.
    let mut env = env;
    env.extend(secrets::variables(&secrets));
    drop(secrets);
    let (stopped, timed_out, asked) = with_deadline(stop, timeout);
    let runtime = match &spec.runtime {
        RuntimeSpec::Codex(_) => CodingRuntime::Codex,
        _ => CodingRuntime::Claude,
    };
    let outcome = match spec.runtime {
        RuntimeSpec::Exec(exec) => {
            let mut env = env;
            env.extend(exec.script_env);
            let request = exec::ExecRequest {
                script: exec.script.unwrap_or_default(),
                prompt: spec.prompt,
                workdir,
                env,
            };
            exec::run(request, runtime_updates, stopped)
                .await
                .map(|outcome| (outcome.response, Delivered::default()))
                .map_err(|e| e.to_string())
        }
        RuntimeSpec::Claude(coding) | RuntimeSpec::Codex(coding) => {
            let turn = CodingTurn {
                runtime,
                spec: coding,
                prompt: spec.prompt,
                workdir: &workdir,
                env,
            };
            coding_turn(&machine.settings, turn, runtime_updates, stopped).await
        }
        // Ran above, before any of an agent's workspace is touched.
        RuntimeSpec::Check(_) => Err("a gate check is not an agent's turn".to_owned()),
    };
    let _ = forwarding.await;
    // The answer and an error's last stderr line are stored and shown like output lines.
    let outcome = outcome
        .map(|(response, delivered)| (mask.apply(response), delivered))
        .map_err(|error| mask.apply(error));
    let (response, mut delivered) = match outcome {
        Ok(done) => done,
        Err(_) if timed_out.load(Ordering::SeqCst) => {
            let limit = timeout.unwrap_or_default().as_secs();
            return Err(AttemptFailure::new(
                FailureKind::TimedOut,
                format!("timed out after {limit}s (the agent's `timeout`)"),
            ));
        }
        Err(error) if asked.load(Ordering::SeqCst) => {
            return Err(AttemptFailure::new(FailureKind::Stopped, error));
        }
        Err(error) => return Err(failed(error)),
    };
    let local_pull_request = match &prepared {
        Some(prepared) => workspace::deliver(&plan, prepared, &response, &mut delivered)
            .await
            .map_err(failed)?,
        None => None,
    };
    if machine.clones && prepared.is_some() {
        clone::push_back(&plan.repository, &spec.workspace.branch)
            .await
            .map_err(failed)?;
    }
    Ok(Finished {
        response,
        delivered,
        local_pull_request,
        verdict: None,
    })
}

/// A stop signal that also fires when `timeout` is up; the flags tell which of the two it was.
fn with_deadline(
    stop: oneshot::Receiver<()>,
    timeout: Option<Duration>,
) -> (oneshot::Receiver<()>, Arc<AtomicBool>, Arc<AtomicBool>) {
    let (mut relay, relayed) = oneshot::channel();
    let timed_out = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicBool::new(false));
    let (timed_out_flag, asked_flag) = (timed_out.clone(), asked.clone());
    tokio::spawn(async move {
        let deadline = async {
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A dropped handle stops the attempt too: its driver is gone.
            _ = stop => asked_flag.store(true, Ordering::SeqCst),
            () = deadline => timed_out_flag.store(true, Ordering::SeqCst),
            () = relay.closed() => return,
        }
        let _ = relay.send(());
    });
    (relayed, timed_out, asked)
}

/// The runtime's updates as the protocol's.
async fn forward(
    mut updates: mpsc::UnboundedReceiver<Update>,
    out: mpsc::UnboundedSender<AttemptUpdate>,
    mask: Mask,
) {
    while let Some(update) = updates.recv().await {
        let update = match update {
            Update::Line(line) => AttemptUpdate::Line {
                stream: match line.stream {
                    murmur_runtime::Stream::Stdout => Stream::Stdout,
                    murmur_runtime::Stream::Stderr => Stream::Stderr,
                },
                text: mask.apply(line.text),
            },
            Update::Session(id) => AttemptUpdate::Session { id },
        };
        let _ = out.send(update);
    }
}
