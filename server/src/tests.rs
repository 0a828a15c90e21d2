//! The router without a socket: every route, every refusal, through `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use murmur_engine::executor::{ClaudeSettings, Executor};
use murmur_engine::{Clock, Store, SystemClock};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};

const TOKEN: &str = "mur_test_token";
const SECRET: &str = "webhook-secret";
const FLIGHT: &str = "---\nruntime: exec\ninputs:\n  who: { default: world }\n---\n# Hello\n\n## greet\n> command: echo \"hello ${{ inputs.who }}\"\n";

const TRIAGE: &str = "---\nruntime: exec\non:\n  issue_opened: { repos: [acme/api] }\n---\n# Triage\n\n## label\n> command: echo \"issue ${{ event.issue.number }}: ${{ event.issue.title }}\"\n";

const NIGHTLY: &str = "---\nruntime: exec\non:\n  schedule: { cron: \"0 2 * * *\", timezone: Europe/Berlin }\n---\n# Nightly\n\n## report\n> command: echo \"tick ${{ event.schedule.tick }}\"\n";

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub app: Router,
}

pub(super) async fn fixture() -> Fixture {
    fixture_with(Arc::new(SystemClock)).await.0
}

pub(super) async fn fixture_with(clock: Arc<dyn Clock>) -> (Fixture, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::write(dir.path().join(".murmur/flights/hello.md"), FLIGHT).expect("flight");
    std::fs::write(dir.path().join(".murmur/flights/triage.md"), TRIAGE).expect("flight");
    std::fs::write(
        dir.path().join(".murmur/flights/broken.md"),
        "# Broken\n\n## a\n> needs: zzz\n\nA.\n",
    )
    .expect("flight");
    let executor = test_executor(dir.path(), clock).await;
    std::fs::write(dir.path().join(".murmur/flights/nightly.md"), NIGHTLY).expect("flight");
    let state = AppState::new(executor, dir.path().to_path_buf(), Some(SECRET.to_owned()));
    (
        Fixture {
            _dir: dir,
            app: router(state.clone()),
        },
        state,
    )
}

pub(super) async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// The run's live event stream, read to its end (it ends when the run has ended).
pub(super) async fn live_events(
    app: &Router,
    id: &str,
    last_event_id: Option<&str>,
) -> (StatusCode, String) {
    let mut request =
        authed("GET", &format!("/v1/runs/{id}/events")).header(header::ACCEPT, "text/event-stream");
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    let (status, body) = call(app, request.body(Body::empty()).unwrap()).await;
    (status, body.as_str().map(str::to_owned).unwrap_or_default())
}

