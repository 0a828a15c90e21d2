//! `POST /v1/runs/{id}/agents/{slug}/approve`: precise refusals, and a decision the run's
//! driver in the server takes in.

use axum::body::Body;
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::tests::{authed, call, fixture, live_events};

const GATED: &str = "---\nruntime: exec\n---\n# Gated\n\n## draft\n> gate: approve\n> command: cat | tail -n 1\n\nWrite it.\n";

fn approve(id: &str, slug: &str, body: Value) -> axum::http::Request<Body> {
    authed("POST", &format!("/v1/runs/{id}/agents/{slug}/approve"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sends the decision until the agent waits for it (the driver runs in the server, so the
/// agent gets there in its own time); `not_waiting` until then.
async fn decide_when_waiting(app: &axum::Router, id: &str, body: Value) -> Value {
    for _ in 0..500 {
        let (status, answer) = call(app, approve(id, "draft", body.clone())).await;
        match status {
            StatusCode::OK => return answer,
            StatusCode::CONFLICT => assert_eq!(answer["error"]["code"], "not_waiting"),
            other => panic!("{other}: {answer}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the agent never waited for approval");
}

#[tokio::test]
async fn a_rejection_then_an_approval_over_http_completes_the_run() {
    let f = fixture().await;
    let put = authed("PUT", "/v1/flights/gated")
        .header(header::CONTENT_TYPE, "text/markdown")
        .body(Body::from(GATED))
        .unwrap();
    assert_eq!(call(&f.app, put).await.0, StatusCode::CREATED);
    let start = authed("POST", "/v1/flights/gated/runs")
        .body(Body::empty())
        .unwrap();
    let (_, started) = call(&f.app, start).await;
    let id = started["run_id"].as_str().expect("id").to_owned();

    let early = call(&f.app, approve(&id, "nobody", json!({"approve": true}))).await;
    assert_eq!(early.0, StatusCode::NOT_FOUND, "{}", early.1);
    let plain = authed("POST", &format!("/v1/runs/{id}/agents/draft/approve"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("yes"))
        .unwrap();
    assert_eq!(
        call(&f.app, plain).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let unknown_field = json!({"approve": true, "x": 1});
    let refused = call(&f.app, approve(&id, "draft", unknown_field)).await;
    assert_eq!(refused.0, StatusCode::BAD_REQUEST, "{}", refused.1);
    let reject = json!({"approve": false, "comment": "Shorter, please."});
    let rejected = decide_when_waiting(&f.app, &id, reject).await;
    assert_eq!(rejected["decision"], "rejected");
    let approved = decide_when_waiting(&f.app, &id, json!({"approve": true})).await;
    assert_eq!(approved["decision"], "approved");
    let (_, sse) = live_events(&f.app, &id, None).await;
    assert!(sse.contains("event: run_completed"), "{sse}");
    assert!(
        sse.contains("Shorter, please."),
        "the comment reached the agent: {sse}"
    );
}
