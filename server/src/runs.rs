//! `GET /v1/runs`, `GET /v1/runs/{id}` and the actions on a run: cancel, retry.

use crate::tenant::Scoped;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::header::LINK;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use murmur_engine::executor;
use murmur_engine::store::listing::{ListError, RunQuery};
use murmur_engine::{RunStatus, Store};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::start::Accepted;
use crate::views::{self, RunDetail, RunStatusName, RunSummary};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    flight: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

/// The header that carries the cursor of the next page (also given as a `Link` header).
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// Runs, newest first, a page at a time, optionally of one flight or in one status. The body
/// stays a bare array; the next page's cursor comes in `X-Next-Cursor` and `Link: rel="next"`
/// headers, absent on the last page.
#[utoipa::path(
    get, path = "/v1/runs", tag = "runs",
    params(
        ("flight" = Option<String>, Query, description = "only runs of this flight"),
        ("status" = Option<RunStatusName>, Query, description = "only runs in this (shown) status"),
        ("cursor" = Option<String>, Query, description = "the `X-Next-Cursor` of the previous page, asked with the same flight and status"),
        ("limit" = Option<u64>, Query, description = "runs per page: 1 to 1000, 50 unless given"),
    ),
    responses(
        (status = 200, description = "one page of runs", body = Vec<RunSummary>, headers(
            ("X-Next-Cursor" = String, description = "the cursor of the next page; absent on the last page"),
            ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`; absent on the last page"),
        )),
        (status = 400, description = "an unknown status or query parameter, a bad limit or cursor", body = ErrorEnvelope),
    )
)]
pub async fn list_runs(
    Scoped(state): Scoped,
    filter: Result<Query<RunFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::invalid(e.body_text()))?;
    let query = RunQuery {
        flight: filter.flight,
        status: filter.status,
        cursor: filter.cursor,
        limit: filter.limit,
    };
    let page = match state.store().list_runs(&query, &views::now_stamp()).await {
        Ok(page) => page,
        Err(ListError::Store(error)) => return Err(error.into()),
        Err(refused) => return Err(ApiError::invalid(refused.to_string())),
    };
    let listed: Vec<RunSummary> = page.runs.iter().map(views::run_summary).collect();
    let mut response = Json(listed).into_response();
    if let Some(next) = page.next
        && let (Ok(cursor), Ok(link)) = (
            HeaderValue::from_str(&next),
            HeaderValue::from_str(&next_link(&query, &next)),
        )
    {
        response.headers_mut().insert(NEXT_CURSOR, cursor);
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

/// `</v1/runs?…&cursor=C>; rel="next"`, with the filters of this page.
fn next_link(query: &RunQuery, cursor: &str) -> String {
    let mut params = Vec::new();
    if let Some(flight) = &query.flight {
        params.push(format!("flight={}", crate::views::query_escape(flight)));
    }
    if let Some(status) = &query.status {
        params.push(format!("status={}", crate::views::query_escape(status)));
    }
    if let Some(limit) = query.limit {
        params.push(format!("limit={limit}"));
    }
    params.push(format!("cursor={}", crate::views::query_escape(cursor)));
    format!("</v1/runs?{}>; rel=\"next\"", params.join("&"))
}

/// A run with each agent's state, attempts, branch, pull requests and cost.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "the run's whole id")),
    responses(
        (status = 200, description = "the run", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorEnvelope),
    )
)]
pub async fn show_run(
    Scoped(state): Scoped,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = exact_run(state.store(), &id).await?;
    let agents = state.store().agents(&run.id).await?;
    let detail = views::with_children(state.store(), views::run_detail(&run, &agents)).await?;
    Ok(Json(detail))
}

/// Over HTTP a run is named by its whole id, never a prefix.
pub async fn exact_run(store: &Store, id: &str) -> Result<murmur_engine::store::RunRow, ApiError> {
    match store.run(id).await {
        Ok(run) if run.id == id => Ok(run),
        Ok(_)
        | Err(
            murmur_engine::store::Error::NoRun(_) | murmur_engine::store::Error::AmbiguousRun(_),
        ) => Err(ApiError::not_found(format!("no run `{id}`"))),
        Err(other) => Err(other.into()),
    }
}

/// Cancels a run: running agents are stopped, the rest marked canceled.
#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "the run's whole id")),
    responses(
        (status = 202, description = "the run is being canceled", body = Accepted),
        (status = 404, description = "no such run", body = ErrorEnvelope),
        (status = 409, description = "the run already ended", body = ErrorEnvelope),
    )
)]
pub async fn cancel_run(
    Scoped(state): Scoped,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = exact_run(state.store(), &id).await?;
    if RunStatus::parse(&run.status).is_some_and(RunStatus::is_terminal) {
        return Err(finished(&id, &run.status));
    }
    if !state.cancel_driven(&id) {
        cancel_here(&state, &id).await?;
    }
    let status = "canceling".to_owned();
    Ok((StatusCode::ACCEPTED, Json(Accepted { run_id: id, status })))
}

fn finished(id: &str, status: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "finished",
        format!("run {id} already ended: {status}"),
    )
}

/// How often a cancel looks again when the run changed under it.
const CANCEL_ATTEMPTS: usize = 3;

/// Cancels a run that no driver of this process answers for. Its driver may still commit (a
/// run that is just ending, or one whose cancel was already asked): a conflict means look
/// again, and a run that ended meanwhile is `finished`.
async fn cancel_here(state: &AppState, id: &str) -> Result<(), ApiError> {
    for _ in 0..CANCEL_ATTEMPTS {
        match state.executor().cancel(id).await {
            Ok(_) => return Ok(()),
            Err(executor::Error::Store(murmur_engine::store::Error::Conflict { .. })) => {
                let run = exact_run(state.store(), id).await?;
                if RunStatus::parse(&run.status).is_some_and(RunStatus::is_terminal) {
                    return Err(finished(id, &run.status));
                }
                if state.cancel_driven(id) {
                    return Ok(());
                }
            }
            Err(executor::Error::Store(error)) => return Err(error.into()),
            Err(other) => return Err(ApiError::internal(other)),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("run {id} kept changing while it was being canceled; retry"),
    ))
}

/// Runs a failed or canceled run again; succeeded agents are kept.
#[utoipa::path(
    post, path = "/v1/runs/{id}/retry", tag = "runs",
    params(("id" = String, Path, description = "the run's whole id")),
    responses(
        (status = 202, description = "the run runs again", body = Accepted),
        (status = 404, description = "no such run", body = ErrorEnvelope),
        (status = 409, description = "nothing to retry (the run completed or still runs)", body = ErrorEnvelope),
    )
)]
pub async fn retry_run(
    Scoped(state): Scoped,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    exact_run(state.store(), &id).await?;
    match state.executor().retry(&id).await {
        Ok(()) => {}
        Err(error @ executor::Error::NothingToRetry(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "nothing_to_retry",
                error.to_string(),
            ));
        }
        Err(executor::Error::Store(error)) => return Err(error.into()),
        Err(other) => return Err(ApiError::internal(other)),
    }
    state.drive(id.clone());
    let status = RunStatus::Running.as_str().to_owned();
    Ok((StatusCode::ACCEPTED, Json(Accepted { run_id: id, status })))
}
