//! `murmur flight run` and `murmur runs …`: runs on the local store.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context;
use murmur_engine::executor::{self, StartRequest};
use murmur_engine::store::listing::{ListError, RunQuery};
use murmur_engine::{Clock, RunStatus, SystemClock};

use crate::Exit;
use crate::cli::{DbArgs, RunArgs, RunsPage};
use crate::commands::flight::{self, Chosen};
use crate::commands::{catalog, follow, view};
use crate::context::{block_on, database_url, executor, exit_for, open_store, repository_for};
use crate::locate;
use crate::output::{emit, emit_line};
use crate::views::{self, RunSummary};

/// A name is looked up in the local catalog first, as the server does, then in the
/// repository's flights; a path is always that file.
fn choose(args: &RunArgs) -> anyhow::Result<Result<Chosen, Exit>> {
    if let Some((saved, flight)) = catalog::local_flight_to_run(&args.flight, &args.db)? {
        return Ok(Ok(Chosen {
            name: saved.name,
            source: saved.markdown,
            flight,
            path: None,
            repo: repository_for(None),
        }));
    }
    let (loaded, flight, _) = match flight::load_valid(&args.flight)? {
        Ok(valid) => valid,
        Err(_) => return Ok(Err(Exit::Usage)),
    };
    let absolute = loaded
        .path
        .canonicalize()
        .unwrap_or_else(|_| loaded.path.clone());
    Ok(Ok(Chosen {
        name: locate::flight_name(&loaded.path).unwrap_or_else(|| "flight".to_owned()),
        source: loaded.source.text().to_owned(),
        flight,
        repo: repository_for(Some(&loaded.path)),
        path: Some(absolute),
    }))
}

pub fn start(args: &RunArgs) -> anyhow::Result<Exit> {
    match choose(args)? {
        Ok(chosen) => start_chosen(&chosen, &args.inputs, args.detach, args.json, &args.db),
        Err(exit) => Ok(exit),
    }
}

/// Records a run of the chosen flight, then drives it here (live view or line log) or, with
/// `detach`, in a background process whose run id is printed.
pub fn start_chosen(
    chosen: &Chosen,
    inputs: &[String],
    detach_it: bool,
    json: bool,
    db: &DbArgs,
) -> anyhow::Result<Exit> {
    if let Err(exit) = flight::preflight(chosen)? {
        return Ok(exit);
    }
    let Chosen { name, repo, .. } = chosen;
    block_on(async {
        let executor = executor(db, repo).await?;
        let path = chosen.path.as_ref().map(|p| p.display().to_string());
        let request = StartRequest {
            flight_name: name,
            flight_path: path.as_deref(),
            source: &chosen.source,
            flight: &chosen.flight,
            inputs,
            event: None,
        };
        let id = match executor.create(&request).await {
            Ok(id) => id,
            Err(executor::Error::Prepare(error)) => {
                eprintln!("error: {error}");
                return Ok(Exit::Usage);
            }
            Err(error) => return Err(error.into()),
        };
        if detach_it {
            detach(&id, &database_url(db, repo)?, repo)?;
            emit_line(&id);
            return Ok(Exit::Success);
        }
        eprintln!(
            "run {id} of {name} ({} agents)",
            executor::agent_count(&chosen.flight)
        );
        follow::drive(&executor, &id, json).await
    })
}

/// Continues the run in a background `murmur runs resume`, logging to .murmur/logs/RUN.log.
pub fn detach(id: &str, db: &str, repo: &Path) -> anyhow::Result<()> {
    let logs = repo.join(".murmur/logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log_path = logs.join(format!("{id}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let me = std::env::current_exe().context("cannot find the murmur binary")?;
    std::process::Command::new(me)
        .args(["runs", "resume", id, "--db", db])
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the background run")?;
    eprintln!("run {id} continues in the background; `murmur runs logs {id} --follow` shows it");
    Ok(())
}

use std::os::unix::process::CommandExt;

pub fn resume(db: &DbArgs, run: &str, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let row = executor.store.run(run).await?;
        if let Some(status) = RunStatus::parse(&row.status).filter(|s| s.is_terminal()) {
            eprintln!("run {} already ended: {status}", row.id);
            return Ok(exit_for(status));
        }
        let lease = executor.store.lease(&row.id).await?;
        if lease.is_held(&executor.clock.stamp()) {
            let driven = executor::Error::Driven {
                run: row.id.clone(),
                holder: lease.holder_text(),
                since: lease.acquired_at.unwrap_or_default(),
            };
            eprintln!("error: {driven}");
            return Ok(Exit::Usage);
        }
        warn_if_flight_changed(&row);
        follow::drive(&executor, &row.id, json).await
    })
}

