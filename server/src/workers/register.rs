//! `POST /v1/workers/register`: a worker token makes a machine of its pool. The machine gets
//! a credential of its own, shown once in the answer and kept only hashed; everything after
//! registration is done with it, never with the token. The machine belongs to the token's
//! tenant. A cloud VM registers the same way with
//! the one-time bootstrap credential of its boot script instead of a worker token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use murmur_engine::machine::MachineEvent;
use murmur_engine::store::NewMachine;
use murmur_protocol::worker::{Register, Registered};

use super::routes::{bearer, machine_error};
use crate::AppState;
use crate::body::json_body;
use crate::error::{ApiError, ErrorEnvelope};

/// Registers a `murmur worker`'s machine; needs a worker token of the machine's pool.
#[utoipa::path(
    post, path = "/v1/workers/register", tag = "workers", security(("bearer" = [])),
    request_body(content = Object, description = "`Register`: pool, the machine's ephemeral public key, host"),
    responses(
        (status = 200, description = "`Registered`: the machine's id, its own credential (shown once), its lease in seconds", body = Object),
        (status = 401, description = "not a worker token, or revoked", body = ErrorEnvelope),
        (status = 403, description = "the token registers machines of another pool", body = ErrorEnvelope),
        (status = 404, description = "no `workers` pool of that name here", body = ErrorEnvelope),
        (status = 409, description = "the pool has `max_vms` machines already", body = ErrorEnvelope),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Registered>, ApiError> {
    let token = bearer(&headers).ok_or_else(not_a_worker_token)?;
    let store = state.store();
    let Some(worker_token) = store.worker_token(token).await? else {
        return register_cloud(&state, &headers, token, body).await;
    };
    let mut register: Register = json_body(&headers, body, "a registration")?
        .ok_or_else(|| ApiError::invalid("send a registration"))?;
    // A worker started without `--pool` joins the token's.
    if register.pool.is_empty() {
        register.pool.clone_from(&worker_token.pool);
    }
    if register.pool != worker_token.pool {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "worker token `{}` registers machines of pool `{}` only, not `{}`; start the worker with `--pool {}` or make a token for `{}`",
                worker_token.name,
                worker_token.pool,
                register.pool,
                worker_token.pool,
                register.pool
            ),
        ));
    }
    let workers = state.workers();
    let pool = workers.pool(&register.pool).ok_or_else(|| {
        ApiError::not_found(format!(
            "this server has no `workers` pool `{}`; its workers pools: {}",
            register.pool,
            names(&workers.pool_names())
        ))
    })?;
    check_room(&state, &pool).await?;
    // The machine is the token's tenant's: it runs that tenant's attempts only (the server's
    // own tenant's machines run every tenant's).
    let owner = state.for_tenant(&worker_token.tenant).await?;
    let store = owner.store();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let credential = format!("murm_{}", uuid::Uuid::new_v4().simple());
    let (now, expires) = workers.lease_window(state.executor().clock.as_ref());
    let new = NewMachine {
        id: &id,
        pool: &pool.name,
        placement: "workers",
        public_key: Some(&register.public_key),
        credential: Some(&credential),
        lease_expires_at: Some(&expires),
        at: &now,
    };
    let created = store.create_machine(&new).await.map_err(machine_error)?;
    let up = MachineEvent::Provisioned {
        provider_id: register.host.clone(),
    };
    store
        .apply_machine_event(&id, created.version, &up, &now)
        .await
        .map_err(machine_error)?;
    tracing::info!(machine = %id, pool = %pool.name, tenant = %worker_token.tenant, host = %register.host, token = %worker_token.name, "worker registered");
    Ok(Json(Registered {
        machine_id: id,
        credential,
        lease_secs: workers.lease.as_secs(),
    }))
}

/// A cloud VM's first contact: its boot script's one-time bootstrap credential registers the
/// machine the pool manager made for it, once; from then on only the machine's own credential
/// works, so the user-data readable inside the VM is worth nothing.
async fn register_cloud(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Registered>, ApiError> {
    // Read before the credential is spent: a malformed request must not waste it.
    let register: Register = json_body(headers, body, "a registration")?
        .ok_or_else(|| ApiError::invalid("send a registration"))?;
    let store = state.store();
    let now = state.executor().clock.stamp();
    let Some(cloud) = store
        .redeem_bootstrap(token, &now)
        .await
        .map_err(machine_error)?
    else {
        return Err(not_a_worker_token());
    };
    let machine = cloud.machine;
    if !register.pool.is_empty() && register.pool != machine.pool {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this bootstrap credential registers machine {} of pool `{}`, not a machine of `{}`",
                machine.id, machine.pool, register.pool
            ),
        ));
    }
    let workers = state.workers();
    let credential = format!("murm_{}", uuid::Uuid::new_v4().simple());
    let (now, expires) = workers.lease_window(state.executor().clock.as_ref());
    let registered = store
        .register_cloud_machine(
            &machine.id,
            &register.public_key,
            &credential,
            &expires,
            &now,
        )
        .await
        .map_err(machine_error)?;
    if !registered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "machine {} is {} and no longer waits for its worker (its boot took longer than boot_timeout)",
                machine.id, machine.state
            ),
        ));
    }
    let up = MachineEvent::Provisioned {
        provider_id: cloud.instance_id.unwrap_or(register.host.clone()),
    };
    store
        .apply_machine_event(&machine.id, machine.version, &up, &now)
        .await
        .map_err(machine_error)?;
    tracing::info!(machine = %machine.id, pool = %machine.pool, host = %register.host, "cloud machine registered with its bootstrap credential");
    Ok(Json(Registered {
        machine_id: machine.id,
        credential,
        lease_secs: workers.lease.as_secs(),
    }))
}

fn not_a_worker_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send a worker token as `Authorization: Bearer TOKEN`; this one is unknown, revoked, or not a worker token (`murmur token create --worker --pool POOL` makes one), or a cloud machine's bootstrap credential that was used already or expired",
    )
}

/// `max_vms` counts the pool's machines that may still work (not draining, terminated or
/// lost), of every tenant.
async fn check_room(
    state: &AppState,
    pool: &murmur_engine::machine::PoolSpec,
) -> Result<(), ApiError> {
    let live = state.store().working_machines(&pool.name).await?;
    if live >= pool.max_vms {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "pool `{}` has {live} machines and takes at most {} (`max_vms`)",
                pool.name, pool.max_vms
            ),
        ));
    }
    Ok(())
}

fn names(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
