//! The catalog routes: `PUT`, `GET`, `DELETE /v1/flights/{name}` and `GET /v1/flights`.
//! A saved flight is always valid: the parser checks it before anything is stored.

use crate::tenant::Scoped;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use murmur_engine::store::NewGeneration;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::catalog::{self, Known, Origin};
use super::error::{ApiError, ErrorEnvelope};
use crate::views::{FlightSummary, FlightText, SavedFlight};

/// A valid flight, as the document's example of a body.
const EXAMPLE: &str = "---\nruntime: exec\n---\n# Example\n\n## hello\n> command: echo hello\n";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationQuery {
    generation: Option<i64>,
}

/// Saves the Markdown as the next generation of flight `name`, after validating it.
#[utoipa::path(
    put, path = "/v1/flights/{name}", tag = "flights", operation_id = "save_flight",
    params(("name" = String, Path, description = "the flight's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")),
    request_body(
        content(
            (String = "text/markdown", example = json!(EXAMPLE)),
            (String = "text/plain", example = json!(EXAMPLE)),
        ),
        description = "the flight's Markdown",
    ),
    responses(
        (status = 200, description = "a new generation of an existing flight", body = SavedFlight,
         links(
            ("flight" = (operation_id = "show_flight", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_flight", parameters(("name" = "$response.body#/name")))),
            ("start" = (operation_id = "start_run", parameters(("name" = "$response.body#/name")))),
         )),
        (status = 201, description = "a new flight", body = SavedFlight,
         links(
            ("flight" = (operation_id = "show_flight", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_flight", parameters(("name" = "$response.body#/name")))),
            ("start" = (operation_id = "start_run", parameters(("name" = "$response.body#/name")))),
         )),
        (status = 400, description = "an invalid flight (with diagnostics), a bad name, or a body that is not UTF-8", body = ErrorEnvelope),
        (status = 415, description = "the body is not `text/markdown` or `text/plain`", body = ErrorEnvelope),
    )
)]
pub async fn save(
    Scoped(state): Scoped,
    Path(name): Path<String>,
    Extension(Caller(author)): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !murmur_parser::valid_flight_name(&name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            murmur_parser::FLIGHT_NAME_RULE,
        ));
    }
    let text = markdown_body(&headers, body)?;
    let (source, _) = catalog::parse_valid(&name, &text)?;
    let markdown = source.text();
    let saved = state
        .store()
        .save_flight(&NewGeneration {
            name: &name,
            markdown,
            digest: &murmur_engine::run::digest(markdown),
            author: &author,
            created_at: &state.executor().clock.stamp(),
        })
        .await?;
    let status = if saved.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let location = format!("/v1/flights/{}", saved.flight.name);
    let body = SavedFlight::from(saved.flight);
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// The body as Markdown text: `text/markdown` or `text/plain`, UTF-8.
fn markdown_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), "body", rejection.body_text()))?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(media.as_deref(), Some("text/markdown" | "text/plain")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the flight as `Content-Type: text/markdown` (or text/plain)",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::invalid(format!("the flight is not UTF-8 text: {e}")))
}

/// Every flight the server can run: the catalog's, then the repository's valid files.
#[utoipa::path(
    get, path = "/v1/flights", tag = "flights", operation_id = "list_flights",
    responses((status = 200, description = "the flights, by name", body = Vec<FlightSummary>))
)]
pub async fn list(Scoped(state): Scoped) -> Json<Vec<FlightSummary>> {
    let known = super::workspace_flights::all(&state).await;
    Json(known.iter().map(summary).collect())
}

/// A flight's latest generation (or `generation`), as JSON, or its Markdown with
/// `Accept: text/markdown`.
#[utoipa::path(
    get, path = "/v1/flights/{name}", tag = "flights", operation_id = "show_flight",
    params(("name" = String, Path, description = "the flight's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"), ("generation" = Option<i64>, Query, description = "an older generation of a catalog flight")),
    responses(
        (status = 200, description = "the flight", content((FlightText = "application/json"), (String = "text/markdown"))),
        (status = 400, description = "a bad query", body = ErrorEnvelope),
        (status = 404, description = "no such flight or generation", body = ErrorEnvelope),
    )
)]
pub async fn show(
    Scoped(state): Scoped,
    Path(name): Path<String>,
    query: Result<Query<GenerationQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let known = match query.generation {
        Some(generation) => generation_of(&state, &name, generation).await?,
        None => catalog::find(&state, &name).await?,
    };
    let known = known.ok_or_else(|| not_found(&name, query.generation))?;
    if wants_markdown(&headers) {
        let content_type = [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")];
        return Ok((content_type, known.source).into_response());
    }
    let summary = summary(&known);
    Ok(Json(FlightText {
        summary,
        markdown: known.source,
    })
    .into_response())
}

async fn generation_of(
    state: &AppState,
    name: &str,
    generation: i64,
) -> Result<Option<Known>, ApiError> {
    if !murmur_parser::valid_flight_name(name) {
        return Ok(None);
    }
    let saved = state.store().catalog_flight(name, Some(generation)).await?;
    saved.map(catalog::from_catalog).transpose()
}

fn not_found(name: &str, generation: Option<i64>) -> ApiError {
    match generation {
        Some(n) => ApiError::not_found(format!("flight `{name}` has no generation {n}")),
        None => ApiError::not_found(format!("no flight `{name}`")),
    }
}

/// JSON unless the client asks for Markdown (and not JSON) in `Accept`.
fn wants_markdown(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("text/markdown") && !accept.contains("application/json")
}

/// Deletes a catalog flight (its generation numbers are never reused).
#[utoipa::path(
    delete, path = "/v1/flights/{name}", tag = "flights", operation_id = "delete_flight",
    params(("name" = String, Path, description = "the flight's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such flight in the catalog", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    Scoped(state): Scoped,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let at = state.executor().clock.stamp();
    if murmur_parser::valid_flight_name(&name) && state.store().delete_flight(&name, &at).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(ApiError::not_found(format!(
        "no flight `{name}` in the catalog (repository files are changed in the repository)"
    )))
}

fn summary(known: &Known) -> FlightSummary {
    let saved = match &known.origin {
        Origin::Catalog(saved) => Some(saved),
        Origin::Repository(_) => None,
    };
    FlightSummary::new(&known.name, &known.flight, &known.source, saved)
}
