//! Claims through the router: concurrent identical webhook deliveries and concurrent starts
//! with one Idempotency-Key each start one run, and every answer names it. Plus readiness.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use super::tests::{authed, call, fixture, live_events};

/// As many requests at once as the test: a burst of redeliveries or client retries.
const PARALLEL: usize = 32;
/// The fixture's webhook secret (`tests::SECRET`).
const SECRET: &str = "webhook-secret";

fn delivery(payload: &str, id: &str) -> Request<Body> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(payload.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Request::post("/v1/webhooks/github")
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", signature)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(payload.to_owned()))
        .unwrap()
}

/// Sends `PARALLEL` requests made by `request` at once; returns the answers.
async fn burst(app: &Router, request: impl Fn() -> Request<Body>) -> Vec<(StatusCode, Value)> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let app = app.clone();
        let request = request();
        calls.spawn(async move { call(&app, request).await });
    }
    calls.join_all().await
}

async fn run_ids_of(app: &Router, flight: &str) -> Vec<String> {
    let (status, runs) = call(
        app,
        authed("GET", &format!("/v1/runs?flight={flight}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    runs.as_array()
        .expect("a list")
        .iter()
        .map(|run| run["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_identical_deliveries_start_one_run() {
    let f = fixture().await;
    let payload = json!({"action": "opened", "issue": {"number": 7, "title": "Race"}, "repository": {"full_name": "acme/api"}}).to_string();
    let answers = burst(&f.app, || delivery(&payload, "d-race")).await;
    let started: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(started.len(), 1, "one delivery starts the run: {answers:?}");
    let run_id = started[0]["runs"][0]["run_id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (status, body) in &answers {
        if *status == StatusCode::ACCEPTED {
            continue;
        }
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["duplicate"], "d-race", "{body}");
        assert_eq!(body["runs"], json!([]), "{body}");
        assert_eq!(body["earlier_runs"][0]["run_id"], run_id.as_str(), "{body}");
        assert_eq!(body["earlier_runs"][0]["flight"], "triage", "{body}");
    }
    assert_eq!(
        run_ids_of(&f.app, "triage").await,
        std::slice::from_ref(&run_id)
    );
    let (_, sse) = live_events(&f.app, &run_id, None).await;
    assert!(
        sse.contains("event: run_completed"),
        "the one run is driven: {sse}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_starts_with_one_idempotency_key_start_one_run() {
    let f = fixture().await;
    let start = || {
        authed("POST", "/v1/flights/hello/runs")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "race-1")
            .body(Body::from(json!({"inputs": {"who": "race"}}).to_string()))
            .unwrap()
    };
    let answers = burst(&f.app, start).await;
    let mut named = BTreeSet::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::ACCEPTED => {
                named.insert(body["run_id"].as_str().expect("id").to_owned());
            }
            // Documented for a winner that has not committed within the claim wait.
            StatusCode::CONFLICT => assert_eq!(body["error"]["code"], "in_progress", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(
        named.len(),
        1,
        "every answer names the one run: {answers:?}"
    );
    let run_id = named.into_iter().next().expect("one");
    assert_eq!(
        run_ids_of(&f.app, "hello").await,
        std::slice::from_ref(&run_id)
    );
    let (_, sse) = live_events(&f.app, &run_id, None).await;
    assert!(sse.contains("hello race"), "the one run is driven: {sse}");
    // The key stays the run's: a later request with it, even for another flight, starts nothing.
    let reused = authed("POST", "/v1/flights/triage/runs")
        .header("Idempotency-Key", "race-1")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&f.app, reused).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("idempotency_key_reused"))
    );
}

#[tokio::test]
async fn readiness_says_this_server_drives_runs() {
    let f = fixture().await;
    let ready = || Request::get("/readyz").body(Body::empty()).unwrap();
    // The supervisor task starts with the state; readiness follows as soon as it runs.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = call(&f.app, ready()).await;
        if status == StatusCode::OK {
            assert_eq!(
                body,
                json!({"status": "ready", "drives_runs": true, "store": "ok"})
            );
            break;
        }
        assert_eq!(body["drives_runs"], false, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::task::yield_now().await;
    }
    let (status, health) = call(
        &f.app,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
}
