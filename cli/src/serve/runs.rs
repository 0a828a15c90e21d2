//! `GET /v1/runs`, `GET /v1/runs/{id}` and the actions on a run: cancel, retry.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use murmur_engine::executor;
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
}

/// Runs, newest first (the latest 1000), optionally of one flight or in one status.
#[utoipa::path(
    get, path = "/v1/runs", tag = "runs",
    params(
        ("flight" = Option<String>, Query, description = "only runs of this flight"),
        ("status" = Option<RunStatusName>, Query, description = "only runs in this status"),
    ),
    responses(
        (status = 200, description = "the runs", body = Vec<RunSummary>),
        (status = 400, description = "an unknown status or query parameter", body = ErrorEnvelope),
    )
)]
pub async fn list_runs(
    State(state): State<AppState>,
    filter: Result<Query<RunFilter>, QueryRejection>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::invalid(e.body_text()))?;
    if let Some(status) = &filter.status
        && RunStatus::parse(status).is_none()
    {
        return Err(ApiError::invalid(format!(
            "unknown status `{status}`: use queued, running, completed, failed or canceled"
        )));
    }
    let runs = state.store().runs(1000).await?;
    let listed: Vec<RunSummary> = runs
        .iter()
        .filter(|run| filter.flight.as_ref().is_none_or(|f| &run.flight == f))
        .filter(|run| filter.status.as_ref().is_none_or(|s| &run.status == s))
        .map(views::run_summary)
        .collect();
    Ok(Json(listed))
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
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = exact_run(state.store(), &id).await?;
    let agents = state.store().agents(&run.id).await?;
    Ok(Json(views::run_detail(&run, &agents)))
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
    State(state): State<AppState>,
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
    State(state): State<AppState>,
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
