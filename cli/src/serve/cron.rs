//! Schedules (`on.schedule`): every owed tick of every flight starts one run, exactly once,
//! also across restarts. A tick missed while the server was down runs once on start.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use murmur_engine::executor::StartRequest;
use murmur_engine::schedule::{owed, schedule_key};
use serde_json::json;

use super::AppState;
use super::catalog;

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

/// Starts a run for every tick owed now; returns the runs started. A schedule that never
/// fired counts from `started` (the server's start), so a new flight owes no past ticks.
pub async fn fire_due(state: &AppState, started: DateTime<Utc>) -> Vec<String> {
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
                    eprintln!("murmur serve: cannot read the ticks of {key}: {error}");
                    continue;
                }
            };
            let Some(tick) = owed(schedule, after, now) else {
                continue;
            };
            let tick = tick.to_rfc3339_opts(SecondsFormat::Millis, true);
            match state.store().claim_tick(&key, &tick, &clock.stamp()).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    eprintln!("murmur serve: cannot take tick {tick} of {key}: {error}");
                    continue;
                }
            }
            let event = json!({"schedule": {"cron": schedule.cron, "timezone": schedule.timezone, "tick": tick}});
            let start = StartRequest {
                flight_name: &known.name,
                flight_path: None,
                source: &known.source,
                flight: &known.flight,
                inputs: &[],
                event: Some(&event),
            };
            match state.executor().create(&start).await {
                Ok(run_id) => {
                    state.drive(run_id.clone());
                    runs.push(run_id);
                }
                Err(error) => eprintln!(
                    "murmur serve: tick {tick} of {} did not start: {error}",
                    known.name
                ),
            }
        }
    }
    runs
}
