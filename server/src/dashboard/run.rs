//! What the run page needs beyond `GET /v1/runs/{id}`: the run with its graph and the log
//! position to stream from (`GET /ui/runs/{id}`), one agent's output so far
//! (`GET /ui/runs/{id}/agents/{slug}/log`), and queueing a follow-up
//! (`POST /ui/runs/{id}/agents/{slug}/queue`), which the API has no route for yet.

use crate::tenant::Scoped;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use murmur_engine::executor;
use murmur_engine::store::RunRow;
use serde::{Deserialize, Serialize};

use super::graph::{self, Node};
use crate::AppState;
use crate::error::ApiError;
use crate::views::{self, RunDetail};

/// Lines of an agent's log the page gets at once; later ones stream.
const LOG_LINES: usize = 5_000;
/// The longest follow-up text taken.
const FOLLOW_UP_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize)]
pub struct RunPage {
    pub run: RunDetail,
    /// The sum of the agents' costs, when any reported one.
    pub cost_usd: Option<f64>,
    pub graph: Vec<Node>,
    /// The last event the page has seen: its live stream resumes after it.
    pub seq: i64,
}

#[derive(Debug, Serialize)]
pub struct LogLine {
    pub seq: i64,
    pub attempt: u64,
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Serialize)]
pub struct AgentLog {
    pub slug: String,
    pub lines: Vec<LogLine>,
    /// Lines before these were left out (the page shows the newest).
    pub omitted: usize,
    /// The last event read: the page takes this agent's lines after it from the stream.
    pub seq: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    text: String,
}

#[derive(Debug, Serialize)]
pub struct Queued {
    pub run_id: String,
    pub slug: String,
    /// Whether the run had completed and runs again for it.
    pub reopened: bool,
}

/// The run `id` of `tenant`; 404 for any other.
pub async fn run_of(state: &AppState, tenant: &str, id: &str) -> Result<RunRow, ApiError> {
    let run = crate::runs::exact_run(state.store(), id).await?;
    if run.tenant != tenant {
        return Err(ApiError::not_found(format!("no run `{id}`")));
    }
    Ok(run)
}

/// The tenant a request acts for: `auth` scoped the state to its token's (the session's
/// for a browser).
fn tenant(state: &AppState, _: &HeaderMap) -> String {
    state.store().tenant().to_owned()
}

pub async fn show(
    Scoped(state): Scoped,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RunPage>, ApiError> {
    let run = run_of(&state, &tenant(&state, &headers), &id).await?;
    let rows = state.store().events(&run.id, 0).await?;
    let agents = state.store().agents(&run.id).await?;
    let graph = match murmur_parser::parse(&run.source, &run.flight).flight {
        Some(flight) => graph::of_run(&flight, &rows),
        None => Vec::new(),
    };
    let detail = views::run_detail(&run, &agents);
    Ok(Json(RunPage {
        cost_usd: total_cost(&detail),
        run: detail,
        graph,
        seq: rows.last().map_or(0, |row| row.seq),
    }))
}

pub fn total_cost(run: &RunDetail) -> Option<f64> {
    let costs: Vec<f64> = run.agents.iter().filter_map(|a| a.cost_usd).collect();
    (!costs.is_empty()).then(|| costs.iter().sum())
}

pub async fn log(
    Scoped(state): Scoped,
    Path((id, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<AgentLog>, ApiError> {
    let run = run_of(&state, &tenant(&state, &headers), &id).await?;
    let rows = state.store().events(&run.id, 0).await?;
    let mut lines: Vec<LogLine> = rows
        .iter()
        .filter(|row| row.kind == "agent_output" && row.slug.as_deref() == Some(slug.as_str()))
        .filter_map(|row| {
            let event: serde_json::Value = serde_json::from_str(&row.data).ok()?;
            Some(LogLine {
                seq: row.seq,
                attempt: event["attempt"].as_u64().unwrap_or(0),
                stream: event["stream"].as_str().unwrap_or("stdout").to_owned(),
                line: event["line"].as_str().unwrap_or("").to_owned(),
            })
        })
        .collect();
    let omitted = lines.len().saturating_sub(LOG_LINES);
    lines.drain(..omitted);
    Ok(Json(AgentLog {
        slug,
        lines,
        omitted,
        seq: rows.last().map_or(0, |row| row.seq),
    }))
}

pub async fn queue(
    Scoped(state): Scoped,
    Path((id, slug)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let follow_up: FollowUp = crate::body::json_body(&headers, body, "a follow-up")?
        .ok_or_else(|| ApiError::invalid("send {\"text\": \"...\"}"))?;
    let text = follow_up.text.trim();
    if text.is_empty() || text.len() > FOLLOW_UP_BYTES {
        return Err(ApiError::invalid(
            "a follow-up is some text, at most 64 KiB",
        ));
    }
    let run = run_of(&state, &tenant(&state, &headers), &id).await?;
    let reopened = match state.executor().queue_follow_up(&run.id, &slug, text).await {
        Ok(reopened) => reopened,
        Err(executor::Error::NoAgent(_)) => {
            return Err(ApiError::not_found(format!(
                "run {id} has no agent `{slug}`"
            )));
        }
        Err(
            error @ (executor::Error::CannotFollowUp { .. }
            | executor::Error::RunEnded { .. }
            | executor::Error::AlreadyEnded { .. }),
        ) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cannot_follow_up",
                error.to_string(),
            ));
        }
        Err(executor::Error::Store(error)) => return Err(error.into()),
        Err(other) => return Err(ApiError::internal(other)),
    };
    if reopened {
        state.drive(run.id.clone());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            run_id: run.id,
            slug,
            reopened,
        }),
    ))
}
