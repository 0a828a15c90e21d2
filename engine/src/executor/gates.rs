//! The effects of committed `gate_opened` events that the engine checks itself: `ci` runs the
//! workspace's check command on the agent's branch, `review` asks a reviewer agent, `merge`
//! merges the agent's pull request (or branch). `approve` waits for a person instead.
//! Each check may run twice (a restart repeats an unanswered one), so each is repeatable.

use std::collections::VecDeque;
use std::path::PathBuf;

use murmur_runtime::workspace::{self, Repository};
use murmur_runtime::{Update, exec, github};
use tokio::sync::{mpsc, oneshot};

use murmur_attempt::{CodingRuntime, CodingTurn, Settings, coding_turn};
use murmur_protocol::{CodingSpec, ExecSpec, RuntimeSpec};

use super::launch::Message;
use crate::clock::Clock;
use crate::event::GateKind;
use crate::store::Store;

/// How many trailing lines of a failed check go back to the agent.
const CHECK_TAIL_LINES: usize = 80;

/// Everything one gate check needs, gathered by the driver.
pub struct GateCheck {
    pub index: usize,
    pub attempt: u32,
    pub gate: GateKind,
    pub slug: String,
    pub repository: PathBuf,
    /// The agent's worktree; checks and reviews run there.
    pub worktree: PathBuf,
    pub branch: Option<String>,
    pub prs: Vec<String>,
    /// The workspace's check command, for `ci`.
    pub check_command: Option<String>,
    pub env: Vec<(String, String)>,
    /// The reviewer's runtime, for `review`: none when no coding runtime is configured.
    pub reviewer: Option<(CodingRuntime, CodingSpec)>,
    /// A scratch folder for merging without touching the user's checkout.
    pub scratch: PathBuf,
    pub store: Store,
    pub clock: std::sync::Arc<dyn Clock>,
    /// How this machine reaches the reviewer's runtime and GitHub.
    pub settings: Settings,
    /// What of this machine's environment the check keeps besides the documented base
    /// (`environment.pass`): a check runs the agent's code, so it sees what agents see.
    pub pass: Vec<String>,
}

/// What a check found.
pub enum GateOutcome {
    Passed(String),
    /// The agent's work does not pass; the text goes back to it as a follow-up.
    Failed(String),
    /// The gate cannot be checked at all (no check command, no branch): the agent fails.
    Broken(String),
}

