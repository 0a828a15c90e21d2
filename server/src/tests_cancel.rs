//! Cancels racing a run's own driver: never a 500, and the run ends canceled.

use axum::body::Body;
use axum::http::{StatusCode, header};

use super::tests::{authed, call, fixture, live_events};

const SLOW: &str = "---\nruntime: exec\n---\n# Slow\n\n## wait\n> command: sleep 5; echo late\n";

#[tokio::test]
async fn repeated_cancels_of_a_driven_run_are_accepted_or_finished() {
    let f = fixture().await;
    let put = authed("PUT", "/v1/flights/slow")
        .header(header::CONTENT_TYPE, "text/markdown")
        .body(Body::from(SLOW))
        .unwrap();
    assert_eq!(call(&f.app, put).await.0, StatusCode::CREATED);
    let start = authed("POST", "/v1/flights/slow/runs")
        .body(Body::empty())
        .unwrap();
    let (_, started) = call(&f.app, start).await;
    let id = started["run_id"].as_str().expect("id").to_owned();
    for _ in 0..5 {
        let cancel = authed("POST", &format!("/v1/runs/{id}/cancel"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&f.app, cancel).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
    }
    let (_, sse) = live_events(&f.app, &id, None).await;
    assert!(sse.contains("event: run_canceled"), "{sse}");
    assert!(!sse.contains("late"), "{sse}");
}
