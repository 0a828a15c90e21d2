//! A gate check on the machine that holds the agent's workspace: `ci` runs the workspace's
//! check command in the agent's worktree, `review` asks a reviewer session about the branch's
//! diff there. A worker fetches the agent's branch into its own clone first, and makes the
//! worktree again from it when the agent worked on another machine. The verdict is typed; an
//! attempt failure means the check could not run here at all (stopped, a repository that
//! cannot be reached).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use murmur_protocol::{
    AttemptFailure, AttemptSpec, CheckSpec, Delivered, FailureKind, Finished, Reviewer, Verdict,
};
use murmur_runtime::workspace::Repository;
use murmur_runtime::{Update, exec};
use murmur_vault::{MachineKey, SecretSet};
use tokio::sync::{mpsc, oneshot};

use crate::secrets::{self, Mask};
use crate::turn::{CodingRuntime, CodingTurn, coding_turn};
use crate::workspace::{self, WorkspacePlan};
use crate::{Machine, clone, environ};

/// How many trailing lines of a failed check go back to the agent.
const CHECK_TAIL_LINES: usize = 80;

/// Runs the check of `spec` (whose runtime is `check`) on this machine.
pub async fn run(
    machine: &Machine,
    machine_key: Option<&MachineKey>,
    spec: AttemptSpec,
    check: CheckSpec,
    stop: oneshot::Receiver<()>,
) -> Result<Finished, AttemptFailure> {
    let failed = |message: String| AttemptFailure::new(FailureKind::Failed, message);
    let secrets = match &spec.environment.sealed_secrets {
        Some(sealed) => secrets::open(machine_key, sealed, &spec.key).map_err(failed)?,
        None => SecretSet::new(),
    };
    let mut env = environ::of_attempt(&spec, &machine.settings);
    env.extend(spec.env.iter().cloned());
    let place = match worktree(machine, &spec, &env, &secrets).await {
        Ok(place) => place,
        Err(Refusal::Broken(reason)) => return Ok(finished(Verdict::Broken(reason))),
        Err(Refusal::Failed(message)) => return Err(failed(message)),
    };
    let mask = Mask::new(&secrets);
    env.extend(secrets::variables(&secrets));
    drop(secrets);
    let (stop, asked) = noticed(stop);
    let verdict = match check {
        CheckSpec::Ci { command } => ci(&command, &place.worktree, env, stop).await,
        CheckSpec::Review { agent, reviewer } => {
            let review = Review {
                agent: &agent,
                branch: &spec.workspace.branch,
                base: spec.workspace.base.as_deref(),
                reviewer,
            };
            review.run(machine, &place, env, stop).await
        }
    };
    if asked.load(Ordering::SeqCst) {
        return Err(AttemptFailure::new(
            FailureKind::Stopped,
            format!("check {} was stopped", spec.key),
        ));
    }
    Ok(finished(masked(verdict, &mask)))
}

/// Where the check runs: the repository (a worker's clone) and the agent's worktree in it.
struct Place {
    repository: PathBuf,
    worktree: PathBuf,
}

enum Refusal {
    /// Nothing to check: the agent fails.
    Broken(String),
    /// This machine could not get at the work (its clone): another may.
    Failed(String),
}

/// The agent's worktree on this machine. A worker fetches the agent's branch first (into the
/// clone its attempts use, of the origin when it reaches it) and, when the agent worked
/// elsewhere, checks it out again in a worktree of that clone.
async fn worktree(
    machine: &Machine,
    spec: &AttemptSpec,
    env: &[(String, String)],
    secrets: &SecretSet,
) -> Result<Place, Refusal> {
    let workspace = &spec.workspace;
    let worktree = machine.work_root.join(&workspace.worktree);
    let branches = [workspace.branch.as_str()];
    let (repository, extra) = clone::sources_for(machine, workspace, secrets, &branches)
        .await
        .map_err(Refusal::Failed)?;
    if !worktree.join(".git").exists() {
        if !machine.clones {
            return Err(Refusal::Broken(format!(
                "the agent's worktree {} is gone (is the flight in a git repository?)",
                worktree.display()
            )));
        }
        let plan = WorkspacePlan {
            repository: repository.clone(),
            extra,
            worktree: worktree.clone(),
            github: machine.settings.github.clone(),
            spec: workspace.clone(),
        };
        workspace::prepare(&plan, env).await.map_err(|error| {
            Refusal::Broken(format!(
                "cannot check out the agent's branch `{}` on this machine: {error}",
                workspace.branch
            ))
        })?;
    }
    Ok(Place {
        repository,
        worktree,
    })
}

