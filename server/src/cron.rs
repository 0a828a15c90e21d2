//! Schedules (`on.schedule`): every owed tick of every flight of every tenant — the server's
//! own, the catalog's and each workspace's — starts one run in that tenant, exactly once, also
//! across restarts and across servers sharing the store (the tick is claimed, per tenant, in
//! the transaction that creates its run). A tick missed while the server was down runs once
//! on start.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use murmur_engine::executor::Executor;
use murmur_engine::schedule::{owed, schedule_key};
use murmur_engine::store::claims::{Claim, Claimed};
use murmur_parser::Schedule;
use serde_json::{Value, json};

use super::AppState;
use super::catalog::Known;
use super::supervisor::Trigger;
use super::workspace_flights;

/// How often schedules are looked at; ticks are whole minutes, so this is plenty.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// How often the workspaces' mirrors are fetched for the schedules of their flights: a
/// schedule committed to a workspace's repository is seen this long after at worst, also
/// with no push webhook set up.
const FETCH_EVERY: u32 = 20;

/// Checks now and then every [`CHECK_EVERY`] until the server stops.
pub async fn keep_time(state: AppState, started: DateTime<Utc>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    let mut checks: u32 = 0;
    loop {
        every.tick().await;
        checks = checks.wrapping_add(1);
        if checks.is_multiple_of(FETCH_EVERY) {
            fetch_workspaces(&state).await;
        }
        fire_due(&state, started).await;
    }
}

/// Starts a run for every tick owed now, in every tenant; returns the runs started. A
/// schedule that never fired counts from `started` (the server's start), so a new flight owes
/// no past ticks.
pub async fn fire_due(state: &AppState, started: DateTime<Utc>) -> Vec<String> {
    let mut runs = Vec::new();
    for scoped in tenants(state).await {
        runs.extend(fire_due_in(&scoped, started).await);
    }
    runs
}

/// Each tenant's state: its flights start in it alone.
async fn tenants(state: &AppState) -> Vec<AppState> {
    let tenants = match state.store().tenants().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot read the tenants for their schedules");
            return Vec::new();
        }
    };
    let mut scoped = Vec::new();
    for tenant in tenants {
        match state.for_tenant(&tenant.name).await {
            Ok(state) => scoped.push(state),
            Err(error) => {
                tracing::warn!(tenant = %tenant.name, ?error, "cannot look at a tenant's schedules");
            }
        }
    }
    scoped
}

/// Fetches every workspace's mirrors, so their flights are read as their origins have them.
async fn fetch_workspaces(state: &AppState) {
    for scoped in tenants(state).await {
        let Ok(workspaces) = scoped.store().workspaces().await else {
            continue;
        };
        for workspace in workspaces {
            if let Err(error) = scoped.executor().fetch_mirrors(&workspace).await {
                tracing::warn!(workspace = %workspace.name, %error, "cannot fetch the workspace for its schedules");
            }
        }
    }
}

/// [`fire_due`] for the flights of `state`'s tenant.
async fn fire_due_in(state: &AppState, started: DateTime<Utc>) -> Vec<String> {
    let now = state.executor().clock.now();
    let mut runs = Vec::new();
    for known in workspace_flights::all(state).await {
        for (index, schedule) in known.flight.frontmatter.on.schedule.iter().enumerate() {
            let key = schedule_key(known.workspace.as_deref(), &known.name, index);
            let Some(after) = last_tick(state, &key, started).await else {
                continue;
            };
            let Some(tick) = owed(schedule, after, now) else {
                continue;
            };
            let tick = tick.to_rfc3339_opts(SecondsFormat::Millis, true);
            let owed = Owed {
                key: &key,
                tick: &tick,
                event: tick_event(schedule, &tick),
            };
            if let Some(run_id) = start_tick(state, &known, &owed).await {
                runs.push(run_id);
            }
        }
    }
    runs
}

/// When schedule `key` last fired, else `started`; `None` when the store cannot say.
async fn last_tick(state: &AppState, key: &str, started: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match state.store().last_tick(key).await {
        Ok(Some(tick)) => {
            Some(DateTime::parse_from_rfc3339(&tick).map_or(started, |t| t.with_timezone(&Utc)))
        }
        Ok(None) => Some(started),
        Err(error) => {
            tracing::warn!(schedule = %key, %error, "cannot read the schedule's ticks");
            None
        }
    }
}

fn tick_event(schedule: &Schedule, tick: &str) -> Value {
    json!({"schedule": {"cron": schedule.cron, "timezone": schedule.timezone, "tick": tick}})
}

/// A tick a schedule owes: its key, the tick, and the event its run gets.
struct Owed<'a> {
    key: &'a str,
    tick: &'a str,
    event: Value,
}

/// Claims the tick with its run, in one transaction: whichever server commits first starts
/// the run, the others find the tick taken. A workspace's flight is read again from its
/// freshly fetched mirror and runs in the workspace. Returns the run this call started.
async fn start_tick(state: &AppState, found: &Known, owed: &Owed<'_>) -> Option<String> {
    let flight = found.name.as_str();
    let (known, executor) = match in_place(state, found).await {
        Ok(pair) => pair,
        Err(error) => return not_started(state, owed, flight, &error).await,
    };
    let run = match executor.prepare(&known.triggered_by(&owed.event)) {
        Ok(run) => run,
        Err(error) => return not_started(state, owed, flight, &error.to_string()).await,
    };
    if let Some(workspace) = &known.workspace
        && let Err(error) = state
            .store()
            .set_run_workspace(&run.id, workspace, None)
            .await
    {
        tracing::warn!(schedule = owed.key, tick = owed.tick, %error, "cannot take the tick of {flight}");
        return None;
    }
    let claim = Claim::Tick {
        schedule: owed.key,
        tick: owed.tick,
    };
    match state
        .start_runs(Some(claim), std::slice::from_ref(&run), Trigger::Schedule)
        .await
    {
        Ok(Claimed::Won) => Some(run.id),
        Ok(Claimed::Lost(_) | Claimed::Pending) => None,
        Err(error) => {
            tracing::warn!(schedule = owed.key, tick = owed.tick, %error, "cannot take the tick of {flight}");
            None
        }
    }
}

/// The flight as its run starts it, with the executor that prepares it: the server's own
/// as found, a workspace's as its origin has it now.
async fn in_place(state: &AppState, found: &Known) -> Result<(Known, Executor), String> {
    let Some(workspace) = found.workspace.as_deref() else {
        return Ok((found.clone(), state.executor().clone()));
    };
    match workspace_flights::for_start(state, &found.name, Some(workspace), None).await {
        Ok(Some(pair)) => Ok(pair),
        Ok(None) => Err(format!("the flight is gone from workspace `{workspace}`")),
        Err(error) => Err(error.message().to_owned()),
    }
}

/// Takes the tick without a run, so it is not owed (and reported) again; only the server
/// that took it reports it.
async fn not_started(
    state: &AppState,
    owed: &Owed<'_>,
    flight: &str,
    error: &str,
) -> Option<String> {
    let at = state.executor().clock.stamp();
    if let Ok(true) = state.store().claim_tick(owed.key, owed.tick, &at).await {
        tracing::warn!(schedule = owed.key, tick = owed.tick, %error, "the tick of {flight} did not start");
    }
    None
}
