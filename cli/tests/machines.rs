//! `murmur machines ls`, `murmur pool status` and `murmur pool flush`: the real binary on a
//! store whose machines and runs were recorded through the engine's store API, on SQLite and
//! PostgreSQL; and both without any store (nothing is created).

mod support;

use std::path::Path;
use std::process::Output;

use murmur_engine::machine::{MachineEvent, Release};
use murmur_engine::store::{AgentUpdate, Commit, NewMachine, NewRun};
use murmur_engine::{AgentState, Event, RunStatus, Store};
use serde_json::{Value, json};
use support::db::{Backend, PgDatabase};

every_backend!(
    machines_are_listed_as_json_and_as_a_table,
    pools_show_machines_by_state_and_queued_agents,
    a_flush_ends_the_idle_and_sleeping_machines_and_says_so,
);

const AT: &str = "2026-06-01T12:00:00.000Z";
const CONFIG: &str =
    "pools:\n  local: { max_vms: 3 }\n  gpu: { placement: workers, max_vms: 4, min_idle: 1 }\n";
const GPU_FLIGHT: &str = "---\nruntime: exec\npool: gpu\n---\n# G\n\n## a\n> command: true\n\n## b\n> command: true\n> pool: local\n";

/// A folder with `.murmur/murmur.yaml` and a store (a SQLite file in it, or a PostgreSQL
/// database dropped afterwards).
struct Place {
    dir: tempfile::TempDir,
    url: String,
    _pg: Option<PgDatabase>,
}

impl Place {
    fn new(backend: &Backend, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
        std::fs::write(dir.path().join(".murmur/murmur.yaml"), CONFIG).expect("config");
        let (url, pg) = match backend {
            Backend::Sqlite => (dir.path().join("store.db").display().to_string(), None),
            Backend::Postgres(admin) => {
                let (pg, url) = PgDatabase::create(admin, label);
                (url, Some(pg))
            }
        };
        Self { dir, url, _pg: pg }
    }

    fn murmur(&self, args: &[&str]) -> Output {
        support::murmur(self.dir.path())
            .args(args)
            .args(["--db", &self.url])
            .env("NO_COLOR", "1")
            .output()
            .expect("the binary runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.murmur(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    /// Records machines and a run through the engine: in pool `gpu`, `w1` idle, `w2` busy
    /// with run-1/a, `w3` sleeping with run-1/c; in `local`, `l1` provisioning. Run-1 has
    /// agent `b` (pool local) and `d` (pool gpu) queued.
    fn seed(&self) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Store::open(&self.url).await.expect("store");
            queued_run(&store).await;
            for (id, pool) in [("w1", "gpu"), ("w2", "gpu"), ("w3", "gpu"), ("l1", "local")] {
                create(&store, id, pool).await;
            }
            for (id, slug) in [("w2", "a"), ("w3", "c")] {
                let claim = MachineEvent::Claimed {
                    run_id: "run-1".to_owned(),
                    slug: slug.to_owned(),
                    attempt: 1,
                };
                store
                    .apply_machine_event(id, 1, &claim, AT)
                    .await
                    .expect("claim");
            }
            let sleep = MachineEvent::Released {
                how: Release::Sleep,
            };
            store
                .apply_machine_event("w3", 2, &sleep, AT)
                .await
                .expect("sleep");
            store
                .renew_machine_lease("w2", AT, "2026-06-01T12:00:30.000Z")
                .await
                .expect("heartbeat");
        });
    }
}

async fn create(store: &Store, id: &str, pool: &str) {
    let new = NewMachine {
        id,
        pool,
        placement: if pool == "local" { "local" } else { "workers" },
        public_key: None,
        credential: None,
        lease_expires_at: None,
        at: AT,
    };
    store.create_machine(&new).await.expect("create");
    if pool != "local" {
        let up = MachineEvent::Provisioned {
            provider_id: format!("host/{id}"),
        };
        store.apply_machine_event(id, 0, &up, AT).await.expect("up");
    }
}

