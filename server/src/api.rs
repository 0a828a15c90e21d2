//! The routes of `surface.md`. `router(state)` builds them; serving is separate, so tests
//! call the router directly. `/healthz`, `/readyz`, the GitHub webhook (signed instead) and
//! `/v1/openapi.json` (it describes the API, nothing of its data) need no token.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use utoipa::ToSchema;

use super::error::ApiError;
use super::metrics::{self, metrics};
use super::runs::{cancel_run, list_runs, retry_run, show_run};
use super::start::start_run;
use super::{AppState, access_log, auth, events, flights, openapi};

/// Requests larger than this are refused with 413.
const BODY_LIMIT: usize = 1024 * 1024;
/// Every request but a live event stream must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A store that has not answered the health check within this is unavailable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

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
        .route(
            "/v1/runs/{id}/agents/{slug}/approve",
            post(super::approve::approve_agent),
        )
        .route("/metrics", get(metrics))
        .route("/v1/metrics", get(metrics::tenant_metrics))
        .merge(super::machines::routes())
        .merge(super::secrets::routes())
        .merge(super::workspaces::routes())
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
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/webhooks/github", post(super::webhooks::github))
        .merge(super::dashboard::router(state.clone()))
        .merge(super::workers::routes())
        .fallback(|| async { ApiError::not_found("no such route; /v1/openapi.json lists them") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; /v1/openapi.json lists them",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(access_log::log_request))
        .layer(middleware::from_fn(detach_changes))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A request that changes something runs to its end on a task of its own: a client that goes
/// away (hyper then drops the request's future) must not cut it off halfway, say between a
/// run's commit and its hand-off to the supervisor. Reads stay on the connection's task.
async fn detach_changes(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            ApiError::internal(format!("a request's task failed: {error}")).into_response()
        }
    }
}

/// `GET /healthz`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` while the server and its store answer, else `unavailable`.
    pub status: String,
    /// With `unavailable`: what does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /readyz`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` when this server drives runs and its store answers, else `not_ready`.
    pub status: String,
    /// Whether this server drives runs (its supervisor runs).
    pub drives_runs: bool,
    /// `ok` or `unavailable`.
    pub store: String,
}

/// Whether the server and its store answer (one cheap query); needs no token.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", security(()),
    responses(
        (status = 200, description = "the server and its store answer", body = Health),
        (status = 503, description = "the store does not answer", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match store_answers(&state).await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_owned(),
                reason: None,
            }),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".to_owned(),
                reason: Some(reason.to_owned()),
            }),
        ),
    }
}

/// Whether this server should be sent work: it drives runs and its store answers; needs no
/// token.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "this server drives runs and its store answers", body = Readiness),
        (status = 503, description = "this server does not drive runs, or its store does not answer", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = store_answers(&state).await.is_ok();
    let drives_runs = state.drives_runs();
    let ready = store && drives_runs;
    let answer = Readiness {
        status: if ready { "ready" } else { "not_ready" }.to_owned(),
        drives_runs,
        store: if store { "ok" } else { "unavailable" }.to_owned(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(answer))
}

/// The store's answer to one cheap query, within [`HEALTH_TIMEOUT`]. The reason is for the
/// caller: the error itself (SQL, paths, hosts) goes only to the log.
async fn store_answers(state: &AppState) -> Result<(), &'static str> {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: the store does not answer");
            Err("the store does not answer")
        }
        Err(_) => {
            tracing::warn!("health check: the store did not answer within 2 s");
            Err("the store did not answer in time")
        }
    }
}
