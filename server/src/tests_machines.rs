//! `GET /v1/machines` and `GET /v1/pools` (the objects of surface.md), and the machines'
//! gauges on `/metrics`, without a socket.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use murmur_engine::machine::{MachineEvent, PoolSpec};
use murmur_engine::store::{AgentUpdate, Commit, NewMachine, NewRun};
use murmur_engine::{AgentState, Event, RunStatus, Store, SystemClock};
use serde_json::{Value, json};

use super::tests::{authed, call, test_executor};
use super::{AppState, router};

const AT: &str = "2026-06-01T12:00:00.000Z";
const GPU_FLIGHT: &str =
    "---\nruntime: exec\npool: gpu\n---\n# G\n\n## a\n> command: true\n\n## b\n> command: true\n";

struct Served {
    _dir: tempfile::TempDir,
    app: Router,
}

/// A server showing pool `gpu` (workers, 3 machines, 1 warm) besides `local`, whose store
/// has machine `w1` idle and `w2` busy with run-1/a, and run-1's agent `b` queued.
async fn serving() -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    let executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    let store = &executor.store;
    queued_run(store).await;
    for id in ["w1", "w2"] {
        machine(store, id).await;
    }
    let claim = MachineEvent::Claimed {
        run_id: "run-1".to_owned(),
        slug: "a".to_owned(),
        attempt: 1,
    };
    store
        .apply_machine_event("w2", 1, &claim, AT)
        .await
        .expect("claim");
    store
        .renew_machine_lease("w2", AT, "2026-06-01T12:00:30.000Z")
        .await
        .expect("heartbeat");
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    state.show_pools(vec![PoolSpec {
        name: "gpu".to_owned(),
        placement: "workers".to_owned(),
        max_vms: 3,
        min_idle: 1,
    }]);
    Served {
        _dir: dir,
        app: router(state),
    }
}

async fn machine(store: &Store, id: &str) {
    let new = NewMachine {
        id,
        pool: "gpu",
        placement: "workers",
        public_key: None,
        credential: None,
        lease_expires_at: None,
        at: AT,
    };
    store.create_machine(&new).await.expect("create");
    let up = MachineEvent::Provisioned {
        provider_id: format!("host/{id}"),
    };
    store
        .apply_machine_event(id, 0, &up, AT)
        .await
        .expect("provisioned");
}

async fn queued_run(store: &Store) {
    let slugs = ["a".to_owned(), "b".to_owned()];
    store
        .create_run(&NewRun {
            id: "run-1",
            flight: "g",
            flight_path: None,
            source: GPU_FLIGHT,
            digest: "d",
            inputs: &json!({}),
            created_at: AT,
            agents: &slugs,
            event: None,
        })
        .await
        .expect("run");
    let agents = [
        AgentUpdate {
            state: AgentState::Running,
            ..AgentUpdate::pending("a", 0)
        },
        AgentUpdate {
            state: AgentState::Queued,
            ..AgentUpdate::pending("b", 1)
        },
    ];
    store
        .commit(&Commit {
            run_id: "run-1",
            expected_version: 0,
            at: AT,
            events: &[Event::RunStarted],
            agents: &agents,
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("commit");
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    call(app, authed("GET", uri).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn machines_are_listed_as_the_cli_shows_them() {
    let served = serving().await;
    let (status, body) = get(&served.app, "/v1/machines").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([
            {"id": "w1", "pool": "gpu", "placement": "workers", "provider_id": "host/w1",
             "state": "idle", "agent": null, "last_seen_at": null},
            {"id": "w2", "pool": "gpu", "placement": "workers", "provider_id": "host/w2",
             "state": "busy", "agent": "run-1/a", "last_seen_at": AT},
        ])
    );
    let (status, body) = get(&served.app, "/v1/machines?pool=local").await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, body) = get(&served.app, "/v1/machines?state=idle").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    let anonymous = Request::get("/v1/machines").body(Body::empty()).unwrap();
    assert_eq!(
        call(&served.app, anonymous).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn pools_show_their_machines_by_state_and_queued_agents() {
    let served = serving().await;
    let (status, body) = get(&served.app, "/v1/pools").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let zero = json!({"provisioning": 0, "idle": 0, "busy": 0, "sleeping": 0, "waking": 0,
                      "draining": 0, "lost": 0});
    let mut gpu = zero.clone();
    gpu["idle"] = json!(1);
    gpu["busy"] = json!(1);
    assert_eq!(
        body,
        json!([
            {"pool": "local", "placement": "local", "max_vms": 2, "min_idle": 0,
             "machines": zero, "queued_agents": 0},
            {"pool": "gpu", "placement": "workers", "max_vms": 3, "min_idle": 1,
             "machines": gpu, "queued_agents": 1},
        ])
    );
    let anonymous = Request::get("/v1/pools").body(Body::empty()).unwrap();
    assert_eq!(
        call(&served.app, anonymous).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn metrics_count_machines_per_pool_and_state() {
    let served = serving().await;
    let (status, page) = get(&served.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().expect("text").to_owned();
    for line in [
        "murmur_machines{tenant=\"local\",pool=\"gpu\",state=\"idle\"} 1",
        "murmur_machines{tenant=\"local\",pool=\"gpu\",state=\"busy\"} 1",
        "murmur_machines{tenant=\"local\",pool=\"gpu\",state=\"sleeping\"} 0",
        "murmur_machines{tenant=\"local\",pool=\"local\",state=\"busy\"} 0",
        "murmur_pool_queued_agents{tenant=\"local\",pool=\"gpu\"} 1",
        "murmur_pool_queued_agents{tenant=\"local\",pool=\"local\"} 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in\n{page}"
        );
    }
    assert!(page.contains("# TYPE murmur_machines gauge"), "{page}");
}

#[tokio::test]
async fn the_openapi_document_describes_both_routes() {
    let served = serving().await;
    let doc = call(
        &served.app,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .1;
    let schemas = &doc["components"]["schemas"];
    for (path, schema) in [("/v1/machines", "MachineView"), ("/v1/pools", "PoolView")] {
        let ok = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"];
        assert_eq!(
            ok["schema"]["items"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}: {ok}"
        );
        assert!(
            schemas[schema]["properties"].is_object(),
            "{schema}: {schemas}"
        );
    }
    let properties = &schemas["MachineView"]["properties"];
    for field in [
        "id",
        "pool",
        "placement",
        "provider_id",
        "state",
        "agent",
        "last_seen_at",
    ] {
        assert!(properties.get(field).is_some(), "MachineView.{field}");
    }
}
