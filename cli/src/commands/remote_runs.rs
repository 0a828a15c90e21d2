//! `murmur flight run --server` and `murmur runs … --server`: runs on a `murmur serve`, shown
//! with the same live view, line log and tables as local runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use murmur_engine::RunStatus;
use murmur_engine::executor::Committed;
use serde_json::{Value, json};

use crate::Exit;
use crate::cli::{RunArgs, RunsPage};
use crate::commands::live::LiveView;
use crate::commands::{follow, stream, view};
use crate::context::{block_on, exit_for};
use crate::output::{emit, emit_line};
use crate::remote::{self, Remote};
use crate::views::{RunDetail, RunSummary};

/// What `runs start`, `cancel` and `retry` answer.
#[derive(serde::Deserialize)]
struct Accepted {
    run_id: String,
}

pub fn start(url: &str, args: &RunArgs) -> anyhow::Result<Exit> {
    let remote = Remote::new(url)?;
    if args.flight.contains('/') || args.flight.ends_with(".md") {
        eprintln!(
            "error: with --server, give the name of a flight the server knows; `murmur set flight NAME --server {url} < {}` uploads this one",
            args.flight
        );
        return Ok(Exit::Usage);
    }
    let Some(inputs) = inputs(&args.inputs) else {
        return Ok(Exit::Usage);
    };
    let path = format!("/v1/flights/{}/runs", args.flight);
    let mut body = json!({ "inputs": inputs });
    if let Some(workspace) = &args.workspace {
        body["workspace"] = json!(workspace);
    }
    if let Some(base) = &args.base {
        body["base"] = json!(base);
    }
    let accepted: Accepted = match remote.post(&path, Some(&body)) {
        Ok(answer) => serde_json::from_value(answer).context("unexpected answer")?,
        Err(error) => {
            remote::report(error)?;
            return Ok(Exit::Usage);
        }
    };
    let id = accepted.run_id;
    if args.detach {
        emit_line(&id);
        return Ok(Exit::Success);
    }
    eprintln!("run {id} of {} on {url}", args.flight);
    follow_run(&remote, &id, args.json)
}

/// `--input NAME=VALUE` pairs as the API's `inputs` object; `None` (reported) when one is
/// malformed.
fn inputs(pairs: &[String]) -> Option<BTreeMap<String, Value>> {
    let mut inputs = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            eprintln!("error: `--input {pair}` is not NAME=VALUE");
            return None;
        };
        inputs.insert(name.trim().to_owned(), Value::String(value.to_owned()));
    }
    Some(inputs)
}

/// Follows the run's event stream until it ends; exit 0 when it completed, 1 otherwise. Ctrl-C
/// stops following and leaves the run to the server.
fn follow_run(remote: &Remote, id: &str, json: bool) -> anyhow::Result<Exit> {
    let run = run(remote, id)?;
    let live = crate::terminal::live_view_wanted(json).then(|| {
        let slugs: Vec<String> = run.agents.iter().map(|a| a.slug.clone()).collect();
        let short = id.get(..12).unwrap_or(id);
        let mut view = LiveView::new(format!("run {short} of {}", run.summary.flight), &slugs);
        view.restore(&run.summary.status, &run.agents);
        view
    });
    let (events, outcome) = stream::spawn(remote.clone(), id.to_owned());
    let detached = block_on(async {
        let paused = Arc::new(AtomicBool::new(false));
        let printing = tokio::spawn(follow::print_events(events, json, live, paused));
        tokio::select! {
            outcome = outcome => outcome.context("the event stream stopped unexpectedly")??,
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "\nstopped following: run {id} goes on on the server; `murmur runs logs {id} --follow --server URL` follows it again, `murmur runs cancel {id} --server URL` cancels it"
                );
                return Ok(Some(Exit::Failure));
            }
        }
        let _ = printing.await;
        Ok(None)
    })?;
    if let Some(exit) = detached {
        return Ok(exit);
    }
    let run = self::run(remote, id)?;
    if !json {
        follow::print_summary(&view::agents_table(&run.agents));
        eprintln!("run {id}: {}", run.summary.status);
    }
    let status = RunStatus::parse(&run.summary.status).unwrap_or(RunStatus::Failed);
    Ok(exit_for(status))
}

