//! The routes of `surface.md`. `router(state)` builds them; serving is separate, so tests
//! call the router directly. `/healthz`, the GitHub webhook (signed instead) and
//! `/v1/openapi.json` (it describes the API, nothing of its data) need no token.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use utoipa::ToSchema;

use super::error::ApiError;
use super::metrics::{self, metrics};
use super::runs::{cancel_run, list_runs, retry_run, show_run};
use super::start::start_run;
use super::{AppState, auth, events, flights, openapi};

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
        .route(
            "/v1/runs/{id}/agents/{slug}/approve",
            post(super::approve::approve_agent),
        )
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
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/webhooks/github", post(super::webhooks::github))
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `GET /healthz`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: String,
}

/// Whether the server answers; needs no token.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "the server is up", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}
