//! `GET /v1/runs` a page at a time, and the configurable rate limit, without a socket.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use murmur_engine::SystemClock;
use murmur_engine::store::NewRun;
use serde_json::Value;
use tower::ServiceExt;

use super::tests::{authed, test_executor};
use super::{AppState, limit, router};

struct Listing {
    _dir: tempfile::TempDir,
    app: Router,
}

/// A server whose store holds `runs` queued runs, alternating flights `one` and `two`, the
/// later ones newer.
async fn serving(runs: usize, rate: limit::Rate) -> Listing {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    let executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    for i in 0..runs {
        let created_at = format!("2026-01-01T00:00:{:02}.000Z", i);
        executor
            .store
            .create_run(&NewRun {
                id: &format!("run-{i:02}"),
                flight: if i % 2 == 0 { "one" } else { "two" },
                flight_path: None,
                source: "# F\n\n## a\n\nA.\n",
                digest: "d",
                inputs: &serde_json::json!({}),
                created_at: &created_at,
                agents: &["a".to_owned()],
                event: None,
            })
            .await
            .expect("create run");
    }
    let state = AppState::with_rate(executor, dir.path().to_path_buf(), None, rate);
    Listing {
        _dir: dir,
        app: router(state),
    }
}

async fn get(app: &Router, uri: &str) -> (StatusCode, HeaderMap, Value) {
    let request = authed("GET", uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

fn ids(body: &Value) -> Vec<String> {
    let runs = body.as_array().expect("a bare array of runs");
    runs.iter()
        .map(|run| run["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn pages_follow_the_cursor_header_and_the_link_header() {
    let listing = serving(11, limit::Rate::new(0, 0)).await;
    let (status, headers, body) = get(&listing.app, "/v1/runs?flight=two&limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["run-09", "run-07"]);
    let cursor = headers["x-next-cursor"].to_str().unwrap().to_owned();
    let link = headers[header::LINK].to_str().unwrap();
    assert_eq!(
        link,
        format!("</v1/runs?flight=two&limit=2&cursor={cursor}>; rel=\"next\"")
    );
    let mut walked = ids(&body);
    let mut next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(uri, _)| uri.to_owned());
    while let Some(uri) = next {
        let (status, headers, body) = get(&listing.app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        walked.extend(ids(&body));
        next = headers.get("x-next-cursor").map(|cursor| {
            format!(
                "/v1/runs?flight=two&limit=2&cursor={}",
                cursor.to_str().unwrap()
            )
        });
    }
    assert_eq!(walked, ["run-09", "run-07", "run-05", "run-03", "run-01"]);
    let (_, headers, body) = get(&listing.app, "/v1/runs?status=queued").await;
    assert_eq!(ids(&body).len(), 11, "all fit the default page");
    assert!(headers.get("x-next-cursor").is_none(), "the last page");
    assert!(headers.get(header::LINK).is_none());
    let (_, _, body) = get(&listing.app, "/v1/runs?status=completed").await;
    assert_eq!(body, Value::Array(Vec::new()));
}

#[tokio::test]
async fn bad_filters_limits_and_cursors_are_400_with_a_clear_message() {
    let listing = serving(3, limit::Rate::new(0, 0)).await;
    let (_, headers, _) = get(&listing.app, "/v1/runs?flight=one&limit=1").await;
    let cursor = headers["x-next-cursor"].to_str().unwrap().to_owned();
    let refused = [
        ("/v1/runs?status=sleeping", "interrupted"),
        ("/v1/runs?limit=0", "1 to 1000"),
        ("/v1/runs?limit=1001", "1 to 1000"),
        ("/v1/runs?limit=many", "limit"),
        ("/v1/runs?cursor=zz", "cursor"),
        (
            &format!("/v1/runs?flight=two&cursor={cursor}"),
            "other filters",
        ),
        ("/v1/runs?page=2", "page"),
    ];
    for (uri, says) in refused {
        let (status, _, body) = get(&listing.app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{uri}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{uri}: {message}");
    }
}

#[tokio::test]
async fn a_tiny_limit_answers_429_with_retry_after() {
    let listing = serving(0, limit::Rate::new(1, 2)).await;
    for _ in 0..2 {
        assert_eq!(get(&listing.app, "/v1/runs").await.0, StatusCode::OK);
    }
    let (status, headers, body) = get(&listing.app, "/v1/runs").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let seconds: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seconds, 1, "one request back per second, rounded up");
}

#[tokio::test]
async fn per_second_zero_never_limits() {
    let listing = serving(0, limit::Rate::new(0, 0)).await;
    for _ in 0..500 {
        let (status, headers, _) = get(&listing.app, "/v1/runs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::RETRY_AFTER).is_none());
    }
}
