//! A run's event log: JSON, or with `Accept: text/event-stream` a live stream that resumes
//! after `Last-Event-ID` and ends when the run has ended and every event was sent. Each SSE
//! event has the sequence number as `id`, the event's type as `event`, and as `data` the same
//! `{"seq", "at", "event"}` object the JSON log lists.

use crate::tenant::Scoped;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use murmur_engine::RunStatus;
use murmur_engine::store::EventRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::runs::exact_run;

/// How often a live stream looks for new events it was not told about (other processes'
/// commits on SQLite); commits of this process, and on PostgreSQL of every process, wake it
/// at once.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

/// One entry of a run's event log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventEntry {
    /// The event's place in the run's log, from 1; the SSE `id`.
    pub seq: i64,
    pub at: String,
    /// The event: an object whose `type` names it (`run_started`, `agent_output`, ...).
    #[schema(value_type = Object)]
    pub event: Value,
}

/// The run's event log: JSON, or a live stream with `Accept: text/event-stream`.
#[utoipa::path(
    get, path = "/v1/runs/{id}/events", tag = "runs", operation_id = "run_events",
    params(
        ("id" = String, Path, description = "the run's whole id"),
        ("Last-Event-ID" = Option<String>, Header, description = "with a stream: resume after this event's `seq`"),
    ),
    responses(
        (status = 200, description = "the log; a stream (id = seq, event = type, data = the entry) with `Accept: text/event-stream`, ending when the run has ended",
         content((Vec<EventEntry> = "application/json"), (String = "text/event-stream"))),
        (status = 404, description = "no such run", body = ErrorEnvelope),
    )
)]
pub async fn events(
    Scoped(state): Scoped,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = exact_run(state.store(), &id).await?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let rows = state.store().events(&run.id, 0).await?;
        let list: Vec<EventEntry> = rows.iter().map(entry).collect();
        return Ok(Json(list).into_response());
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Ok(Sse::new(live(state, run.id, after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One entry of the log, the same object in the JSON list and in each SSE `data:` line.
fn entry(row: &EventRow) -> EventEntry {
    let event = serde_json::from_str(&row.data).unwrap_or_else(|_| Value::String(row.data.clone()));
    EventEntry {
        seq: row.seq,
        at: row.at.clone(),
        event,
    }
}

/// Events after `after`, as they are committed, until the run has ended.
fn live(
    state: AppState,
    run_id: String,
    after: i64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let commits = state.store().watch_run(&run_id);
    futures::stream::unfold((after, commits), move |(mut seen, mut commits)| {
        let state = state.clone();
        let run_id = run_id.clone();
        async move {
            loop {
                let store = state.store();
                let ended = store
                    .run(&run_id)
                    .await
                    .ok()
                    .and_then(|r| RunStatus::parse(&r.status))
                    .is_none_or(RunStatus::is_terminal);
                let rows = store.events(&run_id, seen).await.unwrap_or_default();
                if !rows.is_empty() {
                    seen = rows.last().map_or(seen, |row| row.seq);
                    let batch: Vec<Result<SseEvent, Infallible>> = rows
                        .iter()
                        .map(|row| {
                            Ok(SseEvent::default()
                                .id(row.seq.to_string())
                                .event(row.kind.clone())
                                .data(
                                    // Strings and a JSON value always serialise.
                                    serde_json::to_string(&entry(row)).unwrap_or_default(),
                                ))
                        })
                        .collect();
                    return Some((futures::stream::iter(batch), (seen, commits)));
                }
                if ended {
                    return None;
                }
                tokio::select! {
                    Ok(()) = commits.changed() => {}
                    () = tokio::time::sleep(LOOK_AGAIN) => {}
                }
            }
        }
    })
    .flatten()
}
