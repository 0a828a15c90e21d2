//! The pages: `/` (runs), `/runs/{id}`, `/flights`, `/flights/{name}`, `/machines`. Each needs a live
//! session whose token the store still knows (else the login form), and answers 404 for a
//! run or flight its tenant does not have.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::html::{self, Shell};
use super::login::see_other;
use super::session::Session;
use crate::AppState;

/// The session of the request, when its token is still valid.
pub async fn viewer(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let session = state.inner.dashboard.of(headers)?;
    match state.store().caller(&session.token).await {
        Ok(Some(caller)) if session.tenant == caller.tenant => Some(session),
        Ok(_) => {
            state.inner.dashboard.close(headers);
            None
        }
        Err(error) => {
            tracing::error!(%error, "dashboard: cannot check a session's token");
            None
        }
    }
}

fn shell(session: &Session, title: &str, page: &str, subject: &str) -> Response {
    let body = Shell {
        title,
        page,
        subject,
        csrf: &session.csrf,
    }
    .render();
    html::page(StatusCode::OK, body)
}

pub async fn runs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match viewer(&state, &headers).await {
        Some(session) => shell(&session, "Runs", "runs", ""),
        None => see_other("/login"),
    }
}

pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = viewer(&state, &headers).await else {
        return see_other("/login");
    };
    let Ok(state) = state.for_tenant(&session.tenant).await else {
        return see_other("/login");
    };
    match super::run::run_of(&state, &session.tenant, &id).await {
        Ok(run) => shell(&session, &format!("Run {}", run.id), "run", &run.id),
        Err(_) => html::not_found(&format!("No run `{id}`.")),
    }
}

pub async fn flights(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match viewer(&state, &headers).await {
        Some(session) => shell(&session, "Flights", "flights", ""),
        None => see_other("/login"),
    }
}

pub async fn flight(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = viewer(&state, &headers).await else {
        return see_other("/login");
    };
    let Ok(state) = state.for_tenant(&session.tenant).await else {
        return see_other("/login");
    };
    if super::flights::exists(&state, &name).await {
        shell(&session, &format!("Flight {name}"), "flight", &name)
    } else {
        html::not_found(&format!("No flight `{name}`."))
    }
}

pub async fn machines(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match viewer(&state, &headers).await {
        Some(session) => shell(&session, "Machines", "machines", ""),
        None => see_other("/login"),
    }
}
