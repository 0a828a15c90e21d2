//! `GET /metrics` in Prometheus text format, for the operator: every tenant's runs by status,
//! agents by state, queue, machines and secrets (labelled `tenant`), and the server's own
//! figures: latency histograms of checkpoints (store commits) and of HTTP requests by route and
//! status, and its leases. A live event stream's latency is the time to its first byte, not its
//! length. `GET /v1/metrics` gives a tenant's token its own tenant's series, nothing else.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use murmur_engine::histogram::{BOUNDS, Histogram, Snapshot};
use murmur_engine::machine::{PoolStatus, pool_status};
use murmur_engine::{AgentState, RunStatus};

use super::AppState;
use super::error::ApiError;
use super::tenant::Scoped;

/// Request latencies by (route, status).
#[derive(Default)]
pub struct HttpMetrics {
    by_route: Mutex<BTreeMap<(String, u16), Arc<Histogram>>>,
}

impl HttpMetrics {
    fn observe(&self, route: String, status: u16, took: Duration) {
        let histogram = self
            .by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((route, status))
            .or_default()
            .clone();
        histogram.observe(took);
    }

    fn snapshots(&self) -> Vec<((String, u16), Snapshot)> {
        let by_route = self
            .by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_route
            .iter()
            .map(|(key, histogram)| (key.clone(), histogram.snapshot()))
            .collect()
    }
}

/// Times every request; routes are named by their pattern (`/v1/runs/{id}`), so the number of
/// series stays bounded whatever ids are asked for.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = super::access_log::route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.inner.http.observe(route, status, started.elapsed());
    response
}

/// One tenant's figures: labelled with its name on `/metrics`, alone on `/v1/metrics`.
struct TenantFigures {
    tenant: String,
    runs: BTreeMap<String, i64>,
    agents: BTreeMap<String, i64>,
    pools: Vec<PoolStatus>,
    secrets: usize,
}

impl TenantFigures {
    /// Counted by `state`'s tenant's store.
    async fn of(state: &AppState) -> Result<Self, ApiError> {
        let store = state.store();
        Ok(Self {
            tenant: store.tenant().to_owned(),
            runs: store.run_counts().await?.into_iter().collect(),
            agents: store.agent_counts().await?.into_iter().collect(),
            pools: pool_status(store, &state.pools()).await?,
            secrets: store.secrets().await?.len(),
        })
    }

    fn count(counts: &BTreeMap<String, i64>, name: &str) -> i64 {
        counts.get(name).copied().unwrap_or(0)
    }
}

/// The figures of every tenant, by name.
async fn every_tenant(state: &AppState) -> Result<Vec<TenantFigures>, ApiError> {
    let mut figures = Vec::new();
    for tenant in state.store().tenants().await? {
        figures.push(TenantFigures::of(&state.for_tenant(&tenant.name).await?).await?);
    }
    Ok(figures)
}

/// The per-tenant families, one sample per tenant and label value (zero for values with
/// nothing in them), each family's header once.
fn tenant_families(text: &mut String, tenants: &[TenantFigures]) {
    let labelled = |tenant: &TenantFigures, label: &str, value: &str| {
        format!(
            "tenant=\"{}\",{label}=\"{}\"",
            escape(&tenant.tenant),
            escape(value)
        )
    };
    header_lines(
        text,
        "murmur_runs",
        "Runs in the store by tenant and status.",
        "gauge",
    );
    for tenant in tenants {
        for status in RunStatus::ALL {
            let count = TenantFigures::count(&tenant.runs, status.as_str());
            let labels = labelled(tenant, "status", status.as_str());
            let _ = writeln!(text, "murmur_runs{{{labels}}} {count}");
        }
    }
    header_lines(
        text,
        "murmur_agents",
        "Agents of all runs by tenant and state.",
        "gauge",
    );
    for tenant in tenants {
        for agent_state in AgentState::ALL {
            let count = TenantFigures::count(&tenant.agents, agent_state.as_str());
            let labels = labelled(tenant, "state", agent_state.as_str());
            let _ = writeln!(text, "murmur_agents{{{labels}}} {count}");
        }
    }
    header_lines(
        text,
        "murmur_queue_depth",
        "Work waiting, by tenant: queued runs, and agents queued for a machine.",
        "gauge",
    );
    for tenant in tenants {
        let runs = TenantFigures::count(&tenant.runs, RunStatus::Queued.as_str());
        let agents = TenantFigures::count(&tenant.agents, AgentState::Queued.as_str());
        for (kind, count) in [("runs", runs), ("agents", agents)] {
            let labels = labelled(tenant, "kind", kind);
            let _ = writeln!(text, "murmur_queue_depth{{{labels}}} {count}");
        }
    }
    let pools: Vec<(String, &[PoolStatus])> = tenants
        .iter()
        .map(|t| (t.tenant.clone(), t.pools.as_slice()))
        .collect();
    super::machines::write_metrics(text, &pools);
    header_lines(
        text,
        "murmur_secrets",
        "Secrets stored, by tenant.",
        "gauge",
    );
    for tenant in tenants {
        let name = escape(&tenant.tenant);
        let _ = writeln!(
            text,
            "murmur_secrets{{tenant=\"{name}\"}} {}",
            tenant.secrets
        );
    }
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The caller's own tenant's figures: its runs, agents, queue, machines and secrets, labelled
/// with its name; never another tenant's, nor the server's own (leases, latencies).
#[utoipa::path(
    get, path = "/v1/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format: the token's tenant's series only", body = String, content_type = "text/plain"))
)]
pub async fn tenant_metrics(Scoped(state): Scoped) -> Result<impl IntoResponse, ApiError> {
    let mut text = String::new();
    tenant_families(&mut text, &[TenantFigures::of(&state).await?]);
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text))
}

