//! `GET /metrics` in Prometheus text format: runs by status, agents by state, the queue, and
//! latency histograms of checkpoints (store commits) and of HTTP requests by route and status.
//! A live event stream's latency is the time to its first byte, not its length.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use murmur_engine::histogram::{BOUNDS, Histogram, Snapshot};
use murmur_engine::{AgentState, RunStatus};

use super::AppState;
use super::error::ApiError;

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

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = state.store();
    let runs: BTreeMap<String, i64> = store.run_counts().await?.into_iter().collect();
    let agents: BTreeMap<String, i64> = store.agent_counts().await?.into_iter().collect();
    let mut text = String::new();
    gauge_family(
        &mut text,
        "murmur_runs",
        "Runs in the store by status.",
        "status",
        RunStatus::ALL.iter().map(|s| s.as_str()),
        &runs,
    );
    gauge_family(
        &mut text,
        "murmur_agents",
        "Agents of all runs by state.",
        "state",
        AgentState::ALL.iter().map(|s| s.as_str()),
        &agents,
    );
    let queued =
        |counts: &BTreeMap<String, i64>, name: &str| counts.get(name).copied().unwrap_or(0);
    let queue = BTreeMap::from([
        (
            "agents".to_owned(),
            queued(&agents, AgentState::Queued.as_str()),
        ),
        ("runs".to_owned(), queued(&runs, RunStatus::Queued.as_str())),
    ]);
    gauge_family(
        &mut text,
        "murmur_queue_depth",
        "Work waiting: queued runs, and agents queued for a machine.",
        "kind",
        ["runs", "agents"].into_iter(),
        &queue,
    );
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
    super::machines::write_metrics(&mut text, &state).await?;
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
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
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

/// One gauge per label value, zero for values with nothing in them.
fn gauge_family<'a>(
    text: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = &'a str>,
    counts: &BTreeMap<String, i64>,
) {
    header_lines(text, name, help, "gauge");
    for value in values {
        let count = counts.get(value).copied().unwrap_or(0);
        let _ = writeln!(text, "{name}{{{label}=\"{value}\"}} {count}");
    }
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
