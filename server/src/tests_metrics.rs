//! `/metrics`: runs, agents and the queue as gauges, checkpoint and request latency histograms.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::StatusCode;

use super::tests::{authed, call, fixture, live_events};

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
    assert_eq!(at("murmur_runs{status=\"completed\"}"), 1.0);
    assert_eq!(at("murmur_runs{status=\"queued\"}"), 0.0);
    assert_eq!(at("murmur_agents{state=\"completed\"}"), 1.0);
    assert_eq!(at("murmur_queue_depth{kind=\"runs\"}"), 0.0);
    assert_eq!(at("murmur_queue_depth{kind=\"agents\"}"), 0.0);
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