/// A run keeps the flight text it started with; say so when the file has moved on since.
fn warn_if_flight_changed(row: &murmur_engine::store::RunRow) {
    let Some(path) = row.flight_path.as_deref() else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let current = murmur_engine::run::digest(murmur_parser::Source::new(&text).text());
    if current != row.digest {
        eprintln!(
            "note: {path} changed since run {} started; the run continues with the version it started with \
             (start a new run to use the new one)",
            row.id
        );
    }
}

pub fn retry(db: &DbArgs, run: &str, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let row = executor.store.run(run).await?;
        match executor.retry(&row.id).await {
            Ok(()) => {}
            Err(error @ executor::Error::NothingToRetry(_)) => {
                eprintln!("error: {error}");
                return Ok(Exit::Usage);
            }
            Err(error) => return Err(error.into()),
        }
        follow::drive(&executor, &row.id, json).await
    })
}

pub fn cancel(db: &DbArgs, run: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let row = executor.store.run(run).await?;
        if let Some(status) = RunStatus::parse(&row.status).filter(|s| s.is_terminal()) {
            eprintln!("run {} already ended: {status}", row.id);
            return Ok(Exit::Failure);
        }
        let status = executor.cancel(&row.id).await?;
        eprintln!("run {}: {status}", row.id);
        Ok(Exit::Success)
    })
}

pub fn list(db: &DbArgs, page: &RunsPage, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let query = RunQuery {
            flight: page.flight.clone(),
            status: page.status.clone(),
            cursor: page.cursor.clone(),
            limit: Some(page.limit),
        };
        let listed = match store.list_runs(&query, &views::now_stamp()).await {
            Ok(listed) => listed,
            Err(ListError::Store(error)) => return Err(error.into()),
            Err(refused) => {
                eprintln!("error: {refused}");
                return Ok(Exit::Usage);
            }
        };
        let rows: Vec<_> = listed.runs.iter().map(views::run_summary).collect();
        print_page(&rows, listed.next.as_deref(), json)
    })
}

/// A page of runs on stdout (a table, or a JSON array), and on stderr how to see the next.
pub fn print_page(rows: &[RunSummary], next: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    if json {
        emit_line(&serde_json::to_string_pretty(rows)?);
    } else {
        emit(&view::runs_table(rows));
    }
    if let Some(next) = next {
        eprintln!("more runs: add --cursor {next} (with the same --flight and --status)");
    }
    Ok(Exit::Success)
}

pub fn show(db: &DbArgs, run: &str, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let row = store.run(run).await?;
        let agents = store.agents(&row.id).await?;
        let detail = views::with_children(&store, views::run_detail(&row, &agents)).await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&detail)?);
            return Ok(Exit::Success);
        }
        emit(&view::run_text(&detail));
        Ok(Exit::Success)
    })
}

/// When `runs logs --follow` stops: 0 for a completed run, 1 for a failed or canceled one
/// (like `gh run watch --exit-status`), 3 for a run nobody drives (it would never end).
fn follow_exit(run: &murmur_engine::store::RunRow, now: &str) -> Option<Exit> {
    match RunStatus::parse(run.shown_status(now)) {
        Some(status) if status.is_terminal() => Some(exit_for(status)),
        Some(_) => None,
        None => {
            eprintln!(
                "run {id} is interrupted: no process drives it; `murmur runs resume {id}` continues it",
                id = run.id
            );
            Some(Exit::NotDriven)
        }
    }
}

pub fn logs(db: &DbArgs, run: &str, slug: Option<&str>, follow: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let row = store.run(run).await?;
        let mut after = 0;
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(300));
        loop {
            for event in store.events(&row.id, after).await? {
                after = event.seq;
                if slug.is_none() || event.slug.as_deref() == slug {
                    emit_line(&view::stored_line(&event));
                }
            }
            if !follow {
                return Ok(Exit::Success);
            }
            let now = SystemClock.stamp();
            let current = store.run(&row.id).await?;
            if let Some(exit) = follow_exit(&current, &now) {
                return Ok(exit);
            }
            poll.tick().await;
        }
    })
}
