//! A pool shared by tenants, on every backend: `max_vms` counts every tenant's machines and
//! `max_vms_per_tenant` caps each tenant's share. A tenant at its cap waits in its own line
//! (the store's `PoolFull` refusal), and never holds back another tenant's run.

mod backends;
mod support;

use std::time::Duration;

use backends::TestDb;
use murmur_engine::executor::Executor;
use murmur_engine::{Clock, RunStatus, SystemClock};
use support::holding::{holding_flight, is_waiting, peak_concurrency};
use support::{drive_in_background, executor, start, until};

every_backend!(a_tenant_holds_at_most_its_share_of_a_shared_pool);

async fn a_tenant_holds_at_most_its_share_of_a_shared_pool(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut local = executor(db, work.path()).await;
    local.slots = 3;
    local.pools.max_vms_per_tenant.insert("local".to_owned(), 1);
    let at = SystemClock.stamp();
    assert!(
        local
            .store
            .create_tenant("acme", &at)
            .await
            .expect("tenant")
    );
    let acme = Executor {
        store: local
            .store
            .for_tenant("acme")
            .await
            .expect("lookup")
            .expect("acme"),
        ..local.clone()
    };
    let (ledger, go) = (work.path().join("ledger"), work.path().join("go"));
    let wide = holding_flight("Wide", &["one", "two", "three"], &ledger, &go);
    let wide_id = start(&local, &wide).await;
    let (wide_run, mut wide_events) = drive_in_background(&local, &wide_id);
    until(&mut wide_events, is_waiting).await;

    // A second run of the same tenant is refused by the tenant's cap and waits in its line.
    let second = holding_flight("Second", &["solo"], &ledger, &go);
    let second_id = start(&local, &second).await;
    let mut line = local.store.watch_pool_line("local");
    let (second_run, _) = drive_in_background(&local, &second_id);
    tokio::time::timeout(
        Duration::from_secs(30),
        line.wait_for(|runs| runs[..] == [second_id.clone()]),
    )
    .await
    .expect("the tenant's second run waits for its tenant's machine")
    .expect("the line is watched");

    // Another tenant's younger run still gets one of the pool's free machines.
    let other = holding_flight("Other", &["solo"], &work.path().join("other-ledger"), &go);
    let other_id = start(&acme, &other).await;
    let (other_run, mut other_events) = drive_in_background(&acme, &other_id);
    until(&mut other_events, is_waiting).await;
    let now = SystemClock.stamp();
    let count = |store: &murmur_engine::Store| {
        let (store, now) = (store.clone(), now.clone());
        async move {
            let all = store.machines_in_use("local", &now).await.expect("count");
            let own = store
                .tenant_machines_in_use("local", &now)
                .await
                .expect("count");
            (all, own)
        }
    };
    assert_eq!(
        count(&local.store).await,
        (2, 1),
        "the pool counts both tenants"
    );
    assert_eq!(count(&acme.store).await, (2, 1));

    std::fs::write(&go, "").expect("go");
    for run in [wide_run, second_run, other_run] {
        assert_eq!(
            run.await.expect("join").expect("drive"),
            RunStatus::Completed
        );
    }
    let ledger_text = std::fs::read_to_string(&ledger).expect("ledger");
    assert_eq!(
        ledger_text.lines().filter(|l| *l == "start").count(),
        4,
        "{ledger_text}"
    );
    assert_eq!(
        peak_concurrency(&ledger),
        1,
        "the capped tenant held one machine at a time: {ledger_text}"
    );
    assert_eq!(count(&local.store).await, (0, 0));
}
