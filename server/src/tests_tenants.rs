//! Two tenants behind one server, through the router: the same flight names (with different
//! texts), run ids with a common prefix, a secret of the same name, a machine each. Every
//! route answers the other tenant's ids with the same 404 as ids that do not exist, lists
//! show only the caller's rows, and a revoked token is refused on the very next request.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use murmur_engine::store::{NewMachine, NewRun};
use murmur_engine::{Clock, Store, SystemClock};
use murmur_vault::{Kek, Keyring, LocalKek};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::tests::{call, test_executor};
use super::{AppState, router};

/// The server's own tenant's token (`tests::test_executor` adds it).
const LOCAL: &str = "mur_test_token";
const ACME: &str = "mur_acme_token";
const AT: &str = "2026-01-01T00:00:00.000Z";

fn deploy(word: &str) -> String {
    format!("---\nruntime: exec\n---\n# Deploy\n\n## build\n> command: echo {word}-deploy\n")
}

struct Two {
    _dir: tempfile::TempDir,
    app: Router,
    local: Store,
    acme: Store,
}

async fn two_tenants() -> Two {
    two_tenants_with(|_| {}).await
}

/// [`two_tenants`] with the server's executor adjusted first.
async fn two_tenants_with(adjust: impl FnOnce(&mut murmur_engine::executor::Executor)) -> Two {
    let dir = tempfile::tempdir().expect("temp dir");
    let flights = dir.path().join(".murmur/flights");
    std::fs::create_dir_all(&flights).expect("mkdir");
    std::fs::write(flights.join("repo-only.md"), deploy("repo")).expect("flight");
    let mut executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    let kek = LocalKek::generate().expect("a key");
    executor.environment.keyring = Ok(Arc::new(Keyring::new(Kek::Local(kek))));
    adjust(&mut executor);
    let local = executor.store.clone();
    assert!(local.create_tenant("acme", AT).await.expect("tenant"));
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    acme.add_token("ci", ACME, &SystemClock.stamp())
        .await
        .expect("token");
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    Two {
        _dir: dir,
        app: router(state),
        local,
        acme,
    }
}