/// Starts the check in a task; returns the handle that stops it.
pub fn check(check: GateCheck, messages: mpsc::UnboundedSender<Message>) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(async move {
        let (index, attempt, gate) = (check.index, check.attempt, check.gate);
        // Like an attempt, a check's processes inherit nothing of the engine's environment:
        // they get the agents' documented base, the passed names and the check's variables.
        let outcome = match gate {
            GateKind::Ci => murmur_runtime::sealed_environment(ci(&check, stopped)).await,
            GateKind::Review => murmur_runtime::sealed_environment(review(check, stopped)).await,
            GateKind::Merge => merge(&check).await,
            GateKind::Approve => return,
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

async fn ci(check: &GateCheck, stop: oneshot::Receiver<()>) -> GateOutcome {
    let Some(command) = check.check_command.clone() else {
        return GateOutcome::Broken(
            "the `ci` gate needs the workspace's check command: set `checks.command` in .murmur/murmur.yaml (for example `cargo test`)".to_owned(),
        );
    };
    if let Err(broken) = worktree_of(check) {
        return broken;
    }
    let script = RuntimeSpec::Exec(ExecSpec {
        script: Ok(command.clone()),
        script_env: Vec::new(),
    });
    let mut env = murmur_attempt::kept_environment(&script, &check.pass, &check.settings);
    env.extend(check.env.iter().cloned());
    let request = exec::ExecRequest {
        script: command.clone(),
        prompt: String::new(),
        workdir: check.worktree.clone(),
        env,
    };
    let (updates, mut lines) = mpsc::unbounded_channel();
    let tail = tokio::spawn(async move {
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
    });
    let result = exec::run(request, updates, stop).await;
    let output = tail.await.unwrap_or_default();
    match result {
        Ok(_) => GateOutcome::Passed(format!("`{command}` passed")),
        Err(exec::Error::Exit { code, .. }) => GateOutcome::Failed(format!(
            "The `ci` gate failed: the check `{command}` exited with status {code} on your branch.\n\nIts last output:\n```\n{output}\n```\n\nFix the cause, run the check yourself, and commit the fix."
        )),
        Err(error) => GateOutcome::Broken(format!("the check `{command}` could not run: {error}")),
    }
}

async fn review(check: GateCheck, stop: oneshot::Receiver<()>) -> GateOutcome {
    let branch = match worktree_of(&check) {
        Ok(branch) => branch,
        Err(broken) => return broken,
    };
    let diff = match Repository::open(&check.repository, None).await {
        Ok(repository) => repository.branch_diff(&branch).await,
        Err(error) => Err(error),
    };
    let diff = match diff {
        Ok(diff) => diff,
        Err(error) => {
            return GateOutcome::Broken(format!("cannot read the diff to review: {error}"));
        }
    };
    let prompt = review_prompt(&check.slug, &branch, &diff);
    let (updates, _) = mpsc::unbounded_channel();
    let Some((runtime, spec)) = check.reviewer.clone() else {
        return GateOutcome::Broken(
            "the `review` gate needs a coding-agent runtime (claude or codex) for its reviewer; set `runtime` on the `reviewer` persona or the flight".to_owned(),
        );
    };
    let described = match runtime {
        CodingRuntime::Claude => RuntimeSpec::Claude(spec.clone()),
        CodingRuntime::Codex => RuntimeSpec::Codex(spec.clone()),
    };
    let mut env = murmur_attempt::kept_environment(&described, &check.pass, &check.settings);
    env.extend(check.env.iter().cloned());
    let turn = CodingTurn {
        runtime,
        spec,
        prompt,
        workdir: &check.worktree,
        env,
    };
    let answer = coding_turn(&check.settings, turn, updates, stop).await;
    match answer {
        Ok((response, _)) => verdict(&response),
        Err(error) => GateOutcome::Broken(format!("the reviewer did not answer: {error}")),
    }
}

fn review_prompt(slug: &str, branch: &str, diff: &str) -> String {
    format!(
        "Review the change agent `{slug}` made on branch `{branch}` (the diff against the base branch is below; the working tree is checked out here).\n\nAnswer with `APPROVE` on the first line when it is correct and ready to merge. Otherwise answer with `REQUEST CHANGES` on the first line, followed by exactly what must change.\n\n```diff\n{diff}\n```\n"
    )
}

/// `APPROVE` on the first non-empty line passes; anything else is a request for changes.
fn verdict(response: &str) -> GateOutcome {
    let first = response
        .lines()
        .map(|line| line.trim().trim_matches(['*', '`', '#', ' ']))
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    if first.to_ascii_uppercase().starts_with("APPROVE") {
        GateOutcome::Passed(response.trim().to_owned())
    } else {
        GateOutcome::Failed(format!(
            "The `review` gate requested changes. The reviewer wrote:\n\n{}\n\nMake these changes and commit them.",
            response.trim()
        ))
    }
}

async fn merge(check: &GateCheck) -> GateOutcome {
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

async fn merge_branch(check: &GateCheck, repository: &Repository, branch: &str) -> GateOutcome {
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

async fn merge_local(check: &GateCheck, repository: &Repository, id: &str) -> GateOutcome {
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

async fn merge_on_github(check: &GateCheck, url: &str) -> GateOutcome {
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

/// The agent's branch, when its worktree exists; a gate has nothing to check otherwise.
fn worktree_of(check: &GateCheck) -> Result<String, GateOutcome> {
    match &check.branch {
        Some(branch) if check.worktree.join(".git").exists() => Ok(branch.clone()),
        _ => Err(GateOutcome::Broken(format!(
            "the `{}` gate needs the agent's git branch, and agent `{}` has none (is the flight in a git repository?)",
            check.gate, check.slug
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_on_the_first_line_passes() {
        assert!(matches!(
            verdict("**APPROVE**\nLooks good."),
            GateOutcome::Passed(_)
        ));
        assert!(matches!(verdict("\nApproved."), GateOutcome::Passed(_)));
        let GateOutcome::Failed(feedback) = verdict("REQUEST CHANGES\nRename `x`.") else {
            panic!("changes were requested");
        };
        assert!(feedback.contains("Rename `x`."), "{feedback}");
    }
}