async fn ci(
    command: &str,
    worktree: &Path,
    env: Vec<(String, String)>,
    stop: oneshot::Receiver<()>,
) -> Verdict {
    let request = exec::ExecRequest {
        script: command.to_owned(),
        prompt: String::new(),
        workdir: worktree.to_path_buf(),
        env,
    };
    let (updates, lines) = mpsc::unbounded_channel();
    let tail = tokio::spawn(tail_of(lines));
    let result = exec::run(request, updates, stop).await;
    let output = tail.await.unwrap_or_default();
    match result {
        Ok(_) => Verdict::Passed(format!("`{command}` passed")),
        Err(exec::Error::Exit { code, .. }) => Verdict::Failed(format!(
            "The `ci` gate failed: the check `{command}` exited with status {code} on your branch.\n\nIts last output:\n```\n{output}\n```\n\nFix the cause, run the check yourself, and commit the fix."
        )),
        Err(error) => Verdict::Broken(format!("the check `{command}` could not run: {error}")),
    }
}

/// The last [`CHECK_TAIL_LINES`] lines of a command's output, stdout and stderr as they came.
async fn tail_of(mut lines: mpsc::UnboundedReceiver<Update>) -> String {
    let mut tail = VecDeque::with_capacity(CHECK_TAIL_LINES);
    while let Some(update) = lines.recv().await {
        if let Update::Line(line) = update {
            if tail.len() == CHECK_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.text);
        }
    }
    Vec::from(tail).join("\n")
}

/// A `review` check: who reviews what.
struct Review<'a> {
    agent: &'a str,
    branch: &'a str,
    base: Option<&'a str>,
    reviewer: Reviewer,
}

impl Review<'_> {
    async fn run(
        self,
        machine: &Machine,
        place: &Place,
        env: Vec<(String, String)>,
        stop: oneshot::Receiver<()>,
    ) -> Verdict {
        let diff = match Repository::open(&place.repository, self.base).await {
            Ok(repository) => repository.branch_diff(self.branch).await,
            Err(error) => Err(error),
        };
        let diff = match diff {
            Ok(diff) => diff,
            Err(error) => {
                return Verdict::Broken(format!("cannot read the diff to review: {error}"));
            }
        };
        let (runtime, spec) = match self.reviewer {
            Reviewer::Claude(spec) => (CodingRuntime::Claude, spec),
            Reviewer::Codex(spec) => (CodingRuntime::Codex, spec),
        };
        let turn = CodingTurn {
            runtime,
            spec,
            prompt: review_prompt(self.agent, self.branch, &diff),
            workdir: &place.worktree,
            env,
        };
        let (updates, _) = mpsc::unbounded_channel();
        match coding_turn(&machine.settings, turn, updates, stop).await {
            Ok((response, _)) => verdict(&response),
            Err(error) => Verdict::Broken(format!("the reviewer did not answer: {error}")),
        }
    }
}

fn review_prompt(slug: &str, branch: &str, diff: &str) -> String {
    format!(
        "Review the change agent `{slug}` made on branch `{branch}` (the diff against the base branch is below; the working tree is checked out here).\n\nAnswer with `APPROVE` on the first line when it is correct and ready to merge. Otherwise answer with `REQUEST CHANGES` on the first line, followed by exactly what must change.\n\n```diff\n{diff}\n```\n"
    )
}

/// `APPROVE` on the first non-empty line passes; anything else is a request for changes.
fn verdict(response: &str) -> Verdict {
    let first = response
        .lines()
        .map(|line| line.trim().trim_matches(['*', '`', '#', ' ']))
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    if first.to_ascii_uppercase().starts_with("APPROVE") {
        Verdict::Passed(response.trim().to_owned())
    } else {
        Verdict::Failed(format!(
            "The `review` gate requested changes. The reviewer wrote:\n\n{}\n\nMake these changes and commit them.",
            response.trim()
        ))
    }
}

/// The verdict with the check's secrets masked, as an attempt's lines are.
fn masked(verdict: Verdict, mask: &Mask) -> Verdict {
    match verdict {
        Verdict::Passed(text) => Verdict::Passed(mask.apply(text)),
        Verdict::Failed(text) => Verdict::Failed(mask.apply(text)),
        Verdict::Broken(text) => Verdict::Broken(mask.apply(text)),
    }
}

fn finished(verdict: Verdict) -> Finished {
    Finished {
        response: String::new(),
        delivered: Delivered::default(),
        local_pull_request: None,
        verdict: Some(verdict),
    }
}

/// The stop signal passed on, with a flag that tells whether it was asked for (a dropped
/// handle counts: nobody waits for the verdict any more).
fn noticed(stop: oneshot::Receiver<()>) -> (oneshot::Receiver<()>, Arc<AtomicBool>) {
    let (mut relay, relayed) = oneshot::channel();
    let asked = Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop => flag.store(true, Ordering::SeqCst),
            () = relay.closed() => return,
        }
        let _ = relay.send(());
    });
    (relayed, asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_on_the_first_line_passes() {
        assert!(matches!(
            verdict("**APPROVE**\nLooks good."),
            Verdict::Passed(_)
        ));
        assert!(matches!(verdict("\nApproved."), Verdict::Passed(_)));
        let Verdict::Failed(feedback) = verdict("REQUEST CHANGES\nRename `x`.") else {
            panic!("changes were requested");
        };
        assert!(feedback.contains("Rename `x`."), "{feedback}");
    }
}
