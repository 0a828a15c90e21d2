//! `GET /v1/openapi.json`: the API described from the handlers' `#[utoipa::path]` attributes
//! and the types they answer with. Public, like `/healthz`: it shows the API's shape, none of
//! its data. Errors every token-guarded route can answer (401, 413, 429, 503) are added here
//! once instead of on every handler.

use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    api, approve, events, flights, machines, metrics, runs, secrets, start, webhooks, workers,
    workspaces,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Murmur",
        description = "Runs DAGs of AI coding agents described as Markdown flights. Every route but \
                       /healthz, /readyz, /v1/openapi.json and the GitHub webhook needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        flights::list, flights::show, flights::save, flights::delete,
        start::start_run, runs::list_runs, runs::show_run, runs::cancel_run, runs::retry_run,
        approve::approve_agent,
        machines::list_machines, machines::list_pools,
        secrets::list_secrets, secrets::set_secret, secrets::remove_secret,
        workspaces::list_workspaces, workspaces::add_workspace, workspaces::show_workspace, workspaces::remove_workspace,
        workers::register::register, workers::routes::poll, workers::routes::updates,
        events::events, webhooks::github, api::healthz, api::readyz, metrics::metrics, metrics::tenant_metrics, document,
    ),
    security(("bearer" = [])),
    modifiers(&Guarded),
)]
struct ApiDoc;

/// This document; needs no token.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "the OpenAPI document", body = Object))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The bearer scheme, and the refusals of the token guard, rate limit, body limit and store.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_refusals(operation);
            }
        }
    }
}

fn add_refusals(operation: &mut Operation) {
    let public = operation.security.is_some();
    let mut refusals = Vec::new();
    if !public {
        refusals.push(("401", "no valid API token"));
        refusals.push(("429", "this token's rate is used up; retry later"));
        refusals.push(("503", "the store is busy; retry shortly"));
    }
    if operation.request_body.is_some() {
        refusals.push(("413", "the body is larger than 1 MiB"));
    }
    for (status, description) in refusals {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| refusal(description));
    }
}

fn refusal(description: &str) -> RefOr<Response> {
    let envelope = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", envelope)
            .build(),
    )
}
