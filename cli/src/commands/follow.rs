//! Driving a run in the foreground: events printed as they are committed (the live view on a
//! terminal, plain lines or JSON otherwise), and Ctrl-C handled the way people expect.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use murmur_engine::executor::{Committed, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::Exit;
use crate::commands::live::LiveView;
use crate::commands::view;
use crate::context::exit_for;
use crate::output::{emit, emit_line};
use crate::terminal;

/// Drives the run until it ends. The first Ctrl-C asks whether to cancel; a second one
/// detaches (the run is interrupted here and `murmur runs resume` continues it).
pub async fn drive(executor: &Executor, id: &str, json: bool) -> anyhow::Result<Exit> {
    // While this process drives, its agents call back (`murmur spawn`, `murmur mcp`) through
    // its agent API; children they spawn are driven here too.
    let limits = crate::config::Config::load(&executor.repository)?
        .agents
        .limits();
    let (executor, _agent_api) = murmur_server::agent_api::loopback(executor, limits)
        .await
        .context("cannot serve the agent API on a loopback port")?;
    let executor = &executor;
    // The view reads the stored states before the driver commits anything, so the events it
    // then receives are exactly the ones that follow them.
    let live = live_view(executor, id, json).await?;
    let (observer, events) = mpsc::unbounded_channel::<Committed>();
    let (cancel, canceled) = oneshot::channel();
    let driving = {
        let executor = executor.clone();
        let id = id.to_owned();
        tokio::spawn(async move { executor.drive_until(&id, observer, canceled).await })
    };
    let paused = Arc::new(AtomicBool::new(false));
    let printing = tokio::spawn(print_events(events, json, live, paused.clone()));
    let outcome = wait_or_interrupt(driving, cancel, &paused).await;
    let status = match outcome.with_context(|| {
        format!("run {id} stopped; fix the cause, then `murmur runs resume {id}` continues it")
    })? {
        Some(status) => status,
        None => {
            murmur_engine::executor::stop_processes(id);
            eprintln!(
                "\ndetached: run {id} is interrupted; `murmur runs resume {id}` continues it, `murmur runs cancel {id}` cancels it"
            );
            return Ok(Exit::Failure);
        }
    };
    let _ = printing.await;
    if !json {
        let agents = executor.store.agents(id).await?;
        print_summary(&view::agents_table(&crate::views::agents(&agents)));
        eprintln!("run {id}: {status}");
    }
    Ok(exit_for(status))
}

async fn live_view(executor: &Executor, id: &str, json: bool) -> anyhow::Result<Option<LiveView>> {
    if !terminal::live_view_wanted(json) {
        return Ok(None);
    }
    let row = executor.store.run(id).await?;
    let agents = crate::views::agents(&executor.store.agents(id).await?);
    let slugs: Vec<String> = agents.iter().map(|a| a.slug.clone()).collect();
    let short = id.get(..12).unwrap_or(id);
    let mut view = LiveView::new(format!("run {short} of {}", row.flight), &slugs);
    view.restore(&row.status, &agents);
    Ok(Some(view))
}

/// The agents' table after a run, on stderr: cut to the terminal's width there, since it is
/// the last thing the live view's reader sees.
pub fn print_summary(table: &str) {
    if std::io::stderr().is_terminal() {
        eprint!(
            "\n{}",
            terminal::fit_lines(table, terminal::stderr_size().columns)
        );
    } else {
        eprint!("\n{table}");
    }
}

/// The run's final status, or `None` when the user detached.
async fn wait_or_interrupt(
    driving: tokio::task::JoinHandle<
        Result<murmur_engine::RunStatus, murmur_engine::executor::Error>,
    >,
    cancel: oneshot::Sender<()>,
    paused: &AtomicBool,
) -> anyhow::Result<Option<murmur_engine::RunStatus>> {
    tokio::pin!(driving);
    let mut cancel = Some(cancel);
    let (answers, mut answer) = mpsc::unbounded_channel::<bool>();
    let mut asking = false;
    loop {
        tokio::select! {
            result = &mut driving => return Ok(Some(result.context("the run's driver stopped unexpectedly")??)),
            _ = tokio::signal::ctrl_c() => {
                if asking || !std::io::stdin().is_terminal() {
                    return Ok(None);
                }
                asking = true;
                paused.store(true, Ordering::SeqCst);
                eprint!("\nCancel this run? [y/N] (Ctrl-C again to detach and leave it resumable) ");
                let answers = answers.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                    let _ = answers.send(line.trim().eq_ignore_ascii_case("y"));
                });
            }
            Some(yes) = answer.recv() => {
                asking = false;
                paused.store(false, Ordering::SeqCst);
                if yes && let Some(cancel) = cancel.take() {
                    eprintln!("canceling: running agents are being stopped");
                    let _ = cancel.send(());
                }
            }
        }
    }
}

/// Prints committed events until the driver closes the channel: JSON lines, plain lines, or
/// the live view redrawn once for every batch of events that arrived together and every
/// quarter second (not while a question is on screen), at the terminal's size of the moment.
pub async fn print_events(
    mut events: mpsc::UnboundedReceiver<Committed>,
    json: bool,
    mut live: Option<LiveView>,
    paused: Arc<AtomicBool>,
) {
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let mut was_paused = false;
    loop {
        tokio::select! {
            committed = events.recv() => {
                let Some(committed) = committed else { break };
                show(&committed, json, live.as_mut());
                while let Ok(committed) = events.try_recv() {
                    show(&committed, json, live.as_mut());
                }
            }
            _ = redraw.tick(), if live.is_some() => {}
        }
        let Some(view) = live.as_mut() else { continue };
        if paused.load(Ordering::SeqCst) {
            was_paused = true;
            continue;
        }
        if std::mem::take(&mut was_paused) {
            view.start_below();
        }
        emit(&view.frame(terminal::size()));
    }
    if let Some(view) = live.as_mut() {
        emit(&view.frame(terminal::size()));
    }
}

fn show(committed: &Committed, json: bool, live: Option<&mut LiveView>) {
    match live {
        Some(view) => view.record(committed),
        None if json => emit_line(&view::committed_json(committed)),
        None => emit_line(&view::committed_line(committed)),
    }
}
