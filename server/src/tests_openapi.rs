//! `/v1/openapi.json`: public, and it describes every route the router serves.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use super::tests::{call, fixture};

#[tokio::test]
async fn the_document_is_public_and_names_every_route() {
    let f = fixture().await;
    let (status, doc) = call(
        &f.app,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/metrics",
            "/readyz",
            "/v1/flights",
            "/v1/flights/{name}",
            "/v1/flights/{name}/runs",
            "/v1/machines",
            "/v1/metrics",
            "/v1/openapi.json",
            "/v1/pools",
            "/v1/runs",
            "/v1/runs/{id}",
            "/v1/runs/{id}/agents/{slug}/approve",
            "/v1/runs/{id}/cancel",
            "/v1/runs/{id}/events",
            "/v1/runs/{id}/retry",
            "/v1/secrets",
            "/v1/secrets/{name}",
            "/v1/webhooks/github",
            "/v1/workers/poll",
            "/v1/workers/register",
            "/v1/workers/updates",
            "/v1/workspaces",
            "/v1/workspaces/{name}",
        ]
    );
    let runs = &doc["paths"]["/v1/runs"]["get"]["responses"];
    assert_eq!(
        runs["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
    assert!(runs.get("429").is_some(), "{runs}");
    let health = &doc["paths"]["/healthz"]["get"];
    assert!(health["responses"].get("401").is_none(), "{health}");
    let envelope = &doc["components"]["schemas"]["ErrorBody"]["properties"];
    assert!(envelope.get("diagnostics").is_some(), "{envelope}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        Value::from("bearer")
    );
}
