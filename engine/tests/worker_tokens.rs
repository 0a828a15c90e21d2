//! Worker tokens on every backend: they register machines of their own pool only, never open
//! the API, and an API token never registers a machine; revoking by name ends either kind.

mod backends;

use backends::TestDb;

every_backend!(worker_and_api_tokens_do_not_stand_in_for_each_other);

const AT: &str = "2026-06-01T12:00:00.000Z";

async fn worker_and_api_tokens_do_not_stand_in_for_each_other(db: &TestDb) {
    let store = backends::open(db).await;
    store
        .add_token("ci", "mur_api", AT)
        .await
        .expect("api token");
    store
        .add_worker_token("fleet-1", "mur_worker", "fleet", AT)
        .await
        .expect("worker token");

    let worker = store.worker_token("mur_worker").await.expect("lookup");
    let worker = worker.expect("a worker token is found");
    assert_eq!(
        (worker.name.as_str(), worker.pool.as_str()),
        ("fleet-1", "fleet")
    );
    assert_eq!(store.token_name("mur_worker").await.expect("lookup"), None);
    assert_eq!(
        store.authenticate("mur_worker").await.expect("lookup"),
        None
    );
    assert_eq!(store.worker_token("mur_api").await.expect("lookup"), None);
    assert_eq!(
        store
            .token_name("mur_api")
            .await
            .expect("lookup")
            .as_deref(),
        Some("ci")
    );
    assert_eq!(store.worker_token("unknown").await.expect("lookup"), None);

    assert_eq!(store.revoke_token("fleet-1").await.expect("revoke"), 1);
    assert_eq!(
        store.worker_token("mur_worker").await.expect("lookup"),
        None
    );
}
