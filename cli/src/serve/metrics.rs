//! `GET /metrics`: Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use murmur_engine::RunStatus;

use super::AppState;
use super::error::ApiError;

/// Prometheus text: runs by status, checkpoints and their transactions, requests served.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let runs = state.store().runs(100_000).await?;
    let mut text =
        String::from("# HELP murmur_runs Runs in the store by status.\n# TYPE murmur_runs gauge\n");
    for status in RunStatus::ALL {
        let count = runs.iter().filter(|r| r.status == status.as_str()).count();
        text.push_str(&format!("murmur_runs{{status=\"{status}\"}} {count}\n"));
    }
    let writes = state.store().write_stats();
    text.push_str(&format!(
        "# HELP murmur_checkpoints_total Checkpoints committed.\n# TYPE murmur_checkpoints_total counter\nmurmur_checkpoints_total {}\n\
         # HELP murmur_checkpoint_transactions_total Transactions those checkpoints shared (group commit).\n# TYPE murmur_checkpoint_transactions_total counter\nmurmur_checkpoint_transactions_total {}\n\
         # HELP murmur_http_requests_total Authenticated API requests.\n# TYPE murmur_http_requests_total counter\nmurmur_http_requests_total {}\n",
        writes.checkpoints,
        writes.transactions,
        state.requests()
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