async fn queued_run(store: &Store) {
    let source = format!("{GPU_FLIGHT}\n## c\n> command: true\n\n## d\n> command: true\n");
    let slugs = ["a", "b", "c", "d"].map(str::to_owned);
    store
        .create_run(&NewRun {
            id: "run-1",
            flight: "g",
            flight_path: None,
            source: &source,
            digest: "d",
            inputs: &json!({}),
            created_at: AT,
            agents: &slugs,
            event: None,
        })
        .await
        .expect("run");
    let states = [
        AgentState::Running,
        AgentState::Queued,
        AgentState::Sleeping,
        AgentState::Queued,
    ];
    let agents: Vec<AgentUpdate> = slugs
        .iter()
        .zip(states)
        .enumerate()
        .map(|(position, (slug, state))| AgentUpdate {
            state,
            ..AgentUpdate::pending(slug, position)
        })
        .collect();
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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn machine(id: &str, pool: &str, state: &str, agent: Value, seen: Value) -> Value {
    let (placement, provider) = if pool == "local" {
        ("local", Value::Null)
    } else {
        ("workers", json!(format!("host/{id}")))
    };
    json!({"id": id, "pool": pool, "placement": placement, "provider_id": provider,
           "state": state, "agent": agent, "last_seen_at": seen})
}

fn machines_ls_is_exact(place: &Place) {
    let all = place.json(&["machines", "ls", "--json"]);
    assert_eq!(
        all,
        json!([
            machine("w1", "gpu", "idle", Value::Null, Value::Null),
            machine("w2", "gpu", "busy", json!("run-1/a"), json!(AT)),
            machine("w3", "gpu", "sleeping", json!("run-1/c"), Value::Null),
            machine("l1", "local", "provisioning", Value::Null, Value::Null),
        ])
    );
}

fn machines_are_listed_as_json_and_as_a_table(backend: &Backend) {
    let place = Place::new(backend, "machines_ls");
    place.seed();
    machines_ls_is_exact(&place);
    let local = place.json(&["machines", "ls", "--pool", "local", "--json"]);
    assert_eq!(local.as_array().map(Vec::len), Some(1), "{local}");
    assert_eq!(local[0]["id"], "l1");
    let out = place.murmur(&["machines", "ls"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("MACHINE") && lines[0].contains("LAST SEEN"),
        "{table}"
    );
    let busy = lines
        .iter()
        .find(|l| l.starts_with("w2 "))
        .expect("w2's line");
    for word in ["gpu", "workers", "busy", "run-1/a", AT] {
        assert!(busy.contains(word), "{word} in {busy}");
    }
    let none = place.json(&["machines", "ls", "--pool", "nowhere", "--json"]);
    assert_eq!(none, json!([]));
}

fn pools_show_machines_by_state_and_queued_agents(backend: &Backend) {
    let place = Place::new(backend, "pool_status");
    place.seed();
    let machines = |pairs: &[(&str, u64)]| {
        let mut all = json!({"provisioning": 0, "idle": 0, "busy": 0, "sleeping": 0,
                             "waking": 0, "draining": 0, "lost": 0});
        for (state, n) in pairs {
            all[*state] = json!(n);
        }
        all
    };
    let local = json!({"pool": "local", "placement": "local", "max_vms": 3, "min_idle": 0,
                       "machines": machines(&[("provisioning", 1)]), "queued_agents": 1});
    let gpu = json!({"pool": "gpu", "placement": "workers", "max_vms": 4, "min_idle": 1,
                     "machines": machines(&[("idle", 1), ("busy", 1), ("sleeping", 1)]),
                     "queued_agents": 1});
    assert_eq!(
        place.json(&["pool", "status", "--json"]),
        json!([local, gpu])
    );
    assert_eq!(
        place.json(&["pool", "status", "gpu", "--json"]),
        json!([gpu])
    );
    let out = place.murmur(&["pool", "status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let gpu_line = table
        .lines()
        .find(|l| l.starts_with("gpu "))
        .expect("gpu's line");
    assert!(
        gpu_line.contains("1 idle") && gpu_line.contains("1 sleeping"),
        "{table}"
    );
    let unknown = place.murmur(&["pool", "status", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("no pool `nope`") && message.contains("local, gpu"),
        "{message}"
    );
}

fn a_flush_ends_the_idle_and_sleeping_machines_and_says_so(backend: &Backend) {
    let place = Place::new(backend, "pool_flush");
    place.seed();
    let out = place.murmur(&["pool", "flush", "gpu"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("terminated w1 (pool gpu, was idle)"),
        "{said}"
    );
    assert!(
        said.contains("terminated w3 (pool gpu, was sleeping)"),
        "{said}"
    );
    assert!(!said.contains("w2"), "a busy machine stays: {said}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("flushed 2 machine(s) of pool gpu"));
    let states: Vec<(String, String)> = place
        .json(&["machines", "ls", "--json"])
        .as_array()
        .expect("array")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or("").to_owned(),
                m["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let states: Vec<(&str, &str)> = states
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("w1", "terminated"),
            ("w2", "busy"),
            ("w3", "terminated"),
            ("l1", "provisioning")
        ]
    );
    let again = place.murmur(&["pool", "flush", "gpu"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to flush"),
        "{}",
        text(&again)
    );
    let unknown = place.murmur(&["pool", "flush", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
}

/// Reading never creates a store: without one there are no machines, and every pool is empty.
#[test]
fn without_a_store_nothing_is_listed_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    std::fs::write(dir.path().join(".murmur/murmur.yaml"), CONFIG).expect("config");
    let run = |args: &[&str]| {
        let out = support::murmur_output(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        out
    };
    let listed: Value =
        serde_json::from_slice(&run(&["machines", "ls", "--json"]).stdout).expect("json");
    assert_eq!(listed, json!([]));
    assert!(String::from_utf8_lossy(&run(&["machines", "ls"]).stdout).contains("no machines"));
    let pools: Value =
        serde_json::from_slice(&run(&["pool", "status", "--json"]).stdout).expect("json");
    let names: Vec<&str> = pools
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["pool"].as_str())
        .collect();
    assert_eq!(names, ["local", "gpu"]);
    assert_eq!(pools[1]["machines"]["idle"], 0);
    assert!(String::from_utf8_lossy(&run(&["pool", "flush"]).stderr).contains("nothing to flush"));
    assert!(!store_exists(dir.path()), "no store was created");
}

fn store_exists(repo: &Path) -> bool {
    repo.join(".murmur/murmur.db").exists()
}
