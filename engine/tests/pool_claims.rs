//! Machine claims of several pools in one checkpoint, on every backend: holds and frees of
//! each pool are written together, each pool's `max_vms` and tenant cap are checked on their
//! own, and a checkpoint one pool has no room for keeps nothing in any pool.

mod backends;

use backends::TestDb;
use murmur_engine::store::{Commit, Error, FullPool, MachineUse, NewRun, PoolUse};
use murmur_engine::{RunStatus, Store};

every_backend!(
    a_checkpoint_holds_and_frees_machines_of_two_pools_at_once,
    a_pool_without_room_refuses_the_whole_checkpoint,
    every_pool_without_room_is_named_with_what_it_has_free,
);

const AT: &str = "2026-06-01T12:00:00.000Z";
const LATER: &str = "2999-01-01T00:00:00.000Z";

async fn create(store: &Store, id: &str, agents: &[&str]) {
    let agents: Vec<String> = agents.iter().map(|slug| (*slug).to_owned()).collect();
    store
        .create_run(&NewRun {
            id,
            flight: "demo",
            flight_path: None,
            source: "# Demo\n",
            digest: "d1",
            inputs: &serde_json::json!({}),
            created_at: AT,
            agents: &agents,
            event: None,
        })
        .await
        .expect("create run");
}

/// What a checkpoint changes in `pool` (of `capacity` machines).
fn pool(name: &str, capacity: usize, hold: &[&str], free: &[&str]) -> PoolUse {
    PoolUse {
        pool: name.to_owned(),
        capacity,
        tenant_capacity: None,
        done_waiting: false,
        hold: hold.iter().map(|slug| ((*slug).to_owned(), 1)).collect(),
        free: free.iter().map(|slug| (*slug).to_owned()).collect(),
    }
}

/// Commits `pools` for run `id`, as its driver's checkpoint would.
async fn claim(store: &Store, id: &str, pools: Vec<PoolUse>) -> Result<i64, Error> {
    let owner = murmur_engine::lease::Owner::this_process("tests");
    let machines = MachineUse {
        owner: owner.id.clone(),
        holder: owner.holder.clone(),
        expires_at: LATER.to_owned(),
        run_created_at: AT.to_owned(),
        pools,
    };
    store
        .commit(&Commit {
            run_id: id,
            expected_version: 0,
            at: AT,
            events: &[],
            agents: &[],
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: Some(&machines),
        })
        .await
}

async fn in_use(store: &Store, pool: &str) -> usize {
    store.machines_in_use(pool, AT).await.expect("count")
}

async fn a_checkpoint_holds_and_frees_machines_of_two_pools_at_once(db: &TestDb) {
    let store = Store::open(&db.url).await.expect("store");
    create(&store, "r1", &["a", "b", "c"]).await;
    claim(
        &store,
        "r1",
        vec![
            pool("local", 1, &["a"], &[]),
            pool("fleet", 2, &["b", "c"], &[]),
        ],
    )
    .await
    .expect("both pools have room");
    assert_eq!(
        (in_use(&store, "local").await, in_use(&store, "fleet").await),
        (1, 2)
    );
    claim(
        &store,
        "r1",
        vec![pool("fleet", 2, &[], &["b"]), pool("local", 1, &[], &["a"])],
    )
    .await
    .expect("frees");
    assert_eq!(
        (in_use(&store, "local").await, in_use(&store, "fleet").await),
        (0, 1),
        "each pool freed its own"
    );
}

async fn a_pool_without_room_refuses_the_whole_checkpoint(db: &TestDb) {
    let store = Store::open(&db.url).await.expect("store");
    create(&store, "r1", &["a"]).await;
    create(&store, "r2", &["x", "y"]).await;
    claim(&store, "r1", vec![pool("local", 1, &["a"], &[])])
        .await
        .expect("the local machine");
    let refused = claim(
        &store,
        "r2",
        vec![pool("local", 1, &["x"], &[]), pool("fleet", 2, &["y"], &[])],
    )
    .await;
    let full = match refused {
        Err(Error::PoolFull { full }) => full,
        other => panic!("refused for want of a local machine: {other:?}"),
    };
    assert_eq!(
        full,
        [FullPool {
            pool: "local".to_owned(),
            available: 0
        }]
    );
    assert_eq!(
        in_use(&store, "fleet").await,
        0,
        "nothing of fleet was kept"
    );
    assert_eq!(
        store.runs_waiting_for("local").await.expect("waiters"),
        [("r2".to_owned(), 1)],
        "it waits for the pool that refused it"
    );
    assert!(
        store
            .runs_waiting_for("fleet")
            .await
            .expect("waiters")
            .is_empty()
    );
    // The fleet agent alone fits, whatever local has free.
    claim(&store, "r2", vec![pool("fleet", 2, &["y"], &[])])
        .await
        .expect("fleet has room");
    assert_eq!(
        (in_use(&store, "local").await, in_use(&store, "fleet").await),
        (1, 1)
    );
}

async fn every_pool_without_room_is_named_with_what_it_has_free(db: &TestDb) {
    let store = Store::open(&db.url).await.expect("store");
    create(&store, "r1", &["a", "b", "c", "d"]).await;
    let capped = PoolUse {
        tenant_capacity: Some(1),
        ..pool("fleet", 3, &["c", "d"], &[])
    };
    let refused = claim(
        &store,
        "r1",
        vec![capped, pool("local", 1, &["a", "b"], &[])],
    )
    .await;
    let full = match refused {
        Err(Error::PoolFull { full }) => full,
        other => panic!("refused by both pools: {other:?}"),
    };
    let named: Vec<(&str, usize)> = full
        .iter()
        .map(|f| (f.pool.as_str(), f.available))
        .collect();
    assert_eq!(
        named,
        [("fleet", 1), ("local", 1)],
        "fleet's tenant cap and local's max_vms, each with its own room"
    );
    assert_eq!(
        (in_use(&store, "local").await, in_use(&store, "fleet").await),
        (0, 0)
    );
    let waiting = |pool: &'static str| {
        let store = store.clone();
        async move { store.runs_waiting_for(pool).await.expect("waiters") }
    };
    assert_eq!(waiting("local").await, [("r1".to_owned(), 2)]);
    assert_eq!(waiting("fleet").await, [("r1".to_owned(), 2)]);
}
