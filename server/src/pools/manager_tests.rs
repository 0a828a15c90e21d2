//! The pool manager's timeouts on a simulated clock: ticks called one by one, the clock moved
//! between them, a real provider (`murmur-gcp`) against the Compute Engine test server, and
//! the workers' registration done through the store as `workers::register` does it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use murmur_engine::Clock;
use murmur_engine::clock::ManualClock;
use murmur_engine::machine::{MachineEvent, MachineState, PoolSpec};
use murmur_gcp::{Gce, Placement};
use murmur_testkit::gce::GceServer;

use super::Manager;
use crate::AppState;
use crate::pools::{CloudPool, Timing};

const ZONE: &str = "us-central1-a";
const BOOT: Duration = Duration::from_secs(300);
const IDLE: Duration = Duration::from_secs(600);

async fn provider(url: &str) -> Gce {
    let placement = Placement {
        name: "gcp-test".into(),
        project: "acme".into(),
        zones: vec![ZONE.into()],
        endpoint: Some(url.into()),
        ..Placement::default()
    };
    let user = murmur_testkit::gce::user_credentials(url);
    let credentials = google_cloud_auth::credentials::user_account::Builder::new(user)
        .build()
        .expect("user credentials");
    Gce::with_credentials(placement, credentials)
        .await
        .expect("client")
}

struct Bench {
    _dir: tempfile::TempDir,
    gce: GceServer,
    clock: Arc<ManualClock>,
    manager: Manager,
}

async fn bench(min_idle: usize) -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    let start = DateTime::parse_from_rfc3339("2026-12-02T06:00:00Z")
        .expect("a time")
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(start));
    let executor = crate::tests::test_executor(dir.path(), clock.clone()).await;
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    let gce = GceServer::start("acme");
    let pool = CloudPool {
        spec: PoolSpec {
            name: "cloud".into(),
            placement: "gcp-test".into(),
            max_vms: 3,
            min_idle,
        },
        provider: Arc::new(provider(gce.url()).await),
        shape: murmur_pool::Shape {
            machine_type: "e2-small".into(),
            image: "projects/acme/global/images/murmur".into(),
            disk_gb: 10,
        },
        server_url: "http://127.0.0.1:1".into(),
        idle_timeout: Some(IDLE),
        boot_timeout: BOOT,
    };
    let timing = Timing {
        tick: Duration::from_secs(2),
        orphan_grace: Duration::from_secs(300),
    };
    Bench {
        _dir: dir,
        gce,
        clock,
        manager: Manager::new(state, pool, timing),
    }
}

impl Bench {
    async fn tick(&mut self) {
        self.manager.tick().await.expect("a tick");
    }

    fn advance(&self, by: Duration) {
        self.clock
            .advance(chrono::Duration::from_std(by).expect("a duration"));
    }

    /// The pool's machines not terminated, as `(id, state)`.
    async fn machines(&self) -> Vec<(String, MachineState)> {
        let store = self.manager.state.store();
        let machines = store.cloud_machines("cloud").await.expect("machines");
        machines
            .into_iter()
            .map(|m| (m.machine.id, m.machine.state))
            .collect()
    }

    /// What a worker's registration does to machine `id`: it is up, and idle.
    async fn register(&self, id: &str) {
        let store = self.manager.state.store();
        let stamp = self.clock.stamp();
        let lease = (self.clock.now() + chrono::Duration::days(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let registered = store
            .register_cloud_machine(id, "AAAA", &format!("murm_{id}"), &lease, &stamp)
            .await
            .expect("registered");
        assert!(registered, "{id} was provisioning");
        let row = store.machine(id).await.expect("the machine");
        let up = MachineEvent::Provisioned {
            provider_id: id.to_owned(),
        };
        store
            .apply_machine_event(id, row.version, &up, &stamp)
            .await
            .expect("up");
    }

    fn instances(&self) -> usize {
        self.gce.instances().len()
    }
}

#[tokio::test]
async fn a_boot_past_boot_timeout_is_terminated_and_made_again() {
    let mut bench = bench(1).await;
    bench.tick().await;
    let first = bench.machines().await;
    assert_eq!(first.len(), 1, "one machine for min_idle: {first:?}");
    assert_eq!(first[0].1, MachineState::Provisioning);
    assert_eq!(bench.instances(), 1);

    bench.advance(BOOT - Duration::from_secs(1));
    bench.tick().await;
    assert_eq!(bench.machines().await, first, "still within boot_timeout");

    bench.advance(Duration::from_secs(1));
    bench.tick().await;
    let now = bench.machines().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].0, first[0].0, "the silent boot was replaced");
    let store = bench.manager.state.store();
    let gone = store.machine(&first[0].0).await.expect("the first machine");
    assert_eq!(gone.state, MachineState::Terminated);
    let names: Vec<String> = bench
        .gce
        .instances()
        .into_iter()
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(names.len(), 1, "its VM deleted, a new one made: {names:?}");
    assert!(names[0].ends_with(&now[0].0), "{names:?}");
}

