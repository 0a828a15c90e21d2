//! Worker tokens on every backend: they register machines of their own pool only, never open
//! the API, and an API token never registers a machine; revoking by name ends either kind.

mod backends;

use backends::TestDb;

every_backend!(
    worker_and_api_tokens_do_not_stand_in_for_each_other,
    a_worker_token_is_found_with_its_tenant_from_any_tenant,
);

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
        (
            worker.tenant.as_str(),
            worker.name.as_str(),
            worker.pool.as_str()
        ),
        ("local", "fleet-1", "fleet")
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

/// A worker registers with its token alone: the server finds the token's tenant from it, and
/// the machine is that tenant's.
async fn a_worker_token_is_found_with_its_tenant_from_any_tenant(db: &TestDb) {
    let store = backends::open(db).await;
    assert!(store.create_tenant("acme", AT).await.expect("tenant"));
    let acme = store.for_tenant("acme").await.expect("read").expect("acme");
    acme.add_worker_token("theirs", "mur_acme_worker", "fleet", AT)
        .await
        .expect("worker token");

    for from in [&store, &acme] {
        let found = from.worker_token("mur_acme_worker").await.expect("lookup");
        let found = found.expect("found from every tenant");
        assert_eq!(
            (found.tenant.as_str(), found.name.as_str()),
            ("acme", "theirs")
        );
    }
    assert_eq!(store.revoke_token("theirs").await.expect("revoke"), 0);
    assert_eq!(acme.revoke_token("theirs").await.expect("revoke"), 1);
    assert_eq!(
        store.worker_token("mur_acme_worker").await.expect("lookup"),
        None
    );
}