/// Every tenant's figures and the server's own, for the operator: a token of the server's own
/// tenant. Another tenant's token is refused (its figures are at `/v1/metrics`).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 403, description = "a token of a tenant other than the server's own", body = super::error::ErrorEnvelope),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    Scoped(caller): Scoped,
) -> Result<impl IntoResponse, ApiError> {
    if caller.store().tenant() != state.store().tenant() {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "`/metrics` shows every tenant and is the operator's; read your tenant's figures at `GET /v1/metrics`",
        ));
    }
    let store = state.store();
    let mut text = String::new();
    tenant_families(&mut text, &every_tenant(&state).await?);
    let writes = store.write_stats();
    counter(
        &mut text,
        "murmur_checkpoints_total",
        "Checkpoints committed.",
        writes.checkpoints,
    );
    counter(
        &mut text,
        "murmur_checkpoint_transactions_total",
        "Transactions those checkpoints shared (group commit).",
        writes.transactions,
    );
    lease_metrics(&mut text, state.executor().leases.counts());
    header_lines(
        &mut text,
        "murmur_checkpoint_duration_seconds",
        "Time from a checkpoint handed to the store until it is committed.",
        "histogram",
    );
    histogram(
        &mut text,
        "murmur_checkpoint_duration_seconds",
        "",
        &store.checkpoint_latency(),
    );
    header_lines(
        &mut text,
        "murmur_machine_claim_duration_seconds",
        "Time from an attempt handed to its pool until a machine of the pool took it, by pool.",
        "histogram",
    );
    for (pool, snapshot) in state.executor().placements.claims.snapshots() {
        let labels = format!("pool=\"{}\"", escape(&pool));
        histogram(
            &mut text,
            "murmur_machine_claim_duration_seconds",
            &labels,
            &snapshot,
        );
    }
    header_lines(
        &mut text,
        "murmur_http_request_duration_seconds",
        "HTTP request latency by route and status (to the first byte).",
        "histogram",
    );
    for ((route, status), snapshot) in state.inner.http.snapshots() {
        let labels = format!("route=\"{}\",status=\"{status}\"", escape(&route));
        histogram(
            &mut text,
            "murmur_http_request_duration_seconds",
            &labels,
            &snapshot,
        );
    }
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text))
}

/// What this server did with run leases: held now, taken (and taken over), renewed, lost.
fn lease_metrics(text: &mut String, counts: murmur_engine::executor::LeaseCounts) {
    header_lines(
        text,
        "murmur_leases_held",
        "Run leases this server holds.",
        "gauge",
    );
    let _ = writeln!(text, "murmur_leases_held {}", counts.held);
    counter(
        text,
        "murmur_leases_taken_total",
        "Run leases taken by this server.",
        counts.taken,
    );
    counter(
        text,
        "murmur_lease_takeovers_total",
        "Runs taken over from a driver whose lease expired or who is proven gone.",
        counts.taken_over,
    );
    counter(
        text,
        "murmur_lease_renewals_total",
        "Rounds of renewing every lease this server holds.",
        counts.renewals,
    );
    counter(
        text,
        "murmur_leases_lost_total",
        "Run leases lost to another process.",
        counts.lost,
    );
}

fn header_lines(text: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(text: &mut String, name: &str, help: &str, value: u64) {
    header_lines(text, name, help, "counter");
    let _ = writeln!(text, "{name} {value}");
}

fn histogram(text: &mut String, name: &str, labels: &str, snapshot: &Snapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in BOUNDS.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(text, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        text,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        snapshot.count
    );
    let braces = |labels: &str| {
        if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        }
    };
    let _ = writeln!(
        text,
        "{name}_sum{} {}",
        braces(labels),
        snapshot.sum_seconds
    );
    let _ = writeln!(text, "{name}_count{} {}", braces(labels), snapshot.count);
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
