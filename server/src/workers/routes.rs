//! The worker protocol's routes after registration, each with the machine's own credential:
//! `poll` renews the machine's lease and answers what it should start and stop (waiting a
//! while when there is nothing); `updates` takes its attempts' numbered updates once each.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::post;
use axum::{Json, Router};
use murmur_engine::machine::{MachineEvent, MachineState, Release};
use murmur_engine::store::MachineRow;
use murmur_engine::store::machine_log::Error as MachineError;
use murmur_protocol::worker::{Acknowledged, Poll, Updates, Work};
use murmur_protocol::{AttemptFailure, AttemptSpec, AttemptUpdate, FailureKind};

use super::dispatch::{Accepted, Affinity, Queued, Serves};
use super::{LONGEST_WAIT, Workers};
use crate::AppState;
use crate::body::json_body;
use crate::error::{ApiError, ErrorEnvelope};

/// Mounted outside the API token guard: these routes take worker tokens and machine
/// credentials instead.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workers/register", post(super::register::register))
        .route("/v1/workers/poll", post(poll))
        .route("/v1/workers/updates", post(updates))
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

pub(super) fn machine_error(error: MachineError) -> ApiError {
    match error {
        MachineError::Store(error) => error.into(),
        MachineError::Terminated(_) => no_machine(),
        other => ApiError::internal(other),
    }
}

fn no_machine() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send the machine's credential from its registration as `Authorization: Bearer CREDENTIAL`; this one is unknown or its machine was terminated (register again)",
    )
}

/// The machine whose credential the request came with, its lease renewed, and the state of
/// its tenant, which every read and write about it goes through.
async fn heartbeat(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(AppState, MachineRow), ApiError> {
    let credential = bearer(headers).ok_or_else(no_machine)?;
    let (tenant, id) = state
        .store()
        .machine_of_credential(credential)
        .await?
        .ok_or_else(no_machine)?;
    let state = state.for_tenant(&tenant).await?;
    let (now, expires) = state
        .workers()
        .lease_window(state.executor().clock.as_ref());
    let machine = state
        .store()
        .renew_machine_lease(&id, &now, &expires)
        .await
        .map_err(machine_error)?;
    if machine.placement == "local" {
        return Err(no_machine());
    }
    Ok((state, machine))
}

/// Asks for work; renews the machine's lease.
#[utoipa::path(
    post, path = "/v1/workers/poll", tag = "workers", security(("bearer" = [])),
    request_body(content = Object, description = "`Poll`: the attempts the machine runs, how long to wait for work"),
    responses(
        (status = 200, description = "`Work`: attempts to start and to stop", body = Object),
        (status = 401, description = "not a machine's credential, or its machine was terminated", body = ErrorEnvelope),
    )
)]
pub async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Work>, ApiError> {
    let (state, mut machine) = heartbeat(&state, &headers).await?;
    let poll: Poll = json_body(&headers, body, "a poll")?.unwrap_or_default();
    let workers = state.workers().clone();
    machine = settle(&state, &workers, machine).await?;
    let wait = Duration::from_millis(poll.wait_ms).min(LONGEST_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let changed = workers.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let stop = workers.dispatch().stops_for(&machine.id, &poll.running);
        if !stop.is_empty() {
            return Ok(Json(Work {
                start: Vec::new(),
                stop,
            }));
        }
        if machine.state == MachineState::Idle
            && let Some(spec) = assign(&state, &workers, &mut machine).await?
        {
            return Ok(Json(Work {
                start: vec![spec],
                stop: Vec::new(),
            }));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Ok(Json(Work::default()));
        }
    }
}

