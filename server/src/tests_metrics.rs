//! `/metrics`: runs, agents and the queue as gauges per tenant, checkpoint and request latency
//! histograms; `/v1/metrics`: a tenant's own series only.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::StatusCode;

use std::sync::Arc;

use axum::Router;
use axum::http::{Request, header};
use murmur_engine::{Clock, SystemClock};

use super::tests::{authed, call, fixture, live_events, test_executor};
use super::{AppState, router};

/// The samples of a Prometheus text page, by series (`name{labels}`).
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_runs_agents_queues_and_latencies() {
    let f = fixture().await;
    let start = authed("POST", "/v1/flights/hello/runs")
        .body(Body::empty())
        .unwrap();
    let (status, started) = call(&f.app, start).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = started["run_id"].as_str().expect("id").to_owned();
    live_events(&f.app, &id, None).await;
    let missing = authed("GET", "/v1/nothing").body(Body::empty()).unwrap();
    assert_eq!(call(&f.app, missing).await.0, StatusCode::NOT_FOUND);

    let (status, page) = call(
        &f.app,
        authed("GET", "/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().expect("text").to_owned();
    let samples = samples(&page);
    let at = |series: &str| {
        samples
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("no {series} in\n{page}"))
    };
    assert_eq!(
        at("murmur_runs{tenant=\"local\",status=\"completed\"}"),
        1.0
    );
    assert_eq!(at("murmur_runs{tenant=\"local\",status=\"queued\"}"), 0.0);
    assert_eq!(
        at("murmur_agents{tenant=\"local\",state=\"completed\"}"),
        1.0
    );
    assert_eq!(
        at("murmur_queue_depth{tenant=\"local\",kind=\"runs\"}"),
        0.0
    );
    assert_eq!(
        at("murmur_queue_depth{tenant=\"local\",kind=\"agents\"}"),
        0.0
    );
    // The run's one attempt was claimed a machine of the local pool once.
    assert_eq!(
        at("murmur_machine_claim_duration_seconds_count{pool=\"local\"}"),
        1.0
    );
    assert_eq!(
        at("murmur_machine_claim_duration_seconds_bucket{pool=\"local\",le=\"+Inf\"}"),
        1.0
    );
    // The run was driven here under a lease (let go just after its last commit, which the
    // stream may have seen first).
    assert_eq!(at("murmur_leases_taken_total"), 1.0);
    assert!(at("murmur_leases_held") <= 1.0, "{page}");
    assert_eq!(at("murmur_leases_lost_total"), 0.0);
    let checkpoints = at("murmur_checkpoint_duration_seconds_count");
    assert!(checkpoints >= 2.0, "{page}");
    assert_eq!(
        at("murmur_checkpoint_duration_seconds_bucket{le=\"+Inf\"}"),
        checkpoints
    );
    let started = "route=\"/v1/flights/{name}/runs\",status=\"202\"";
    assert_eq!(
        at(&format!(
            "murmur_http_request_duration_seconds_count{{{started}}}"
        )),
        1.0
    );
    assert_eq!(
        at("murmur_http_request_duration_seconds_count{route=\"unmatched\",status=\"404\"}"),
        1.0
    );
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(series, _)| series.starts_with("murmur_checkpoint_duration_seconds_bucket"))
        .map(|(_, value)| *value)
        .collect();
    assert!(buckets.iter().all(|&count| count <= checkpoints), "{page}");
}

/// The server's own tenant's token (`tests::test_executor` adds it), and another tenant's.
const LOCAL: &str = "mur_test_token";
const ACME: &str = "mur_acme_token";

const ECHO: &str = "---\nruntime: exec\n---\n# Echo\n\n## say\n> command: echo hi\n";

async fn get(app: &Router, token: &str, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, body) = call(app, request).await;
    (
        status,
        body.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string()),
    )
}

/// Starts `echo` as `token` and reads its event stream to the run's end.
async fn finished_echo(app: &Router, token: &str) {
    let put = Request::put("/v1/flights/echo")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/markdown")
        .body(Body::from(ECHO))
        .expect("request");
    assert!(call(app, put).await.0.is_success());
    let start = Request::post("/v1/flights/echo/runs")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, body) = call(app, start).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().expect("id");
    let events = Request::get(format!("/v1/runs/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let (_, sse) = call(app, events).await;
    assert!(
        sse.as_str()
            .is_some_and(|s| s.contains("event: run_completed")),
        "{sse}"
    );
}

#[tokio::test]
async fn a_tenants_token_reads_its_own_series_and_the_operator_reads_every_tenants() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    let executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    let local = executor.store.clone();
    assert!(
        local
            .create_tenant("acme", &SystemClock.stamp())
            .await
            .expect("tenant")
    );
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    acme.add_token("ci", ACME, &SystemClock.stamp())
        .await
        .expect("token");
    let app = router(AppState::new(executor, dir.path().to_path_buf(), None));
    finished_echo(&app, ACME).await;
    finished_echo(&app, ACME).await;

    let (status, own) = get(&app, ACME, "/v1/metrics").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let own = samples(&own);
    assert_eq!(
        own["murmur_runs{tenant=\"acme\",status=\"completed\"}"],
        2.0
    );
    assert_eq!(
        own["murmur_agents{tenant=\"acme\",state=\"completed\"}"],
        2.0
    );
    assert_eq!(
        own["murmur_machines{tenant=\"acme\",pool=\"local\",state=\"busy\"}"],
        0.0
    );
    assert_eq!(own["murmur_secrets{tenant=\"acme\"}"], 0.0);
    for series in own.keys() {
        assert!(
            series.contains("tenant=\"acme\""),
            "only acme's series: {series}"
        );
    }
    let (_, theirs) = get(&app, LOCAL, "/v1/metrics").await;
    let theirs = samples(&theirs);
    assert_eq!(
        theirs["murmur_runs{tenant=\"local\",status=\"completed\"}"],
        0.0
    );
    assert!(
        theirs.keys().all(|series| !series.contains("acme")),
        "{theirs:?}"
    );

    let (status, refused) = get(&app, ACME, "/metrics").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused.contains("/v1/metrics"),
        "says where to look: {refused}"
    );
    assert!(!refused.contains("murmur_runs"), "{refused}");

    let (status, every) = get(&app, LOCAL, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let every = samples(&every);
    assert_eq!(
        every["murmur_runs{tenant=\"acme\",status=\"completed\"}"],
        2.0
    );
    assert_eq!(
        every["murmur_runs{tenant=\"local\",status=\"completed\"}"],
        0.0
    );
    assert_eq!(every["murmur_secrets{tenant=\"local\"}"], 0.0);
    assert!(every.contains_key("murmur_leases_taken_total"));
}
