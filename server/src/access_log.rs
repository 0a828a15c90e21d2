//! One log line per request: method, route pattern (never the raw path, which may carry ids
//! and tokens in queries), status and latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The route pattern that matched (`/v1/runs/{id}`), or `unmatched`: what logs and metrics
/// name a request by, so ids never multiply their series or leak into them.
pub fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned()
}

pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "murmur::http",
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_ms,
        "request"
    );
    response
}
