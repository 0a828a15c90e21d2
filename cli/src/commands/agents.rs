//! Murmur's agent commands: `murmur ls`, `status SLUG`, `wait SLUG`, `kill SLUG`,
//! `queue add SLUG TEXT`, for the agents of runs.

use std::time::{Duration, Instant};

use murmur_engine::store::{AgentRow, RunRow, Store};
use murmur_engine::{AgentState, executor};
use serde_json::{Value, json};

use crate::Exit;
use crate::agent_cli::{AgentCommand, AgentName, QueueCommand};
use crate::cli::DbArgs;
use crate::commands::follow;
use crate::commands::runs::detach;
use crate::context::{block_on, database_url, executor, open_store, repository_for};
use crate::output::emit_line;

/// How many of the newest runs `murmur ls --all` shows, and how far back a slug is looked up.
const RECENT_RUNS: u64 = 20;
/// How often `murmur wait` looks at the store.
const WAIT_POLL: Duration = Duration::from_millis(200);

pub fn run(command: AgentCommand) -> anyhow::Result<Exit> {
    // Inside an agent these commands act for that agent, through its agent API.
    if let Some(client) = crate::agent_client::AgentClient::from_env() {
        return super::agent_calls::run(&client, command);
    }
    match command {
        AgentCommand::Ls { all, json, db } => list(&db, all, json),
        AgentCommand::Status { agent, json, db } => status(&db, &agent, json),
        AgentCommand::Wait {
            agent,
            phase,
            timeout,
            db,
        } => wait(&db, &agent, phase.as_deref(), timeout.as_deref()),
        AgentCommand::Kill { agent, db } => kill(&db, &agent),
        AgentCommand::Sleep { agent, db } => rest(&db, &agent, true),
        AgentCommand::Wake { agent, db } => rest(&db, &agent, false),
        AgentCommand::Spawn(args) => super::spawn::spawn(&args),
        AgentCommand::Queue {
            command:
                QueueCommand::Add {
                    agent,
                    text,
                    detach,
                    json,
                    db,
                },
        } => queue_add(&db, &agent, &text, detach, json),
    }
}

fn list(db: &DbArgs, all: bool, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let runs = if all {
            store.runs(RECENT_RUNS).await?
        } else {
            store.unfinished_runs().await?
        };
        let mut rows = Vec::new();
        for run in &runs {
            let parent = parent_of(&store, &run.id).await?;
            for agent in store.agents(&run.id).await? {
                let active = !AgentState::parse(&agent.state).is_some_and(AgentState::is_terminal);
                if all || active {
                    rows.push((run, agent, parent.clone()));
                }
            }
        }
        if json {
            let list: Vec<Value> = rows
                .iter()
                .map(|(run, a, parent)| agent_json(run, a, parent.as_deref()))
                .collect();
            emit_line(&serde_json::to_string_pretty(&list)?);
            return Ok(Exit::Success);
        }
        if rows.is_empty() {
            eprintln!("no agents at work (murmur ls --all shows finished ones)");
            return Ok(Exit::Success);
        }
        emit_line(&format!(
            "{:<12}  {:<16} {:<24} {:<15} {:>8}  BRANCH",
            "RUN", "FLIGHT", "AGENT", "PHASE", "ATTEMPTS"
        ));
        for (run, agent, _) in &rows {
            emit_line(&format!(
                "{:<12}  {:<16} {:<24} {:<15} {:>8}  {}",
                run.id.get(..12).unwrap_or(&run.id),
                run.flight,
                agent.slug,
                agent.state,
                agent.attempts,
                agent.branch.as_deref().unwrap_or("-")
            ));
        }
        Ok(Exit::Success)
    })
}

fn agent_json(run: &RunRow, agent: &AgentRow, parent: Option<&str>) -> Value {
    json!({
        "run": run.id, "flight": run.flight, "slug": agent.slug, "state": agent.state,
        "attempts": agent.attempts, "branch": agent.branch, "session_id": agent.session_id,
        "response": agent.response, "error": agent.error, "parent": parent,
    })
}

/// The agent that spawned `run`, as `RUN/SLUG`.
async fn parent_of(store: &Store, run: &str) -> anyhow::Result<Option<String>> {
    let spawn = store.spawned_as(run).await?;
    Ok(spawn.map(|spawn| format!("{}/{}", spawn.parent_run, spawn.parent_slug)))
}

/// The agent a name refers to, with its run.
async fn find(store: &Store, name: &AgentName) -> anyhow::Result<(RunRow, AgentRow)> {
    let (run, slug) = match (&name.run, name.slug.split_once('/')) {
        (Some(run), _) => (Some(run.as_str()), name.slug.as_str()),
        (None, Some((run, slug))) => (Some(run), slug),
        (None, None) => (None, name.slug.as_str()),
    };
    let agent = match run {
        Some(run) => {
            let row = store.run(run).await?;
            store
                .agents(&row.id)
                .await?
                .into_iter()
                .find(|agent| agent.slug == slug)
                .ok_or_else(|| anyhow::anyhow!("run {} has no agent `{slug}`", row.id))?
        }
        None => store
            .agents_named(slug, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                anyhow::anyhow!("no run has an agent `{slug}` (murmur ls --all lists them)")
            })?,
    };
    let run = store.run(&agent.run_id).await?;
    Ok((run, agent))
}

