//! Cloud machines in the store, on every backend: `max_vms` holds however many stores make
//! machines of one pool at once; a bootstrap credential registers its machine once, before it
//! expires, and never again; the cluster id is made once per store.

mod backends;

use backends::TestDb;
use murmur_engine::machine::{MachineEvent, MachineState};
use murmur_engine::store::cloud_machines::NewCloudMachine;

every_backend!(
    max_vms_holds_for_concurrent_creators,
    a_bootstrap_credential_registers_once_and_not_after_it_expires,
    the_cluster_id_is_made_once,
);

const T0: &str = "2026-06-01T12:00:00.000Z";
const T1: &str = "2026-06-01T12:00:10.000Z";
const LATER: &str = "2026-06-01T13:00:00.000Z";
const EXPIRES: &str = "2026-06-01T12:05:00.000Z";

fn new<'a>(id: &'a str, bootstrap: &'a str, max_vms: usize) -> NewCloudMachine<'a> {
    NewCloudMachine {
        id,
        pool: "cloud",
        placement: "aws-east",
        max_vms,
        bootstrap,
        bootstrap_expires_at: EXPIRES,
        at: T0,
    }
}

async fn max_vms_holds_for_concurrent_creators(db: &TestDb) {
    // Three stores (as three servers would have) race to make ten machines of a pool of 3.
    let stores = [
        backends::open(db).await,
        backends::open(db).await,
        backends::open(db).await,
    ];
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = stores[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let (id, bootstrap) = (format!("m{i}"), format!("murb_{i}"));
            // On SQLite a transaction whose snapshot another writer made stale is refused
            // (busy): the pool manager tries again at its next tick, and so does this.
            for _ in 0..100 {
                if let Ok(made) = store.create_cloud_machine(&new(&id, &bootstrap, 3)).await {
                    return made;
                }
            }
            panic!("machine {id}: the store kept refusing");
        }));
    }
    let mut made = 0;
    for task in tasks {
        if task.await.expect("task").is_some() {
            made += 1;
        }
    }
    let machines = stores[0].cloud_machines("cloud").await.expect("list");
    assert_eq!(machines.len(), made);
    assert_eq!(made, 3, "exactly max_vms machines");
    assert!(
        machines
            .iter()
            .all(|m| m.machine.state == MachineState::Provisioning)
    );
    assert!(machines.iter().all(|m| m.machine.placement == "aws-east"));

    // A terminated machine no longer counts: one more may be made.
    let first = &machines[0].machine;
    stores[0]
        .apply_machine_event(&first.id, first.version, &MachineEvent::Terminated, T1)
        .await
        .expect("terminate");
    let again = stores[1]
        .create_cloud_machine(&new("m-again", "murb_again", 3))
        .await;
    assert!(
        again.expect("create").is_some(),
        "room for one after a termination"
    );
    let full = stores[2]
        .create_cloud_machine(&new("m-full", "murb_full", 3))
        .await;
    assert!(full.expect("create").is_none(), "full again");
}

async fn a_bootstrap_credential_registers_once_and_not_after_it_expires(db: &TestDb) {
    let store = backends::open(db).await;
    store
        .create_cloud_machine(&new("m1", "murb_one", 2))
        .await
        .expect("create")
        .expect("room");
    store
        .set_cloud_instance("m1", "i-0abc", "us-east-1a")
        .await
        .expect("instance");
    assert!(
        store
            .redeem_bootstrap("murb_wrong", T1)
            .await
            .expect("redeem")
            .is_none()
    );
    let redeemed = store
        .redeem_bootstrap("murb_one", T1)
        .await
        .expect("redeem")
        .expect("the machine");
    assert_eq!(redeemed.machine.id, "m1");
    assert_eq!(redeemed.instance_id.as_deref(), Some("i-0abc"));
    assert!(redeemed.registered);
    assert!(
        store
            .redeem_bootstrap("murb_one", T1)
            .await
            .expect("redeem")
            .is_none(),
        "spent"
    );
    assert!(
        store
            .register_cloud_machine("m1", "key", "murm_own", LATER, T1)
            .await
            .expect("register")
    );
    let found = store
        .machine_by_credential("murm_own")
        .await
        .expect("lookup")
        .expect("its own credential works");
    assert_eq!(found.id, "m1");

    store
        .create_cloud_machine(&new("m2", "murb_two", 2))
        .await
        .expect("create")
        .expect("room");
    assert!(
        store
            .redeem_bootstrap("murb_two", LATER)
            .await
            .expect("redeem")
            .is_none(),
        "expired"
    );
    // A machine that is no longer provisioning (its boot timed out) takes no registration.
    let m2 = store.machine("m2").await.expect("m2");
    store
        .apply_machine_event("m2", m2.version, &MachineEvent::Terminated, T1)
        .await
        .expect("terminate");
    assert!(
        !store
            .register_cloud_machine("m2", "key", "murm_late", LATER, T1)
            .await
            .expect("register")
    );
}

async fn the_cluster_id_is_made_once(db: &TestDb) {
    let one = backends::open(db).await;
    let two = backends::open(db).await;
    let first = one.cloud_cluster("aaaa").await.expect("cluster");
    let second = two.cloud_cluster("bbbb").await.expect("cluster");
    assert_eq!(first, "aaaa");
    assert_eq!(second, "aaaa", "the first one set wins");
}
