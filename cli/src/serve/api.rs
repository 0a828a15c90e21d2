//! The routes of `surface.md`. `router(state)` builds them; serving is separate, so tests
//! call the router directly.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use murmur_engine::executor::{self, StartRequest};
use murmur_engine::{RunStatus, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::timeout::TimeoutLayer;

use super::error::ApiError;
use super::{AppState, auth, catalog, events, flights};
use crate::views;

/// Requests larger than this are refused with 413.
const BODY_LIMIT: usize = 1024 * 1024;
/// Every request but a live event stream must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router(state: AppState) -> Router {
    let quick = Router::new()
        .route("/v1/flights", get(flights::list))
        .route(
            "/v1/flights/{name}",
            get(flights::show)
                .put(flights::save)
                .delete(flights::delete),
        )
        .route("/v1/flights/{name}/runs", post(start_run))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/retry", post(retry_run))
        .route("/metrics", get(metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    Router::new()
        .merge(quick)
        .route("/v1/runs/{id}/events", get(events::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/healthz", get(healthz))
        .route("/v1/webhooks/github", post(super::webhooks::github))
        .fallback(|| async { ApiError::not_found("no such route; see surface.md for the API") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
}

fn start_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StartBody, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), "body", rejection.body_text()))?;
    if body.is_empty() {
        return Ok(StartBody::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the body is not a start request: {e}")))
}

/// `{"inputs": {...}}` values as `--input` takes them: strings as they are, the rest as JSON.
fn input_pairs(inputs: &BTreeMap<String, Value>) -> Vec<String> {
    inputs
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) => format!("{name}={text}"),
            other => format!("{name}={other}"),
        })
        .collect()
}

async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let request = start_body(&headers, body)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let store = state.store();
    if let Some(run) = existing(store, key.as_deref()).await? {
        return Ok(accepted(run));
    }
    let known = catalog::find(&state, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no flight `{name}`")))?;
    let _starting = state.inner.starting.lock().await;
    if let Some(run) = existing(store, key.as_deref()).await? {
        return Ok(accepted(run));
    }
    let inputs = input_pairs(&request.inputs);
    let path = match &known.origin {
        catalog::Origin::Repository(path) => Some(path.display().to_string()),
        catalog::Origin::Catalog(_) => None,
    };
    let start = StartRequest {
        flight_name: &name,
        flight_path: path.as_deref(),
        source: &known.source,
        flight: &known.flight,
        inputs: &inputs,
        event: None,
    };
    let run_id = match state.executor().create(&start).await {
        Ok(id) => id,
        Err(executor::Error::Prepare(error)) => return Err(ApiError::invalid(error.to_string())),
        Err(executor::Error::Store(error)) => return Err(error.into()),
        Err(other) => return Err(ApiError::internal(other)),
    };
    if let Some(key) = &key {
        store
            .claim_idempotency_key(key, &run_id, &state.executor().clock.stamp())
            .await?;
    }
    state.drive(run_id.clone());
    Ok(accepted((run_id, RunStatus::Running.as_str().to_owned())))
}

async fn existing(store: &Store, key: Option<&str>) -> Result<Option<(String, String)>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let Some(run_id) = store.idempotent_run(key).await? else {
        return Ok(None);
    };
    let status = store.run(&run_id).await?.status;
    Ok(Some((run_id, status)))
}

fn accepted((run_id, status): (String, String)) -> (StatusCode, Json<Value>) {
    (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "status": status})),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFilter {
    flight: Option<String>,
    status: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    filter: Result<Query<RunFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::invalid(e.body_text()))?;
    if let Some(status) = &filter.status
        && RunStatus::parse(status).is_none()
    {
        return Err(ApiError::invalid(format!(
            "unknown status `{status}`: use queued, running, completed, failed or canceled"
        )));
    }
    let runs = state.store().runs(1000).await?;
    let listed: Vec<Value> = runs
        .iter()
        .filter(|run| filter.flight.as_ref().is_none_or(|f| &run.flight == f))
        .filter(|run| filter.status.as_ref().is_none_or(|s| &run.status == s))
        .map(views::run_summary)
        .collect();
    Ok(Json(Value::Array(listed)))
}

async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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

async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = exact_run(state.store(), &id).await?;
    if RunStatus::parse(&run.status).is_some_and(RunStatus::is_terminal) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("run {id} already ended: {}", run.status),
        ));
    }
    if !state.cancel_driven(&id) {
        state
            .executor()
            .cancel(&id)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": id, "status": "canceling"})),
    ))
}

async fn retry_run(
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": id, "status": "running"})),
    ))
}

/// Prometheus text: runs by status, checkpoints and their transactions, requests served.
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let runs = state.store().runs(100_000).await?;
    let mut text =
        String::from("# HELP murmur_runs Runs in the store by status.\n# TYPE murmur_runs gauge\n");
    for status in RunStatus::ALL {
        let count = runs.iter().filter(|r| r.status == status.as_str()).count();
        text.push_str(&format!("murmur_runs{{status=\"{status}\"}} {count}\n"));
    }
    let writes = state.store().write_stats();
    text.push_str(&format!(
        "# HELP murmur_checkpoints_total Checkpoints committed.\n# TYPE murmur_checkpoints_total counter\nmurmur_checkpoints_total {}\n\
         # HELP murmur_checkpoint_transactions_total Transactions those checkpoints shared (group commit).\n# TYPE murmur_checkpoint_transactions_total counter\nmurmur_checkpoint_transactions_total {}\n\
         # HELP murmur_http_requests_total Authenticated API requests.\n# TYPE murmur_http_requests_total counter\nmurmur_http_requests_total {}\n",
        writes.checkpoints,
        writes.transactions,
        state.requests()
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
