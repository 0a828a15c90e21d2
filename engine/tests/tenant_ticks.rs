//! Schedule ticks per tenant, on every backend: two tenants' schedules of the same name and
//! tick, claimed at once by many claimants over two stores (two servers), start exactly one
//! run in each tenant, and each tenant's run is its own.

mod backends;

use backends::TestDb;
use murmur_engine::Store;
use murmur_engine::store::NewRun;
use murmur_engine::store::claims::{Claim, Claimed};

every_backend!(each_tenant_claims_a_tick_once_across_two_servers);

const CLAIMANTS: usize = 16;
const TENANTS: [&str; 2] = ["local", "acme"];
const SCHEDULE: &str = "nightly#0";
const TICK: &str = "2026-03-02T01:00:00.000Z";

/// Tries to start run `id` with the tick of `store`'s tenant.
async fn claim_tick(store: &Store, id: &str) -> Claimed {
    let inputs = serde_json::json!({});
    let agents = ["report".to_owned()];
    let run = NewRun {
        id,
        flight: "nightly",
        flight_path: None,
        source: "# Nightly\n\n## report\n\nReport.\n",
        digest: "d",
        inputs: &inputs,
        created_at: TICK,
        agents: &agents,
        event: None,
    };
    let claim = Claim::Tick {
        schedule: SCHEDULE,
        tick: TICK,
    };
    store
        .create_runs(Some(claim), std::slice::from_ref(&run), TICK)
        .await
        .expect("create runs")
}

async fn each_tenant_claims_a_tick_once_across_two_servers(db: &TestDb) {
    let first = backends::open(db).await;
    assert!(first.create_tenant("acme", TICK).await.expect("tenant"));
    let mut servers = Vec::new();
    for store in [first, backends::open(db).await] {
        for tenant in TENANTS {
            servers.push(
                store
                    .for_tenant(tenant)
                    .await
                    .expect("lookup")
                    .expect("tenant"),
            );
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CLAIMANTS {
        let store = servers[n % servers.len()].clone();
        tasks.spawn(async move {
            let id = format!("{}-run-{n}", store.tenant());
            let claimed = claim_tick(&store, &id).await;
            (store.tenant().to_owned(), id, claimed)
        });
    }
    let outcomes = tasks.join_all().await;
    for tenant in TENANTS {
        let won: Vec<&String> = outcomes
            .iter()
            .filter(|(of, _, claimed)| of == tenant && *claimed == Claimed::Won)
            .map(|(_, id, _)| id)
            .collect();
        assert_eq!(won.len(), 1, "{tenant}: {outcomes:?}");
        let store = &servers[TENANTS.iter().position(|t| *t == tenant).expect("known")];
        assert_eq!(store.run(won[0]).await.expect("its run").tenant, tenant);
        assert_eq!(
            store.last_tick(SCHEDULE).await.expect("read").as_deref(),
            Some(TICK)
        );
        let theirs = outcomes
            .iter()
            .find(|(of, _, claimed)| of != tenant && *claimed == Claimed::Won)
            .expect("the other tenant's run");
        assert!(
            store.run(&theirs.1).await.is_err(),
            "{tenant} sees no other tenant's run"
        );
    }
}