/// A machine that comes back after it was lost is free again (its attempts were retried
/// elsewhere and it is told to stop them); one that is busy with nothing this server assigned
/// (the server restarted meanwhile) is released.
async fn settle(
    state: &AppState,
    workers: &Workers,
    machine: MachineRow,
) -> Result<MachineRow, ApiError> {
    let event = match machine.state {
        MachineState::Lost => MachineEvent::Returned,
        MachineState::Busy if !workers.dispatch().holds(&machine.id) => {
            MachineEvent::Released { how: Release::Keep }
        }
        _ => return Ok(machine),
    };
    let now = state.executor().clock.stamp();
    match state
        .store()
        .apply_machine_event(&machine.id, machine.version, &event, &now)
        .await
    {
        Ok(settled) => {
            tracing::info!(machine = %settled.id, event = event.kind(), "worker machine settled");
            Ok(settled)
        }
        // Changed meanwhile (lost again, drained): as it is now.
        Err(MachineError::Conflict { .. } | MachineError::Refused { .. }) => state
            .store()
            .machine(&machine.id)
            .await
            .map_err(machine_error),
        Err(error) => Err(machine_error(error)),
    }
}

/// Seals the attempt's secrets to the machine's ephemeral key, which it registered with; the
/// plaintext is dropped here.
fn seal_for(machine: &MachineRow, queued: &mut Queued) -> Result<(), AttemptFailure> {
    let Some(secrets) = queued.secrets.take() else {
        return Ok(());
    };
    let failed = |message: String| AttemptFailure::new(FailureKind::Failed, message);
    let public = machine
        .public_key
        .as_deref()
        .ok_or_else(|| failed(format!("machine {} registered no key", machine.id)))
        .and_then(|key| {
            murmur_vault::MachinePublicKey::from_base64(key).map_err(|e| failed(e.to_string()))
        })?;
    murmur_engine::executor::placement::seal_into(&mut queued.spec, &secrets, &public)
        .map_err(|e| failed(e.to_string()))
}

/// What each machine the pool's waiting attempts are meant for is now: a live machine of
/// the pool keeps its attempts waiting for it. The machine may be of the attempt's tenant or
/// of the server's own, which serves every tenant.
async fn affinities(
    state: &AppState,
    workers: &Workers,
    machine: &MachineRow,
) -> Result<BTreeMap<String, Affinity>, ApiError> {
    let ids = workers
        .dispatch()
        .affinities(&machine.pool, &machine.id, serves(state));
    let now = state.executor().clock.stamp();
    let mut known = BTreeMap::new();
    for (tenant, id) in ids {
        let verdict = match affinity_machine(state, &tenant, &id).await? {
            Some(row) if row.pool != machine.pool => Affinity::Elsewhere,
            Some(row) if lives(&row, &now) => Affinity::Live,
            Some(_) => Affinity::Gone,
            None => Affinity::Elsewhere,
        };
        known.insert(id, verdict);
    }
    Ok(known)
}

/// Machine `id`, of `tenant` (an attempt's) or of the server's own tenant.
async fn affinity_machine(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<Option<MachineRow>, ApiError> {
    let theirs = state.for_tenant(tenant).await?;
    let own = state.for_tenant(state.own_tenant()).await?;
    for store in [theirs.store(), own.store()] {
        match store.machine(id).await {
            Ok(row) => return Ok(Some(row)),
            Err(MachineError::NoMachine(_)) => continue,
            Err(error) => return Err(machine_error(error)),
        }
    }
    Ok(None)
}

/// Whose attempts the machine of `state`'s tenant runs.
fn serves(state: &AppState) -> Serves<'_> {
    if state.store().tenant() == state.own_tenant() {
        Serves::Every
    } else {
        Serves::Tenant(state.store().tenant())
    }
}

/// Whether the machine can still run what it holds: neither lost nor on its way out, and
/// heard from within its lease.
fn lives(machine: &MachineRow, now: &str) -> bool {
    let gone = matches!(
        machine.state,
        MachineState::Lost | MachineState::Draining | MachineState::Terminated
    );
    let silent = machine
        .lease_expires_at
        .as_deref()
        .is_some_and(|expires| expires <= now);
    !gone && !silent
}

