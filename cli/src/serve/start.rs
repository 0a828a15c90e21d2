//! `POST /v1/flights/{name}/runs`: a run created, claimed by its `Idempotency-Key`, and driven
//! in this process. Starts are serialised so one key can never create two runs.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use murmur_engine::executor::{self, StartRequest};
use murmur_engine::{RunStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::body::json_body;
use super::error::{ApiError, ErrorEnvelope};
use super::{AppState, catalog};

/// `POST /v1/flights/{name}/runs`: the run's inputs (an empty body means none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Input values by name; strings as they are, other values as their JSON text.
    #[serde(default)]
    #[schema(value_type = Object)]
    inputs: BTreeMap<String, Value>,
}

/// A run accepted (or, for `cancel`, being canceled).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub run_id: String,
    /// `queued` or `running` for a start, `running` for a retry, `canceling` for a cancel.
    pub status: String,
}

fn start_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StartBody, ApiError> {
    // `null` is "no inputs", as an empty body is.
    let request: Option<Option<StartBody>> = json_body(headers, body, "a start request")?;
    Ok(request.flatten().unwrap_or_default())
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

/// Starts a run of flight `name`: the catalog's latest generation, else the repository's file.
#[utoipa::path(
    post, path = "/v1/flights/{name}/runs", tag = "runs",
    params(
        ("name" = String, Path, description = "the flight's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retried request with the same key gets the same run"),
    ),
    request_body(content = Option<StartBody>, content_type = "application/json"),
    responses(
        (status = 202, description = "the run was created and is driven by the server", body = Accepted,
         links(
            ("run" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))),
            ("events" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))),
            ("cancel" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))),
            ("retry" = (operation_id = "retry_run", parameters(("id" = "$response.body#/run_id")))),
         )),
        (status = 400, description = "invalid body, unknown or missing inputs, or an invalid flight (with diagnostics)", body = ErrorEnvelope),
        (status = 404, description = "no such flight", body = ErrorEnvelope),
        (status = 409, description = "the Idempotency-Key started a run of another flight", body = ErrorEnvelope),
        (status = 415, description = "the body is not `application/json`", body = ErrorEnvelope),
    )
)]
pub async fn start_run(
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
    let unknown = || ApiError::not_found(format!("no flight `{name}`"));
    if !crate::locate::valid_flight_name(&name) {
        return Err(unknown());
    }
    let store = state.store();
    if let Some(run) = existing(store, key.as_deref(), &name).await? {
        return Ok(accepted(run));
    }
    let known = catalog::find(&state, &name).await?.ok_or_else(unknown)?;
    let _starting = state.inner.starting.lock().await;
    if let Some(run) = existing(store, key.as_deref(), &name).await? {
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

/// The run `key` already started; a key that started a run of another flight is a conflict.
async fn existing(
    store: &Store,
    key: Option<&str>,
    flight: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let Some(run_id) = store.idempotent_run(key).await? else {
        return Ok(None);
    };
    let run = store.run(&run_id).await?;
    if run.flight != flight {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!(
                "this Idempotency-Key started run {run_id} of flight `{}`; use a new key",
                run.flight
            ),
        ));
    }
    Ok(Some((run_id, run.status)))
}

fn accepted((run_id, status): (String, String)) -> (StatusCode, Json<Accepted>) {
    (StatusCode::ACCEPTED, Json(Accepted { run_id, status }))
}
