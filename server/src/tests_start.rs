//! The start path doing only what it must: tokens looked up through the cache yet refused
//! once revoked, flights parsed once per catalog generation or file text, and the status a
//! start answers (`queued` when `max_concurrent` or the pool makes the run wait).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use murmur_engine::store::tokens::TOKEN_CACHE_TTL;
use murmur_engine::{Clock, Store, SystemClock};
use serde_json::Value;

use super::tests::{authed, call, test_executor};
use super::{AppState, router};

const TOKEN: &str = "mur_test_token";
const HELLO: &str = "---\nruntime: exec\n---\n# Hello\n\n## greet\n> command: echo hello\n";
const ONE_AT_A_TIME: &str =
    "---\nruntime: exec\nmax_concurrent: 1\n---\n# One at a time\n\n## work\n> command: sleep 30\n";
const SLOW: &str = "---\nruntime: exec\n---\n# Slow\n\n## work\n> command: sleep 30\n";

struct Fixture {
    dir: tempfile::TempDir,
    app: Router,
    state: AppState,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let flights = dir.path().join(".murmur/flights");
    std::fs::create_dir_all(&flights).expect("mkdir");
    std::fs::write(flights.join("hello.md"), HELLO).expect("flight");
    std::fs::write(flights.join("one-at-a-time.md"), ONE_AT_A_TIME).expect("flight");
    std::fs::write(flights.join("slow.md"), SLOW).expect("flight");
    let executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    Fixture {
        app: router(state.clone()),
        state,
        dir,
    }
}

fn get_runs() -> axum::http::Request<Body> {
    authed("GET", "/v1/runs").body(Body::empty()).unwrap()
}

async fn start(app: &Router, flight: &str) -> (StatusCode, Value) {
    let request = authed("POST", &format!("/v1/flights/{flight}/runs"))
        .body(Body::empty())
        .unwrap();
    call(app, request).await
}

/// The run's pinned text.
async fn source_of(state: &AppState, run: &Value) -> String {
    let id = run["run_id"].as_str().expect("run id");
    state.store().run(id).await.expect("run").source
}

/// Waits for `condition` on the store, at most `limit`; how long it took.
async fn until<F, Fut>(limit: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < limit,
            "the condition did not hold within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_here_and_within_the_ttl_elsewhere() {
    let f = fixture().await;
    let db = f.dir.path().join(".murmur/murmur.db").display().to_string();
    let elsewhere = Store::open(&db).await.expect("a second server's store");
    assert_eq!(call(&f.app, get_runs()).await.0, StatusCode::OK);
    assert_eq!(
        elsewhere
            .authenticate(TOKEN)
            .await
            .expect("lookup")
            .as_deref(),
        Some("tests"),
        "both servers have the token cached now"
    );
    assert_eq!(
        f.state.store().revoke_token("tests").await.expect("revoke"),
        1
    );
    let (status, body) = call(&f.app, get_runs()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refused at once here: {body}"
    );
    let took = until(TOKEN_CACHE_TTL + Duration::from_secs(5), || async {
        elsewhere
            .authenticate(TOKEN)
            .await
            .expect("lookup")
            .is_none()
    })
    .await;
    assert!(
        took <= TOKEN_CACHE_TTL + Duration::from_millis(500),
        "refused by the other server within the cache's time ({took:?})"
    );
    assert_eq!(
        f.state.store().revoke_token("tests").await.expect("revoke"),
        0
    );
}

#[tokio::test]
async fn a_new_token_works_at_once_and_unknown_tokens_are_never_kept() {
    let f = fixture().await;
    let wrong = || {
        axum::http::Request::get("/v1/runs")
            .header(header::AUTHORIZATION, "Bearer mur_later")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&f.app, wrong()).await.0, StatusCode::UNAUTHORIZED);
    let store = f.state.store();
    store
        .add_token("later", "mur_later", &SystemClock.stamp())
        .await
        .expect("token");
    assert_eq!(call(&f.app, wrong()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn flights_are_parsed_once_per_file_text_and_catalog_generation() {
    let f = fixture().await;
    let parsed = || f.state.inner.parsed.parses();
    let first = start(&f.app, "hello").await;
    let second = start(&f.app, "hello").await;
    assert_eq!(
        (first.0, second.0),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(parsed(), 1, "the same file text is parsed once");

    let edited = HELLO.replace("echo hello", "echo edited");
    std::fs::write(f.dir.path().join(".murmur/flights/hello.md"), &edited).expect("edit");
    let after_edit = start(&f.app, "hello").await.1;
    assert_eq!(parsed(), 2, "a changed file is read again");
    assert_eq!(source_of(&f.state, &after_edit).await, edited);

    let v1 = HELLO.replace("echo hello", "echo catalog-1");
    let put = |text: String| {
        authed("PUT", "/v1/flights/hello")
            .header(header::CONTENT_TYPE, "text/markdown")
            .body(Body::from(text))
            .unwrap()
    };
    assert_eq!(call(&f.app, put(v1.clone())).await.0, StatusCode::CREATED);
    let before = parsed();
    let from_catalog = start(&f.app, "hello").await.1;
    start(&f.app, "hello").await;
    assert_eq!(parsed(), before + 1, "one parse for the generation");
    assert_eq!(source_of(&f.state, &from_catalog).await, v1);

    let v2 = HELLO.replace("echo hello", "echo catalog-2");
    assert_eq!(call(&f.app, put(v2.clone())).await.0, StatusCode::OK);
    let newer = start(&f.app, "hello").await.1;
    assert_eq!(parsed(), before + 2, "a new generation is parsed again");
    assert_eq!(source_of(&f.state, &newer).await, v2);
}

#[tokio::test]
async fn a_start_answers_queued_when_max_concurrent_is_reached_else_running() {
    let f = fixture().await;
    let (status, first) = start(&f.app, "one-at-a-time").await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::ACCEPTED, Some("running"))
    );
    let (status, second) = start(&f.app, "one-at-a-time").await;
    assert_eq!(
        (status, second["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    let id = second["run_id"].as_str().expect("id");
    assert_eq!(f.state.store().run(id).await.expect("run").status, "queued");
}

#[tokio::test]
async fn a_start_answers_queued_while_the_pool_is_full() {
    let f = fixture().await;
    for _ in 0..2 {
        let (status, run) = start(&f.app, "slow").await;
        assert_eq!(
            (status, run["status"].as_str()),
            (StatusCode::ACCEPTED, Some("running"))
        );
    }
    let store = f.state.store();
    until(Duration::from_secs(30), || async {
        let now = SystemClock.stamp();
        store
            .machines_in_use("local", &now)
            .await
            .expect("machines")
            >= 2
    })
    .await;
    let (status, third) = start(&f.app, "slow").await;
    assert_eq!(
        (status, third["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
}