fn status(db: &DbArgs, name: &AgentName, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let (run, agent) = find(&store, name).await?;
        if json {
            let parent = parent_of(&store, &run.id).await?;
            let answer = agent_json(&run, &agent, parent.as_deref());
            emit_line(&serde_json::to_string_pretty(&answer)?);
            return Ok(Exit::Success);
        }
        let lines = [
            ("agent", agent.slug.clone()),
            (
                "run",
                format!("{} ({}, {})", run.id, run.flight, run.status),
            ),
            ("phase", agent.state.clone()),
            ("attempts", agent.attempts.to_string()),
            ("branch", agent.branch.clone().unwrap_or_else(|| "-".into())),
            ("commits", agent.commits.to_string()),
            (
                "session",
                agent.session_id.clone().unwrap_or_else(|| "-".into()),
            ),
            ("error", agent.error.clone().unwrap_or_else(|| "-".into())),
        ];
        for (key, value) in lines {
            emit_line(&format!("{key:<9}{}", crate::terminal::sanitize(&value)));
        }
        if let Some(response) = &agent.response {
            emit_line(&format!("\n{}", crate::terminal::sanitize_block(response)));
        }
        Ok(Exit::Success)
    })
}

fn wait(
    db: &DbArgs,
    name: &AgentName,
    phase: Option<&str>,
    timeout: Option<&str>,
) -> anyhow::Result<Exit> {
    let (wanted, limit) = wait_limits(phase, timeout)?;
    let repo = repository_for(None);
    let started = Instant::now();
    block_on(async {
        let store = open_store(db, &repo).await?;
        let (run, _) = find(&store, name).await?;
        let slug = name.slug.rsplit('/').next().unwrap_or(&name.slug);
        loop {
            let agent = store
                .agents(&run.id)
                .await?
                .into_iter()
                .find(|agent| agent.slug == slug)
                .ok_or_else(|| anyhow::anyhow!("run {} has no agent `{slug}`", run.id))?;
            let state = AgentState::parse(&agent.state);
            if state.is_some() && state == wanted {
                eprintln!("{slug}: {}", agent.state);
                return Ok(Exit::Success);
            }
            if let Some(state) = state.filter(|s| s.is_terminal()) {
                eprintln!("{slug}: {state}");
                let done = wanted.is_none() && state == AgentState::Completed;
                return Ok(if done { Exit::Success } else { Exit::Failure });
            }
            if limit.is_some_and(|limit| started.elapsed() >= limit) {
                eprintln!(
                    "{slug}: still {} after {}",
                    agent.state,
                    timeout.unwrap_or_default()
                );
                return Ok(Exit::Usage);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    })
}

/// `--phase` and `--timeout` of `murmur wait`, checked.
pub(crate) fn wait_limits(
    phase: Option<&str>,
    timeout: Option<&str>,
) -> anyhow::Result<(Option<AgentState>, Option<Duration>)> {
    let wanted = phase
        .map(|text| {
            AgentState::parse(text).ok_or_else(|| {
                let known: Vec<&str> = AgentState::ALL.iter().map(|s| s.as_str()).collect();
                anyhow::anyhow!("unknown phase `{text}`; phases are: {}", known.join(", "))
            })
        })
        .transpose()?;
    let limit = timeout
        .map(|text| {
            text.parse::<murmur_parser::Duration>()
                .map(|d| d.as_std())
                .map_err(|e| anyhow::anyhow!("--timeout {text}: {e}"))
        })
        .transpose()?;
    Ok((wanted, limit))
}

fn kill(db: &DbArgs, name: &AgentName) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let (run, agent) = find(&executor.store, name).await?;
        let killed = executor.kill(&run.id, &agent.slug).await;
        // Whatever the agent spawned goes down with it (after it, so that it does not see
        // its children end and end otherwise meanwhile).
        let children = executor.kill_children(&run.id, &agent.slug).await?;
        if children > 0 {
            eprintln!(
                "{} in run {}: {children} child runs canceled",
                agent.slug, run.id
            );
        }
        match killed {
            Ok(()) => {
                eprintln!("{} in run {}: canceled", agent.slug, run.id);
                Ok(Exit::Success)
            }
            Err(error @ executor::Error::AlreadyEnded { .. }) => {
                eprintln!("error: {error}");
                Ok(Exit::Failure)
            }
            Err(error) => Err(error.into()),
        }
    })
}

/// `murmur sleep` / `murmur wake`: recorded here, carried out by the process driving the run.
fn rest(db: &DbArgs, name: &AgentName, sleep: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let (run, agent) = find(&executor.store, name).await?;
        match executor.request_rest(&run.id, &agent.slug, sleep).await {
            Ok(()) => {
                let what = if sleep { "goes to sleep" } else { "wakes" };
                eprintln!("{} in run {}: {what}", agent.slug, run.id);
                Ok(Exit::Success)
            }
            Err(error @ executor::Error::NotResting { .. }) => {
                eprintln!("error: {error}");
                Ok(Exit::Failure)
            }
            Err(error) => Err(error.into()),
        }
    })
}

fn queue_add(
    db: &DbArgs,
    name: &AgentName,
    text: &str,
    background: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let (run, agent) = find(&executor.store, name).await?;
        let reopened = match executor.queue_follow_up(&run.id, &agent.slug, text).await {
            Ok(reopened) => reopened,
            Err(
                error @ (executor::Error::CannotFollowUp { .. } | executor::Error::RunEnded { .. }),
            ) => {
                eprintln!("error: {error}");
                return Ok(Exit::Failure);
            }
            Err(error) => return Err(error.into()),
        };
        eprintln!("follow-up queued for {} in run {}", agent.slug, run.id);
        if !reopened {
            return Ok(Exit::Success);
        }
        if background {
            detach(&run.id, &database_url(db, &repo)?, &repo)?;
            return Ok(Exit::Success);
        }
        follow::drive(&executor, &run.id, json).await
    })
}
