//! `GET /v1/machines` and `GET /v1/pools`: the machines of every pool and each pool's state,
//! the same objects as `murmur machines ls --json` and `murmur pool status --json`
//! (surface.md), which build them with the views here; and the machines' gauges of
//! `/metrics`.

use crate::tenant::Scoped;
use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::get;
use axum::{Json, Router};
use murmur_engine::machine::{MachineState, PoolSpec, PoolStatus, pool_status};
use murmur_engine::store::pool_events::{PoolEvent, stopped_reason};
use murmur_engine::store::{MachineFilter, MachineRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};

/// A machine as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MachineView {
    pub id: String,
    pub pool: String,
    /// `local`, `workers`, or a cloud placement.
    pub placement: String,
    /// The provider's name for it (an instance id, a worker's host); null until provisioned.
    pub provider_id: Option<String>,
    /// `provisioning`, `idle`, `busy`, `sleeping`, `waking`, `draining`, `terminated` or `lost`.
    pub state: String,
    /// The agent it holds, as `RUN/SLUG`.
    pub agent: Option<String>,
    /// Its last heartbeat; null for machines that never sent one.
    pub last_seen_at: Option<String>,
}

impl From<&MachineRow> for MachineView {
    fn from(row: &MachineRow) -> Self {
        Self {
            id: row.id.clone(),
            pool: row.pool.clone(),
            placement: row.placement.clone(),
            provider_id: row.provider_id.clone(),
            state: row.state.as_str().to_owned(),
            agent: row.agent.as_ref().map(ToString::to_string),
            last_seen_at: row.last_seen_at.clone(),
        }
    }
}

/// A pool: its settings, its machines by state, and the agents waiting for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    pub pool: String,
    pub placement: String,
    pub max_vms: usize,
    /// Warm machines the pool keeps ready.
    pub min_idle: usize,
    /// Machines by state: every state but `terminated`, zero included.
    pub machines: BTreeMap<String, usize>,
    /// Agents of unfinished runs that are ready and wait for a machine of this pool.
    pub queued_agents: usize,
    /// Why provisioning for this cloud pool stopped (refused credentials or permission, an
    /// unusable placement), until a server restarts on it; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_stopped: Option<String>,
    /// A cloud pool's latest provisioning events, oldest first: locations passed over for
    /// lack of capacity, back-offs, stops, VMs made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<PoolEventView>,
}

/// One provisioning event of a cloud pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolEventView {
    pub at: String,
    /// `capacity`, `backoff`, `stopped`, `resumed` or `provisioned`.
    pub kind: String,
    /// The zone or subnet it was about.
    pub location: Option<String>,
    pub message: String,
}

impl From<PoolEvent> for PoolEventView {
    fn from(event: PoolEvent) -> Self {
        Self {
            at: event.at,
            kind: event.kind.as_str().to_owned(),
            location: event.location,
            message: event.message,
        }
    }
}

/// How many of a pool's latest events a view shows.
const SHOWN_EVENTS: u64 = 10;

/// The views of `pools`, each with its provisioning events: what `GET /v1/pools` and
/// `murmur pool status` show.
pub async fn pool_views(
    store: &murmur_engine::Store,
    pools: &[PoolSpec],
) -> Result<Vec<PoolView>, murmur_engine::store::Error> {
    let mut views = Vec::new();
    for status in pool_status(store, pools).await? {
        let events = store.pool_events(&status.pool, SHOWN_EVENTS).await?;
        let mut view = PoolView::from(status);
        view.provisioning_stopped = stopped_reason(&events).map(str::to_owned);
        view.events = events.into_iter().map(PoolEventView::from).collect();
        views.push(view);
    }
    Ok(views)
}

impl From<PoolStatus> for PoolView {
    fn from(status: PoolStatus) -> Self {
        Self {
            pool: status.pool,
            placement: status.placement,
            max_vms: status.max_vms,
            min_idle: status.min_idle,
            machines: status
                .machines
                .into_iter()
                .map(|(state, count)| (state.to_owned(), count))
                .collect(),
            queued_agents: status.queued_agents,
            provisioning_stopped: None,
            events: Vec::new(),
        }
    }
}

/// The pools to show: `local` first (it always exists; as configured, else with
/// `local_slots` machines), then the other configured ones in their order.
pub fn with_local(configured: &[PoolSpec], local_slots: usize) -> Vec<PoolSpec> {
    let local = configured
        .iter()
        .find(|pool| pool.name == "local")
        .cloned()
        .unwrap_or_else(|| PoolSpec::local(local_slots));
    let others = configured
        .iter()
        .filter(|pool| pool.name != "local")
        .cloned();
    std::iter::once(local).chain(others).collect()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/machines", get(list_machines))
        .route("/v1/pools", get(list_pools))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineQuery {
    pool: Option<String>,
}

/// Machines, by pool and then oldest first, optionally of one pool.
#[utoipa::path(
    get, path = "/v1/machines", tag = "machines",
    params(("pool" = Option<String>, Query, description = "only machines of this pool")),
    responses(
        (status = 200, description = "the machines", body = Vec<MachineView>),
        (status = 400, description = "an unknown query parameter", body = ErrorEnvelope),
    )
)]
pub async fn list_machines(
    Scoped(state): Scoped,
    query: Result<Query<MachineQuery>, QueryRejection>,
) -> Result<Json<Vec<MachineView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let filter = MachineFilter {
        pool: query.pool.as_deref(),
        state: None,
    };
    let machines = state.store().machines(&filter).await?;
    Ok(Json(machines.iter().map(MachineView::from).collect()))
}

/// Every pool this server knows (`local` and those of `pools:`), with its machines by state
/// and its queued agents.
#[utoipa::path(
    get, path = "/v1/pools", tag = "machines",
    responses((status = 200, description = "the pools", body = Vec<PoolView>))
)]
pub async fn list_pools(Scoped(state): Scoped) -> Result<Json<Vec<PoolView>>, ApiError> {
    Ok(Json(pool_views(state.store(), &state.pools()).await?))
}

/// `murmur_machines{tenant, pool, state}` for every known pool and state, and
/// `murmur_pool_queued_agents{tenant, pool}`: what `GET /v1/pools` shows each tenant, for
/// Prometheus. `pools` holds each tenant's name and its pools.
pub fn write_metrics(text: &mut String, pools: &[(String, &[PoolStatus])]) {
    let _ = writeln!(
        text,
        "# HELP murmur_machines Machines by tenant, pool and state.\n# TYPE murmur_machines gauge"
    );
    for (tenant, statuses) in pools {
        let tenant = escape(tenant);
        for pool in statuses.iter() {
            let name = escape(&pool.pool);
            for machine_state in MachineState::ALL {
                let count = pool.machines.get(machine_state.as_str()).copied();
                let Some(count) = count else { continue };
                let _ = writeln!(
                    text,
                    "murmur_machines{{tenant=\"{tenant}\",pool=\"{name}\",state=\"{machine_state}\"}} {count}"
                );
            }
        }
    }
    let _ = writeln!(
        text,
        "# HELP murmur_pool_queued_agents Agents ready and waiting for a machine, by tenant and pool.\n\
         # TYPE murmur_pool_queued_agents gauge"
    );
    for (tenant, statuses) in pools {
        let tenant = escape(tenant);
        for pool in statuses.iter() {
            let name = escape(&pool.pool);
            let _ = writeln!(
                text,
                "murmur_pool_queued_agents{{tenant=\"{tenant}\",pool=\"{name}\"}} {}",
                pool.queued_agents
            );
        }
    }
}

/// A label value as Prometheus wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
