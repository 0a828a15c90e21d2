//! `POST /v1/flights/{name}/runs`: a run created, claimed by its `Idempotency-Key`, and driven
//! in this process. The key is claimed in the transaction that creates the run, so concurrent
//! requests with one key (on any server of the store) start one run and all answer with it.

use crate::tenant::Scoped;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use murmur_engine::executor::{self, Executor, PreparedRun, StartRequest};
use murmur_engine::store::claims::{self, Claim, Claimed, ClaimedRun};
use murmur_engine::{RunStatus, Store};
use murmur_parser::Flight;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::body::json_body;
use super::error::{ApiError, ErrorEnvelope};
use super::supervisor::Trigger;
use super::{AppState, catalog};

/// `POST /v1/flights/{name}/runs`: the run's inputs (an empty body means none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Input values by name; strings as they are, other values as their JSON text.
    #[serde(default)]
    #[schema(value_type = Object)]
    inputs: BTreeMap<String, Value>,
    /// The workspace whose flight to run, needed when the name exists in several.
    #[serde(default)]
    workspace: Option<String>,
    /// The branch the run's agents start from, over its workspace repository's base.
    #[serde(default)]
    base: Option<String>,
}

/// A run accepted (or, for `cancel`, being canceled).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub run_id: String,
    /// For a start, `queued` when `max_concurrent` or the pool makes the run wait (as the
    /// store had them when it was accepted), else `running`; `running` for a retry,
    /// `canceling` for a cancel.
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
        ("Idempotency-Key" = Option<String>, Header, description = "a retried or concurrent request with the same key gets the same run"),
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
        (status = 409, description = "the name exists in several workspaces and none was chosen (`ambiguous_flight`), the Idempotency-Key started a run of another flight (`idempotency_key_reused`), or a concurrent request with it is still creating its run (`in_progress`: retry shortly)", body = ErrorEnvelope),
        (status = 415, description = "the body is not `application/json`", body = ErrorEnvelope),
    )
)]
pub async fn start_run(
    Scoped(state): Scoped,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let request = start_body(&headers, body)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(claims::idempotency_key);
    let unknown = || ApiError::not_found(format!("no flight `{name}`"));
    if !murmur_parser::valid_flight_name(&name) {
        return Err(unknown());
    }
    let store = state.store();
    if let Some(key) = &key
        && let Some(runs) = store.claimed_runs(key).await?
    {
        return claimed_answer(store, &runs, &name).await;
    }
    let wanted = request.workspace.as_deref();
    let base = request.base.as_deref();
    let (known, executor) = super::workspace_flights::for_start(&state, &name, wanted, base)
        .await?
        .ok_or_else(unknown)?;
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
    let prepared = executor.prepare(&start).map_err(start_error)?;
    if let Some(workspace) = &known.workspace {
        store
            .set_run_workspace(&prepared.id, workspace, base)
            .await?;
    }
    // The commit and the hand-off run on a task of their own: a client that goes away drops
    // this future, and must not cut a committed run off from its driver.
    let run_id = prepared.id.clone();
    let committing = tokio::spawn(commit(state.clone(), key, prepared));
    match committing.await.map_err(ApiError::internal)?? {
        Claimed::Won => {
            let status = status_at_start(&state, &executor, &known.flight, &name, &run_id).await;
            Ok(accepted((run_id, status.as_str().to_owned())))
        }
        Claimed::Lost(runs) => claimed_answer(store, &runs, &name).await,
        Claimed::Pending => Err(in_progress()),
    }
}

/// Records the run under its key and, when this request won the key, hands the run over.
async fn commit(
    state: AppState,
    key: Option<String>,
    run: PreparedRun,
) -> Result<Claimed, ApiError> {
    let claim = key.as_deref().map(Claim::Key);
    state
        .start_runs(claim, std::slice::from_ref(&run), Trigger::Http)
        .await
        .map_err(start_error)
}

/// The status a new run starts in: `queued` when the flight's `max_concurrent`, or each pool
/// its agents run on (full, or the tenant at its share of it), makes it wait (as the store has
/// them now), else `running`. The run is committed and driven already, so a store that cannot
/// say answers what the run's row says: `queued`.
async fn status_at_start(
    state: &AppState,
    executor: &Executor,
    flight: &Flight,
    name: &str,
    run_id: &str,
) -> RunStatus {
    match must_wait(state, executor, flight, name, run_id).await {
        Ok(true) => RunStatus::Queued,
        Ok(false) => RunStatus::Running,
        Err(error) => {
            tracing::warn!(run = %run_id, %error, "cannot tell whether the new run waits");
            RunStatus::Queued
        }
    }
}

async fn must_wait(
    state: &AppState,
    executor: &Executor,
    flight: &Flight,
    name: &str,
    run_id: &str,
) -> Result<bool, murmur_engine::store::Error> {
    let store = state.store();
    let limit = flight.frontmatter.max_concurrent as usize;
    if limit > 0 && store.has_runs_ahead(name, run_id, limit).await? {
        return Ok(true);
    }
    // The pools as the run's driver has them: the workspace's default where the flight names none.
    let flight_pool = executor.workspace.flight_pool(flight);
    let pools: std::collections::BTreeSet<&str> = flight
        .agents
        .iter()
        .map(|agent| murmur_engine::machine::agent_pool_or(agent, flight_pool))
        .collect();
    for pool in pools {
        if !pool_must_wait(executor, pool).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether agents of `pool` would wait for a machine now: a tenant at its share of the pool
/// waits however free the pool is.
async fn pool_must_wait(
    executor: &Executor,
    pool: &str,
) -> Result<bool, murmur_engine::store::Error> {
    let (store, now) = (&executor.store, executor.clock.stamp());
    if let Some(cap) = executor.pools.tenant_capacity(pool)
        && store.tenant_machines_in_use(pool, &now).await? >= cap
    {
        return Ok(true);
    }
    let capacity = executor.pools.capacity(pool, executor.slots);
    store.pool_is_full(pool, capacity, &now).await
}

fn start_error(error: executor::Error) -> ApiError {
    match error {
        executor::Error::Prepare(error) => ApiError::invalid(error.to_string()),
        executor::Error::Store(error) => error.into(),
        other => ApiError::internal(other),
    }
}

/// The answer to a request whose key was claimed first: the claim's run, or a conflict
/// when the key started a run of another flight.
async fn claimed_answer(
    store: &Store,
    runs: &[ClaimedRun],
    flight: &str,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Some(first) = runs.first() else {
        return Err(ApiError::internal("an Idempotency-Key claim names no run"));
    };
    if first.flight != flight {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!(
                "this Idempotency-Key started run {} of flight `{}`; use a new key",
                first.run_id, first.flight
            ),
        ));
    }
    let run = store.run(&first.run_id).await?;
    Ok(accepted((run.id, run.status)))
}

/// Stripe's answer to a concurrent request whose key's first request is still at work.
fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "in_progress",
        "another request with this Idempotency-Key is still creating its run; retry shortly",
    )
}

fn accepted((run_id, status): (String, String)) -> (StatusCode, Json<Accepted>) {
    (StatusCode::ACCEPTED, Json(Accepted { run_id, status }))
}