fn request(token: &str, method: &str, uri: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

async fn put_flight(app: &Router, token: &str, name: &str, text: &str) {
    let put = Request::put(format!("/v1/flights/{name}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/markdown")
        .body(Body::from(text.to_owned()))
        .expect("request");
    let (status, body) = call(app, put).await;
    assert!(status.is_success(), "{status} {body}");
}

/// Starts `deploy` as `token` and reads its event stream to the run's end.
async fn finished_deploy(app: &Router, token: &str) -> (String, String) {
    let start = request(token, "POST", "/v1/flights/deploy/runs", Some(json!({})));
    let (status, body) = call(app, start).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().expect("id").to_owned();
    let events = Request::get(format!("/v1/runs/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let (status, sse) = call(app, events).await;
    assert_eq!(status, StatusCode::OK);
    let sse = sse.as_str().unwrap_or_default().to_owned();
    assert!(sse.contains("event: run_completed"), "{sse}");
    (id, sse)
}

async fn store_run(store: &Store, id: &str) {
    let agents = vec!["build".to_owned()];
    let source = deploy(store.tenant());
    let run = NewRun {
        id,
        flight: "deploy",
        flight_path: None,
        source: &source,
        digest: "d",
        inputs: &json!({}),
        created_at: AT,
        agents: &agents,
        event: None,
    };
    store.create_run(&run).await.expect("create run");
}

/// One request of the cross-tenant checks: `uri` names another tenant's `id`.
struct Probe<'a> {
    method: &'a str,
    uri: String,
    body: Option<Value>,
}

fn probe(method: &str, uri: String) -> Probe<'_> {
    let body = if uri.ends_with("/approve") {
        Some(json!({"approve": true}))
    } else if uri.ends_with("/queue") {
        Some(json!({"text": "again"}))
    } else {
        (method == "POST").then(|| json!({}))
    };
    Probe { method, uri, body }
}

/// Asserts that the probe of `id` (another tenant's) answers exactly as the same request
/// for `missing`, which nobody has.
async fn same_as_missing(app: &Router, token: &str, probe: Probe<'_>, id: &str, missing: &str) {
    let Probe { method, uri, body } = probe;
    let (status, other) = call(app, request(token, method, &uri, body.clone())).await;
    let absent = uri.replace(id, missing);
    let (absent_status, nobody) = call(app, request(token, method, &absent, body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {other}");
    assert_eq!(
        absent_status,
        StatusCode::NOT_FOUND,
        "{method} {absent}: {nobody}"
    );
    assert_eq!(
        other.to_string().replace(id, "ID"),
        nobody.to_string().replace(missing, "ID"),
        "{method} {uri}: another tenant's answers as a missing one"
    );
}

async fn run_ids(app: &Router, token: &str) -> Vec<String> {
    let (status, body) = call(app, request(token, "GET", "/v1/runs", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let list = list.as_array().unwrap_or_else(|| panic!("a list: {list}"));
    list.iter()
        .map(|e| e[key].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn every_run_route_answers_another_tenants_ids_as_missing() {
    let t = two_tenants().await;
    put_flight(&t.app, LOCAL, "deploy", &deploy("local")).await;
    put_flight(&t.app, ACME, "deploy", &deploy("acme")).await;
    let (local_run, local_log) = finished_deploy(&t.app, LOCAL).await;
    let (acme_run, acme_log) = finished_deploy(&t.app, ACME).await;
    assert!(local_log.contains("local-deploy"), "{local_log}");
    assert!(
        acme_log.contains("acme-deploy") && !acme_log.contains("local-deploy"),
        "acme's deploy runs acme's text: {acme_log}"
    );
    store_run(&t.local, "0aa1local").await;
    store_run(&t.acme, "0aa2acme").await;

    for (token, own, other) in [
        (LOCAL, [&local_run, "0aa1local"], [&acme_run, "0aa2acme"]),
        (ACME, [&acme_run, "0aa2acme"], [&local_run, "0aa1local"]),
    ] {
        let mut listed = run_ids(&t.app, token).await;
        listed.sort();
        let mut expected = own.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(listed, expected, "{token} lists its own runs only");
        for id in other {
            for (method, uri) in [
                ("GET", format!("/v1/runs/{id}")),
                ("GET", format!("/v1/runs/{id}/events")),
                ("POST", format!("/v1/runs/{id}/cancel")),
                ("POST", format!("/v1/runs/{id}/retry")),
                ("POST", format!("/v1/runs/{id}/agents/build/approve")),
                ("POST", format!("/ui/runs/{id}/agents/build/queue")),
                ("GET", format!("/ui/runs/{id}")),
                ("GET", format!("/ui/runs/{id}/agents/build/log")),
            ] {
                same_as_missing(&t.app, token, probe(method, uri), id, "zzzmissing").await;
            }
            let stream = Request::get(format!("/v1/runs/{id}/events"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ACCEPT, "text/event-stream")
                .body(Body::empty())
                .expect("request");
            assert_eq!(call(&t.app, stream).await.0, StatusCode::NOT_FOUND);
        }
    }
    let first = first_live_frame(&t.app, ACME).await;
    assert!(
        first.contains(&acme_run) && first.contains("0aa2acme"),
        "{first}"
    );
    assert!(
        !first.contains(&local_run) && !first.contains("0aa1local"),
        "the live list is acme's only: {first}"
    );
}

/// The first frame of the dashboard's live runs list.
async fn first_live_frame(app: &Router, token: &str) -> String {
    let live = request(token, "GET", "/ui/runs/live", None);
    let response = app.clone().oneshot(live).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut frames = response.into_body().into_data_stream();
    let frame = frames.next().await.expect("a frame").expect("bytes");
    String::from_utf8_lossy(&frame).into_owned()
}

#[tokio::test]
async fn flights_secrets_and_machines_are_each_tenants_own() {
    let t = two_tenants().await;
    put_flight(&t.app, LOCAL, "deploy", &deploy("local")).await;
    put_flight(&t.app, ACME, "deploy", &deploy("acme")).await;
    put_flight(&t.app, ACME, "acme-only", &deploy("acme")).await;
    let (_, local_flights) = call(&t.app, request(LOCAL, "GET", "/v1/flights", None)).await;
    assert_eq!(names(&local_flights, "name"), ["deploy", "repo-only"]);
    let (_, acme_flights) = call(&t.app, request(ACME, "GET", "/v1/flights", None)).await;
    assert_eq!(
        names(&acme_flights, "name"),
        ["acme-only", "deploy"],
        "the repository's files are the server's tenant's"
    );
    let (_, shown) = call(&t.app, request(ACME, "GET", "/v1/flights/deploy", None)).await;
    assert!(shown.to_string().contains("acme-deploy"), "{shown}");
    let (_, ui) = call(&t.app, request(ACME, "GET", "/ui/flights", None)).await;
    assert_eq!(names(&ui, "name"), ["acme-only", "deploy"]);

    for (token, name) in [(LOCAL, "acme-only"), (ACME, "repo-only")] {
        for (method, uri) in [
            ("GET", format!("/v1/flights/{name}")),
            ("GET", format!("/v1/flights/{name}?generation=1")),
            ("GET", format!("/ui/flights/{name}")),
            ("DELETE", format!("/v1/flights/{name}")),
            ("POST", format!("/v1/flights/{name}/runs")),
        ] {
            same_as_missing(&t.app, token, probe(method, uri), name, "zzz-missing").await;
        }
    }

    let secret = |token: &str, name: &str, value: &str| {
        request(
            token,
            "PUT",
            &format!("/v1/secrets/{name}"),
            Some(json!({ "value": value })),
        )
    };
    assert_eq!(
        call(&t.app, secret(LOCAL, "TOKEN", "l")).await.0,
        StatusCode::CREATED
    );
    let (status, _) = call(&t.app, secret(ACME, "TOKEN", "a")).await;
    assert_eq!(status, StatusCode::CREATED, "the same name is acme's own");
    assert_eq!(
        call(&t.app, secret(ACME, "ONLY_ACME", "a")).await.0,
        StatusCode::CREATED
    );
    let (_, listed) = call(&t.app, request(LOCAL, "GET", "/v1/secrets", None)).await;
    assert_eq!(names(&listed, "name"), ["TOKEN"]);
    let remove = probe("DELETE", "/v1/secrets/ONLY_ACME".to_owned());
    same_as_missing(&t.app, LOCAL, remove, "ONLY_ACME", "ZZZ_MISSING").await;
    let (_, listed) = call(&t.app, request(ACME, "GET", "/v1/secrets", None)).await;
    assert_eq!(
        names(&listed, "name"),
        ["ONLY_ACME", "TOKEN"],
        "nothing removed"
    );

    let machine = |id| NewMachine {
        id,
        pool: "local",
        placement: "local",
        public_key: None,
        credential: None,
        lease_expires_at: None,
        at: AT,
    };
    t.acme
        .create_machine(&machine("m-acme"))
        .await
        .expect("machine");
    let (_, machines) = call(&t.app, request(LOCAL, "GET", "/v1/machines", None)).await;
    assert!(!machines.to_string().contains("m-acme"), "{machines}");
    let (_, machines) = call(&t.app, request(ACME, "GET", "/v1/machines", None)).await;
    assert_eq!(names(&machines, "id"), ["m-acme"]);
    let total = |pools: &Value| -> u64 {
        let pools = pools.as_array().expect("pools");
        let counts = pools
            .iter()
            .flat_map(|p| p["machines"].as_object().expect("counts").values());
        counts.map(|n| n.as_u64().expect("a count")).sum()
    };
    let (_, pools) = call(&t.app, request(LOCAL, "GET", "/v1/pools", None)).await;
    assert_eq!(
        total(&pools),
        0,
        "local counts none of acme's machines: {pools}"
    );
    let (_, pools) = call(&t.app, request(ACME, "GET", "/v1/pools", None)).await;
    assert_eq!(total(&pools), 1, "{pools}");
}

/// A dashboard session of `token`: its cookie.
async fn session(app: &Router, token: &str) -> String {
    let form = app
        .clone()
        .oneshot(Request::get("/login").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let cookie = form.headers()[header::SET_COOKIE].to_str().expect("ascii");
    let cookie = cookie.split(';').next().expect("cookie").to_owned();
    let page = axum::body::to_bytes(form.into_body(), usize::MAX)
        .await
        .expect("page");
    let page = String::from_utf8_lossy(&page);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("csrf field");
    let csrf = &csrf[..csrf.find('"').expect("end")];
    let login = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(format!("token={token}&csrf={csrf}")))
        .expect("request");
    let answer = app.clone().oneshot(login).await.expect("infallible");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let session = answer.headers().get_all(header::SET_COOKIE).iter();
    let session = session
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("murmur_session="))
        .expect("a session cookie");
    session.split(';').next().expect("cookie").to_owned()
}

async fn page(app: &Router, cookie: &str, uri: &str) -> StatusCode {
    let get = Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request");
    app.clone().oneshot(get).await.expect("infallible").status()
}

#[tokio::test]
async fn a_dashboard_session_sees_its_tenant_and_a_revoked_token_is_refused_at_once() {
    let t = two_tenants().await;
    put_flight(&t.app, ACME, "deploy", &deploy("acme")).await;
    let (acme_run, _) = finished_deploy(&t.app, ACME).await;
    store_run(&t.local, "0aa1local").await;
    let browser = session(&t.app, ACME).await;
    assert_eq!(
        page(&t.app, &browser, &format!("/runs/{acme_run}")).await,
        StatusCode::OK
    );
    assert_eq!(
        page(&t.app, &browser, "/flights/deploy").await,
        StatusCode::OK
    );
    assert_eq!(
        page(&t.app, &browser, "/runs/0aa1local").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&t.app, &browser, "/flights/repo-only").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&t.app, &browser, "/v1/runs/0aa1local").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&t.app, &browser, &format!("/v1/runs/{acme_run}")).await,
        StatusCode::OK
    );

    assert_eq!(run_ids(&t.app, ACME).await, std::slice::from_ref(&acme_run));
    assert_eq!(t.acme.revoke_token("ci").await.expect("revoke"), 1);
    let (status, body) = call(&t.app, request(ACME, "GET", "/v1/runs", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the next request: {body}");
    assert_eq!(
        page(&t.app, &browser, &format!("/v1/runs/{acme_run}")).await,
        StatusCode::UNAUTHORIZED,
        "the session of a revoked token"
    );
    assert_eq!(
        page(&t.app, &browser, "/").await,
        StatusCode::SEE_OTHER,
        "back to the login"
    );
    assert_eq!(
        run_ids(&t.app, LOCAL).await,
        ["0aa1local"],
        "local's token still works"
    );
}

/// Makes agent `build` of the run `id` of `store`'s tenant hold a machine of the local pool
/// until far in the future, as a driver's checkpoint would.
async fn hold_a_machine(store: &Store, id: &str) {
    let owner = murmur_engine::lease::Owner::this_process("tests");
    let machines = murmur_engine::store::MachineUse {
        owner: owner.id.clone(),
        holder: owner.holder.clone(),
        expires_at: "2999-01-01T00:00:00.000Z".to_owned(),
        run_created_at: AT.to_owned(),
        pools: vec![murmur_engine::store::PoolUse {
            pool: "local".to_owned(),
            capacity: 3,
            tenant_capacity: Some(1),
            done_waiting: false,
            hold: vec![("build".to_owned(), 1)],
            free: Vec::new(),
        }],
    };
    let commit = murmur_engine::store::Commit {
        run_id: id,
        expected_version: 0,
        at: AT,
        events: &[],
        agents: &[],
        status: murmur_engine::RunStatus::Running,
        finished_at: None,
        fence: None,
        machines: Some(&machines),
    };
    store.commit(&commit).await.expect("hold a machine");
}

#[tokio::test]
async fn a_start_answers_queued_while_its_tenant_holds_its_share_of_the_pool() {
    let two = two_tenants_with(|executor| {
        executor.slots = 3;
        executor
            .pools
            .max_vms_per_tenant
            .insert("local".to_owned(), 1);
    })
    .await;
    store_run(&two.local, "held-run").await;
    hold_a_machine(&two.local, "held-run").await;
    let now = SystemClock.stamp();
    assert_eq!(
        two.acme
            .machines_in_use("local", &now)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        two.acme
            .tenant_machines_in_use("local", &now)
            .await
            .expect("count"),
        0
    );
    for (token, word) in [(LOCAL, "local"), (ACME, "acme")] {
        put_flight(&two.app, token, "deploy", &deploy(word)).await;
    }
    let start = |token| request(token, "POST", "/v1/flights/deploy/runs", Some(json!({})));
    let (status, capped) = call(&two.app, start(LOCAL)).await;
    assert_eq!(
        (status, capped["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued")),
        "the tenant holds its one machine: {capped}"
    );
    let (status, other) = call(&two.app, start(ACME)).await;
    assert_eq!(
        (status, other["status"].as_str()),
        (StatusCode::ACCEPTED, Some("running")),
        "the pool has room for another tenant: {other}"
    );
}
