//! Claims on every backend: concurrent claimants of one key or tick, as concurrent requests
//! or several servers on one store would be, create one set of runs; the losers learn the
//! winner's runs and leave nothing behind.

mod backends;

use backends::TestDb;
use murmur_engine::Store;
use murmur_engine::store::NewRun;
use murmur_engine::store::claims::{Claim, Claimed, ClaimedRun};

every_backend!(
    concurrent_claims_of_one_key_create_one_run,
    a_tick_is_claimed_once_across_two_servers,
    a_claim_with_several_runs_is_all_or_nothing,
);

const CLAIMANTS: usize = 16;

/// Creates run `id` of `flight` under `claim`.
async fn create(store: &Store, claim: Option<Claim<'_>>, ids: &[String], flight: &str) -> Claimed {
    let inputs = serde_json::json!({});
    let agents = ["a".to_owned()];
    let runs: Vec<NewRun<'_>> = ids
        .iter()
        .map(|id| NewRun {
            id,
            flight,
            flight_path: None,
            source: "# Demo\n\n## a\n\nA.\n",
            digest: "d1",
            inputs: &inputs,
            created_at: "2026-01-01T00:00:00.000Z",
            agents: &agents,
            event: None,
        })
        .collect();
    store
        .create_runs(claim, &runs, "2026-01-01T00:00:00.000Z")
        .await
        .expect("create runs")
}

/// Claims `claim` from `CLAIMANTS` tasks spread over two stores; returns each outcome with
/// the run id its claimant tried.
async fn race(
    db: &TestDb,
    claim: impl Fn() -> Claim<'static> + Send + Sync + 'static,
) -> Vec<(String, Claimed)> {
    let servers = [backends::open(db).await, backends::open(db).await];
    let claim = std::sync::Arc::new(claim);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CLAIMANTS {
        let store = servers[n % 2].clone();
        let claim = claim.clone();
        tasks.spawn(async move {
            let id = format!("run-{n}");
            let claimed = create(&store, Some(claim()), std::slice::from_ref(&id), "demo").await;
            (id, claimed)
        });
    }
    tasks.join_all().await
}

/// Exactly one claimant won; every loser names the winner's run; only that run exists.
async fn one_winner(db: &TestDb, outcomes: &[(String, Claimed)]) -> String {
    let winners: Vec<&String> = outcomes
        .iter()
        .filter(|(_, claimed)| *claimed == Claimed::Won)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let winner = winners[0].clone();
    let expected = Claimed::Lost(vec![ClaimedRun {
        run_id: winner.clone(),
        flight: "demo".to_owned(),
    }]);
    for (id, claimed) in outcomes {
        assert!(id == &winner || *claimed == expected, "{id}: {claimed:?}");
    }
    let store = backends::open(db).await;
    let runs: Vec<String> = store
        .runs(100)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        runs,
        std::slice::from_ref(&winner),
        "the losers' runs were not kept"
    );
    winner
}

async fn concurrent_claims_of_one_key_create_one_run(db: &TestDb) {
    let outcomes = race(db, || Claim::Key("idempotency-key:k1")).await;
    let winner = one_winner(db, &outcomes).await;
    let store = backends::open(db).await;
    assert_eq!(
        store
            .claimed_runs("idempotency-key:k1")
            .await
            .expect("read"),
        Some(vec![ClaimedRun {
            run_id: winner,
            flight: "demo".to_owned()
        }])
    );
    assert_eq!(
        store
            .claimed_runs("idempotency-key:k2")
            .await
            .expect("read"),
        None
    );
}

async fn a_tick_is_claimed_once_across_two_servers(db: &TestDb) {
    let tick = || Claim::Tick {
        schedule: "nightly#0",
        tick: "2026-03-02T01:00:00.000Z",
    };
    let outcomes = race(db, tick).await;
    one_winner(db, &outcomes).await;
    let store = backends::open(db).await;
    assert_eq!(
        store.last_tick("nightly#0").await.expect("read").as_deref(),
        Some("2026-03-02T01:00:00.000Z")
    );
    let next = Claim::Tick {
        schedule: "nightly#0",
        tick: "2026-03-03T01:00:00.000Z",
    };
    let again = create(&store, Some(next), &["run-next".to_owned()], "demo").await;
    assert_eq!(again, Claimed::Won, "the next tick is a claim of its own");
}

async fn a_claim_with_several_runs_is_all_or_nothing(db: &TestDb) {
    let store = backends::open(db).await;
    let ids = ["run-a".to_owned(), "run-b".to_owned()];
    let delivery = Claim::Key("github-delivery:d-1");
    assert_eq!(
        create(&store, Some(delivery), &ids, "triage").await,
        Claimed::Won
    );
    let redelivered = create(&store, Some(delivery), &["run-c".to_owned()], "triage").await;
    let earlier = |id: &str| ClaimedRun {
        run_id: id.to_owned(),
        flight: "triage".to_owned(),
    };
    assert_eq!(
        redelivered,
        Claimed::Lost(vec![earlier("run-a"), earlier("run-b")])
    );
    // A run id that exists already fails the whole transaction: the claim is not kept either.
    let clash = Claim::Key("github-delivery:d-2");
    let inputs = serde_json::json!({});
    let agents = ["a".to_owned()];
    let run = |id| NewRun {
        id,
        flight: "triage",
        flight_path: None,
        source: "# T\n\n## a\n\nA.\n",
        digest: "d",
        inputs: &inputs,
        created_at: "2026-01-01T00:00:00.000Z",
        agents: &agents,
        event: None,
    };
    let failed = store
        .create_runs(
            Some(clash),
            &[run("run-d"), run("run-a")],
            "2026-01-01T00:00:00.000Z",
        )
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        store
            .claimed_runs("github-delivery:d-2")
            .await
            .expect("read"),
        None
    );
    assert!(matches!(
        store.run("run-d").await,
        Err(murmur_engine::store::Error::NoRun(_))
    ));
}

/// A claimant that has inserted its claim but not committed (it may be about to die) makes
/// others wait for it, for a bounded time; once its transaction is gone, nothing of it remains
/// and the key is free. PostgreSQL only: SQLite has one writer, so there an unfinished
/// claimant holds the whole database, which the store reports as locked.
#[tokio::test]
async fn a_claim_held_by_an_unfinished_transaction_is_pending_then_free() {
    let Some(db) = backends::postgres().await else {
        return;
    };
    let store = backends::open(&db).await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO claims (tenant, key, created_at) VALUES ('local', 'idempotency-key:held', 'now')")
        .execute(&mut *holder)
        .await
        .expect("hold the claim");
    let waited = create(
        &store,
        Some(Claim::Key("idempotency-key:held")),
        &["run-w".to_owned()],
        "demo",
    )
    .await;
    assert_eq!(waited, Claimed::Pending);
    // The holder dies without committing: its claim goes with it.
    holder.rollback().await.expect("rollback");
    let free = create(
        &store,
        Some(Claim::Key("idempotency-key:held")),
        &["run-x".to_owned()],
        "demo",
    )
    .await;
    assert_eq!(free, Claimed::Won);
    assert!(matches!(
        store.run("run-w").await,
        Err(murmur_engine::store::Error::NoRun(_))
    ));
}