/// Takes the oldest attempt waiting for the machine's pool that it may run (see
/// [`Affinity`]), claiming the machine for it.
async fn assign(
    state: &AppState,
    workers: &Workers,
    machine: &mut MachineRow,
) -> Result<Option<AttemptSpec>, ApiError> {
    let known = affinities(state, workers, machine).await?;
    let verdict = |id: &str| known.get(id).copied().unwrap_or(Affinity::Elsewhere);
    let Some((mut queued, instead_of)) =
        workers
            .dispatch()
            .take_for(&machine.pool, &machine.id, serves(state), verdict)
    else {
        return Ok(None);
    };
    if let Err(failure) = seal_for(machine, &mut queued) {
        let _ = queued.updates.send(AttemptUpdate::Ended {
            outcome: Err(failure),
        });
        return Ok(None);
    }
    let key = &queued.spec.key;
    let claimed = MachineEvent::Claimed {
        run_id: key.run_id.clone(),
        slug: key.slug.clone(),
        attempt: key.attempt,
    };
    let now = state.executor().clock.stamp();
    let store = state.store();
    match store
        .apply_machine_event(&machine.id, machine.version, &claimed, &now)
        .await
    {
        Ok(busy) => {
            *machine = busy;
            if let Some(gone) = &instead_of {
                tracing::info!(machine = %machine.id, instead_of = %gone, attempt = %queued.spec.key, "the machine holding the agent's session is gone: resuming it here from its branch");
            }
            Ok(Some(workers.dispatch().assign(
                &machine.id,
                queued,
                instead_of,
            )))
        }
        Err(error) => {
            workers.dispatch().put_back(&machine.pool, queued);
            workers.changed.notify_waiters();
            match error {
                MachineError::Conflict { .. } | MachineError::Refused { .. } => {
                    *machine = store.machine(&machine.id).await.map_err(machine_error)?;
                    Ok(None)
                }
                other => Err(machine_error(other)),
            }
        }
    }
}

/// Takes the machine's attempts' updates, once each and in order.
#[utoipa::path(
    post, path = "/v1/workers/updates", tag = "workers", security(("bearer" = [])),
    request_body(content = Object, description = "`Updates`: per attempt, its updates not yet acknowledged, numbered from 1"),
    responses(
        (status = 200, description = "`Acknowledged`: per attempt, the last update taken; attempts to stop", body = Object),
        (status = 401, description = "not a machine's credential, or its machine was terminated", body = ErrorEnvelope),
    )
)]
pub async fn updates(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Acknowledged>, ApiError> {
    let (state, machine) = heartbeat(&state, &headers).await?;
    let updates: Updates = json_body(&headers, body, "updates")?.unwrap_or_default();
    let workers = state.workers().clone();
    let mut answer = Acknowledged::default();
    let mut ended = false;
    for batch in updates.attempts {
        let key = batch.key.clone();
        match workers.dispatch().accept(&machine.id, batch) {
            Accepted::Taken { ack, ended: done } => {
                answer.acks.push(ack);
                ended |= done;
            }
            Accepted::Stop => answer.stop.push(key),
        }
    }
    if ended {
        release(&state, &machine.id).await?;
        workers.changed.notify_waiters();
    }
    Ok(Json(answer))
}

/// The attempt ended: the machine is free for the pool's next one.
async fn release(state: &AppState, id: &str) -> Result<(), ApiError> {
    let store = state.store();
    let machine = store.machine(id).await.map_err(machine_error)?;
    if machine.state != MachineState::Busy {
        return Ok(());
    }
    let keep = MachineEvent::Released { how: Release::Keep };
    let now = state.executor().clock.stamp();
    match store
        .apply_machine_event(id, machine.version, &keep, &now)
        .await
    {
        // Lost or drained meanwhile: its next poll settles it.
        Ok(_) | Err(MachineError::Conflict { .. } | MachineError::Refused { .. }) => Ok(()),
        Err(error) => Err(machine_error(error)),
    }
}