#[tokio::test]
async fn idle_machines_beyond_min_idle_are_destroyed_after_idle_timeout() {
    let mut bench = bench(2).await;
    bench.tick().await;
    let made = bench.machines().await;
    assert_eq!(made.len(), 2, "{made:?}");
    for (id, _) in &made {
        bench.register(id).await;
    }
    // One warm machine is enough from now on: the other is an extra.
    bench.manager.pool.spec.min_idle = 1;
    bench.advance(IDLE - Duration::from_secs(1));
    bench.tick().await;
    assert_eq!(bench.machines().await.len(), 2, "within idle_timeout");
    assert_eq!(bench.instances(), 2);

    bench.advance(Duration::from_secs(1));
    bench.tick().await;
    let left = bench.machines().await;
    assert_eq!(left.len(), 1, "the extra destroyed: {left:?}");
    assert_eq!(left[0].1, MachineState::Idle);
    assert_eq!(bench.instances(), 1, "its VM deleted");
    // min_idle is kept however long it idles.
    bench.advance(IDLE * 3);
    bench.tick().await;
    assert_eq!(bench.machines().await, left);
}

/// A workspace of `tenant`'s store whose default pool is `pool`, keeping `min_idle` warm.
async fn workspace_on(store: &murmur_engine::Store, name: &str, pool: &str, min_idle: u32) {
    use murmur_engine::workspace::{Workspace, WorkspaceDefaults};
    let workspace = Workspace {
        name: name.into(),
        repositories: Vec::new(),
        defaults: WorkspaceDefaults {
            pool: Some(pool.into()),
            ..WorkspaceDefaults::default()
        },
        min_idle,
        created_at: "2026-12-02T06:00:00.000Z".into(),
    };
    assert!(store.add_workspace(&workspace).await.expect("added"));
}

#[tokio::test]
async fn the_workspaces_on_a_pool_keep_their_min_idle_warm_together() {
    let mut bench = bench(0).await;
    let store = bench.manager.state.store().clone();
    workspace_on(&store, "api", "cloud", 1).await;
    workspace_on(&store, "web", "cloud", 1).await;
    // Neither another pool's workspace nor another tenant's counts here.
    workspace_on(&store, "gpu", "other", 3).await;
    store
        .create_tenant("acme", "2026-12-02T06:00:00.000Z")
        .await
        .expect("tenant");
    let acme = store.for_tenant("acme").await.expect("read").expect("acme");
    workspace_on(&acme, "theirs", "cloud", 3).await;

    bench.tick().await;
    let made = bench.machines().await;
    assert_eq!(made.len(), 2, "one warm machine per workspace: {made:?}");
    for (id, _) in &made {
        bench.register(id).await;
    }
    bench.advance(IDLE * 2);
    bench.tick().await;
    assert_eq!(
        bench.machines().await.len(),
        2,
        "both kept warm past idle_timeout"
    );

    // The pool's own min_idle covers the workspaces' when it is more.
    bench.manager.pool.spec.min_idle = 3;
    bench.tick().await;
    assert_eq!(bench.machines().await.len(), 3, "the pool's own three");
    bench.manager.pool.spec.min_idle = 0;

    let removed = store.remove_workspace("web").await.expect("removed");
    assert_eq!(removed, murmur_engine::store::workspaces::Removed::Gone);
    // Past boot_timeout and idle_timeout: the third boot is given up, not made again, and
    // one of the two warm machines is an extra now.
    bench.advance(IDLE);
    bench.tick().await;
    let left = bench.machines().await;
    assert_eq!(left.len(), 1, "one workspace keeps one: {left:?}");
    assert_eq!(left[0].1, MachineState::Idle);
    assert!(made.iter().any(|(id, _)| *id == left[0].0), "{left:?}");
}
