//! The dashboard at `GET /`: runs, a run's DAG with its agents and live logs, approvals and
//! actions, the flights, and the machines and pools, as pages served by this binary with their assets embedded.
//!
//! The pages are shells (`html`) whose module scripts fetch JSON and build the DOM with
//! `textContent` only, under a Content-Security-Policy without inline script. They read and act
//! through the API itself (`/v1/...`) with a session cookie instead of a bearer token
//! (`session`, accepted by `auth`), plus the few `/ui/...` routes for what the API lacks:
//! a run's graph, one agent's log, a follow-up, the runs list as a live stream, flights with
//! their diagnostics. Every changing request from a page carries the session's CSRF token.
//! Live updates come from the run's SSE stream (resumed with `Last-Event-ID`), never polling.

mod assets;
mod flights;
mod graph;
pub mod html;
mod live;
mod login;
mod pages;
mod run;
pub mod session;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_data;

use axum::routing::{get, post};
use axum::{Router, middleware};

pub use session::Sessions;

use crate::AppState;

/// The pages, their assets and the `/ui/...` data routes, with the dashboard's headers.
pub fn router(state: AppState) -> Router<AppState> {
    let data = Router::new()
        .route("/ui/runs/live", get(live::runs))
        .route("/ui/runs/{id}", get(run::show))
        .route("/ui/runs/{id}/agents/{slug}/log", get(run::log))
        .route("/ui/runs/{id}/agents/{slug}/queue", post(run::queue))
        .route("/ui/flights", get(flights::list))
        .route("/ui/flights/{name}", get(flights::show))
        .route_layer(middleware::from_fn_with_state(
            state,
            crate::auth::require_token,
        ));
    Router::new()
        .merge(data)
        .route("/", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/flights", get(pages::flights))
        .route("/flights/{name}", get(pages::flight))
        .route("/machines", get(pages::machines))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::map_response(html::secure))
}