fn run(remote: &Remote, id: &str) -> anyhow::Result<RunDetail> {
    let answer = remote.get(&format!("/v1/runs/{id}"))?;
    serde_json::from_value(answer).context("unexpected answer from the server")
}

pub fn list(url: &str, page: &RunsPage, json: bool) -> anyhow::Result<Exit> {
    let mut params = vec![format!("limit={}", page.limit)];
    let filters = [
        ("flight", &page.flight),
        ("status", &page.status),
        ("cursor", &page.cursor),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            params.push(format!(
                "{name}={}",
                murmur_server::views::query_escape(value)
            ));
        }
    }
    let path = format!("/v1/runs?{}", params.join("&"));
    let (answer, next) = match Remote::new(url)?.get_page(&path) {
        Ok(page) => page,
        Err(error) => return refused(error),
    };
    let runs: Vec<RunSummary> = serde_json::from_value(answer).context("unexpected answer")?;
    crate::commands::runs::print_page(&runs, next.as_deref(), json)
}

pub fn show(url: &str, id: &str, json: bool) -> anyhow::Result<Exit> {
    let run = match run(&Remote::new(url)?, id) {
        Ok(run) => run,
        Err(error) => return refused(error),
    };
    if json {
        emit_line(&serde_json::to_string_pretty(&run)?);
    } else {
        emit(&view::run_text(&run));
    }
    Ok(Exit::Success)
}

pub fn logs(url: &str, id: &str, slug: Option<&str>, follow: bool) -> anyhow::Result<Exit> {
    let remote = Remote::new(url)?;
    let shown = |committed: &Committed| slug.is_none() || committed.event.slug() == slug;
    if !follow {
        let entries = match remote.get(&format!("/v1/runs/{id}/events")) {
            Ok(answer) => answer,
            Err(error) => return refused(error),
        };
        for committed in stream::entries(entries) {
            if shown(&committed) {
                emit_line(&view::committed_line(&committed));
            }
        }
        return Ok(Exit::Success);
    }
    if let Err(error) = run(&remote, id) {
        return refused(error);
    }
    let (mut events, outcome) = stream::spawn(remote, id.to_owned());
    block_on(async {
        while let Some(committed) = events.recv().await {
            if shown(&committed) {
                emit_line(&view::committed_line(&committed));
            }
        }
        outcome
            .await
            .context("the event stream stopped unexpectedly")?
    })?;
    Ok(Exit::Success)
}

pub fn cancel(url: &str, id: &str) -> anyhow::Result<Exit> {
    match Remote::new(url)?.post(&format!("/v1/runs/{id}/cancel"), None) {
        Ok(_) => {
            eprintln!("run {id}: canceling");
            Ok(Exit::Success)
        }
        Err(error) => Ok(match remote::report(error)?.code.as_str() {
            "finished" => Exit::Failure,
            _ => Exit::Usage,
        }),
    }
}

pub fn retry(url: &str, id: &str, json: bool) -> anyhow::Result<Exit> {
    let remote = Remote::new(url)?;
    if let Err(error) = remote.post(&format!("/v1/runs/{id}/retry"), None) {
        return refused(error);
    }
    follow_run(&remote, id, json)
}

fn refused(error: anyhow::Error) -> anyhow::Result<Exit> {
    remote::report(error)?;
    Ok(Exit::Usage)
}

pub fn approve(
    url: &str,
    id: &str,
    slug: &str,
    approve: bool,
    comment: Option<String>,
) -> anyhow::Result<Exit> {
    let path = format!("/v1/runs/{id}/agents/{slug}/approve");
    let body = json!({ "approve": approve, "comment": comment });
    match Remote::new(url)?.post(&path, Some(&body)) {
        Ok(_) => {
            let what = if approve { "approved" } else { "rejected" };
            eprintln!("{slug} in run {id}: {what}");
            Ok(Exit::Success)
        }
        Err(error) => Ok(match remote::report(error)?.code.as_str() {
            "not_waiting" => Exit::Failure,
            _ => Exit::Usage,
        }),
    }
}
