//! Schedules (`on.schedule`): every owed tick of every flight of every tenant starts one run
//! in that tenant, exactly once, also across restarts and across servers sharing the store
//! (the tick is claimed, per tenant, in the transaction that creates its run). A tick missed
//! while the server was down runs once on start.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use murmur_engine::executor::StartRequest;
use murmur_engine::schedule::{owed, schedule_key};
use murmur_engine::store::claims::{Claim, Claimed};
use serde_json::json;

use super::AppState;
use super::catalog;
use super::supervisor::Trigger;

/// How often schedules are looked at; ticks are whole minutes, so this is plenty.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// Checks now and then every [`CHECK_EVERY`] until the server stops.
pub async fn keep_time(state: AppState, started: DateTime<Utc>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    loop {
        every.tick().await;
        fire_due(&state, started).await;
    }
}

/// Starts a run for every tick owed now, in every tenant; returns the runs started. A
/// schedule that never fired counts from `started` (the server's start), so a new flight owes
/// no past ticks.
pub async fn fire_due(state: &AppState, started: DateTime<Utc>) -> Vec<String> {
    let tenants = match state.store().tenants().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot read the tenants for their schedules");
            return Vec::new();
        }
    };
    let mut runs = Vec::new();
    for tenant in tenants {
        // Each tenant's catalog through its own scoped state: its flights start in it alone.
        match state.for_tenant(&tenant.name).await {
            Ok(scoped) => runs.extend(fire_due_in(&scoped, started).await),
            Err(error) => {
                tracing::warn!(tenant = %tenant.name, ?error, "cannot look at a tenant's schedules");
            }
        }
    }
    runs
}

/// [`fire_due`] for the flights of `state`'s tenant.
async fn fire_due_in(state: &AppState, started: DateTime<Utc>) -> Vec<String> {
    let clock = &state.executor().clock;
    let now = clock.now();
    let mut runs = Vec::new();
    for known in catalog::flights(state).await {
        for (index, schedule) in known.flight.frontmatter.on.schedule.iter().enumerate() {
            let key = schedule_key(&known.name, index);
            let after = match state.store().last_tick(&key).await {
                Ok(Some(tick)) => {
                    DateTime::parse_from_rfc3339(&tick).map_or(started, |t| t.with_timezone(&Utc))
                }
                Ok(None) => started,
                Err(error) => {
                    tracing::warn!(schedule = %key, %error, "cannot read the schedule's ticks");
                    continue;
                }
            };
            let Some(tick) = owed(schedule, after, now) else {
                continue;
            };
            let tick = tick.to_rfc3339_opts(SecondsFormat::Millis, true);
            let event = json!({"schedule": {"cron": schedule.cron, "timezone": schedule.timezone, "tick": tick}});
            let start = StartRequest {
                flight_name: &known.name,
                flight_path: None,
                source: &known.source,
                flight: &known.flight,
                inputs: &[],
                event: Some(&event),
            };
            if let Some(run_id) = start_tick(state, &key, &tick, &start).await {
                runs.push(run_id);
            }
        }
    }
    runs
}

/// Claims `tick` of schedule `key` with its run, in one transaction: whichever server commits
/// first starts the run, the others find the tick taken. Returns the run this call started.
async fn start_tick(
    state: &AppState,
    key: &str,
    tick: &str,
    start: &StartRequest<'_>,
) -> Option<String> {
    let flight = start.flight_name;
    let run = match state.executor().prepare(start) {
        Ok(run) => run,
        Err(error) => {
            // The tick is taken without a run, so it is not owed (and reported) again; only
            // the server that took it reports it.
            let at = state.executor().clock.stamp();
            if let Ok(true) = state.store().claim_tick(key, tick, &at).await {
                tracing::warn!(schedule = key, tick, %error, "the tick of {flight} did not start");
            }
            return None;
        }
    };
    let claim = Claim::Tick {
        schedule: key,
        tick,
    };
    match state
        .start_runs(Some(claim), std::slice::from_ref(&run), Trigger::Schedule)
        .await
    {
        Ok(Claimed::Won) => Some(run.id),
        Ok(Claimed::Lost(_) | Claimed::Pending) => None,
        Err(error) => {
            tracing::warn!(schedule = key, tick, %error, "cannot take the tick of {flight}");
            None
        }
    }
}