pub(super) fn authed(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

fn json_body(value: Value) -> Body {
    Body::from(value.to_string())
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_a_token() {
    let f = fixture().await;
    let (status, body) = call(
        &f.app,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = call(
        &f.app,
        Request::get("/v1/runs").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = Request::get("/v1/runs")
        .header(header::AUTHORIZATION, "Bearer mur_wrong")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&f.app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &f.app,
        authed("GET", "/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_run_starts_once_per_idempotency_key_and_can_be_inspected() {
    let f = fixture().await;
    let start = || {
        authed("POST", "/v1/flights/hello/runs")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "key-1")
            .body(json_body(json!({"inputs": {"who": "murmur"}})))
            .unwrap()
    };
    let (status, first) = call(&f.app, start()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = call(&f.app, start()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        first["run_id"], again["run_id"],
        "the same key is the same run"
    );
    let id = first["run_id"].as_str().expect("id");
    let (status, list) = call(
        &f.app,
        authed("GET", "/v1/runs?flight=hello")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (status, run) = call(
        &f.app,
        authed("GET", &format!("/v1/runs/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["inputs"]["who"], "murmur");
    assert_eq!(run["agents"][0]["slug"], "greet");
    // The live stream ends when the run has ended: reading it to the end waits for the run.
    let (status, sse) = live_events(&f.app, id, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        sse.contains("event: agent_succeeded") && sse.contains("hello murmur"),
        "{sse}"
    );
    assert!(
        sse.trim_end()
            .lines()
            .last()
            .is_some_and(|last| last.starts_with("data: ")
                && last.contains("\"event\":{\"type\":\"run_completed\"}")),
        "{sse}"
    );
    let (_, tail) = live_events(&f.app, id, Some("3")).await;
    assert!(
        !tail.contains("id: 3\n") && tail.contains("id: 4\n"),
        "resumes after Last-Event-ID: {tail}"
    );
    let (status, events) = call(
        &f.app,
        authed("GET", &format!("/v1/runs/{id}/events"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["event"]["type"].clone()),
        Some(json!("run_completed"))
    );
    let (status, cancel) = call(
        &f.app,
        authed("POST", &format!("/v1/runs/{id}/cancel"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, cancel["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("finished"))
    );
    let (status, retry) = call(
        &f.app,
        authed("POST", &format!("/v1/runs/{id}/retry"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, retry["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("nothing_to_retry"))
    );
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let f = fixture().await;
    let post = |uri: &str, content_type: &str, body: Body| {
        authed("POST", uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap()
    };
    let cases = [
        (
            post("/v1/flights/nope/runs", "application/json", Body::empty()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            post("/v1/flights/broken/runs", "application/json", Body::empty()),
            StatusCode::BAD_REQUEST,
            "invalid_flight",
        ),
        (
            post(
                "/v1/flights/hello/runs",
                "application/json",
                Body::from("{not json"),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post(
                "/v1/flights/hello/runs",
                "application/json",
                json_body(json!({"inputz": {}})),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post(
                "/v1/flights/hello/runs",
                "application/json",
                json_body(json!({"inputs": {"whom": "x"}})),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post("/v1/flights/hello/runs", "text/plain", Body::from("who=x")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(
                "/v1/flights/hello/runs",
                "application/json",
                Body::from(vec![b' '; 2 * 1024 * 1024]),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
        ),
        (
            authed("GET", "/v1/runs/does-not-exist")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            authed("GET", "/v1/runs?status=done")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            authed("GET", "/v1/runs?colour=red")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            authed("GET", "/v2/anything").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let uri = request.uri().to_string();
        let (got, body) = call(&f.app, request).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("/tmp") && !text.to_lowercase().contains("sqlite"),
            "no internals leak: {text}"
        );
    }
    let (_, broken) = call(
        &f.app,
        post("/v1/flights/broken/runs", "application/json", Body::empty()),
    )
    .await;
    assert_eq!(broken["error"]["diagnostics"][0]["code"], "unknown-agent");
}

fn signed(body: &str, secret: &str, delivery: &str) -> Request<Body> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Request::post("/v1/webhooks/github")
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_signed_webhook_starts_the_matching_flight_once() {
    let f = fixture().await;
    let payload = json!({"action": "opened", "issue": {"number": 42, "title": "Crash on save"}, "repository": {"full_name": "acme/api"}}).to_string();
    let (status, bad) = call(&f.app, signed(&payload, "wrong-secret", "d-1")).await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("bad_signature"))
    );
    let unsigned = Request::post("/v1/webhooks/github")
        .header("X-GitHub-Event", "issues")
        .body(Body::from(payload.clone()))
        .unwrap();
    assert_eq!(call(&f.app, unsigned).await.0, StatusCode::UNAUTHORIZED);
    let (_, runs) = call(
        &f.app,
        authed("GET", "/v1/runs").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(runs, json!([]), "nothing started by refused deliveries");

    let (status, started) = call(&f.app, signed(&payload, SECRET, "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["runs"][0]["flight"], "triage");
    let id = started["runs"][0]["run_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, again) = call(&f.app, signed(&payload, SECRET, "d-1")).await;
    assert_eq!(
        (status, again["runs"].clone()),
        (StatusCode::OK, json!([])),
        "a redelivery starts nothing"
    );
    let other_repo = payload.replace("acme/api", "acme/web");
    let (_, none) = call(&f.app, signed(&other_repo, SECRET, "d-2")).await;
    assert_eq!(none["runs"], json!([]), "the repos filter applies");

    let (_, sse) = live_events(&f.app, &id, None).await;
    assert!(
        sse.contains("issue 42: Crash on save"),
        "the payload reached the prompt: {sse}"
    );
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_on_a_simulated_clock() {
    use chrono::{DateTime, Utc};
    use murmur_engine::clock::ManualClock;
    let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(at("2026-03-02T00:30:00Z")));
    let (f, state) = fixture_with(clock.clone()).await;
    let started = clock.now();
    assert!(
        super::cron::fire_due(&state, started).await.is_empty(),
        "02:00 Berlin (01:00 UTC) has not come yet"
    );
    clock.advance(chrono::Duration::minutes(31));
    let first = super::cron::fire_due(&state, started).await;
    assert_eq!(first.len(), 1, "the tick fires");
    assert!(
        super::cron::fire_due(&state, started).await.is_empty(),
        "and only once"
    );

    // A server that was down for three days and starts again owes one run, not three.
    clock.advance(chrono::Duration::days(3));
    let restarted = AppState::new(
        state.executor().clone(),
        state.inner.repository.clone(),
        None,
    );
    let late = super::cron::fire_due(&restarted, clock.now()).await;
    assert_eq!(late.len(), 1, "{late:?}");

    let (_, sse) = live_events(&f.app, &first[0], None).await;
    assert!(sse.contains("tick 2026-03-02T01:00:00.000Z"), "{sse}");
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429() {
    let f = fixture().await;
    let mut limited = None;
    for _ in 0..400 {
        let (status, body) = call(
            &f.app,
            authed("GET", "/v1/runs").body(Body::empty()).unwrap(),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
            break;
        }
    }
    let body = limited.expect("the burst runs out within 400 requests");
    assert_eq!(body["error"]["code"], "rate_limited");
}

/// An executor on a fresh SQLite store in `dir` (with the tests' token), as the server's
/// tests and the trigger tests use it.
pub(super) async fn test_executor(
    dir: &std::path::Path,
    clock: Arc<dyn murmur_engine::Clock>,
) -> Executor {
    let store = Store::open(&dir.join(".murmur/murmur.db").display().to_string())
        .await
        .expect("store");
    store
        .add_token("tests", TOKEN, &SystemClock.stamp())
        .await
        .expect("token");
    Executor {
        store,
        clock,
        slots: 2,
        work_root: dir.join(".murmur/work"),
        repository: dir.to_path_buf(),
        claude: ClaudeSettings::default(),
        codex: Default::default(),
        retry_backoff: std::time::Duration::ZERO,
        github: Default::default(),
        check_command: None,
        leases: murmur_engine::executor::Leases::new(
            murmur_engine::lease::Owner::this_process("test"),
            murmur_engine::executor::DEFAULT_TTL,
        ),
        placements: Default::default(),
        pools: Default::default(),
        environment: Default::default(),
        identity: None,
        workspace: Default::default(),
    }
}
