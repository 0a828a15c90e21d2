//! Two tenants in one store, on every backend: each sees its own runs (the same flight names,
//! run ids with a common prefix), its own secrets under the same names and its own tokens;
//! the other's rows are never listed and its ids are not found, as if they did not exist.

mod backends;

use backends::TestDb;
use murmur_engine::Store;
use murmur_engine::secrets::{Error as SecretsError, Secrets};
use murmur_engine::store::{Error, NewRun};
use murmur_vault::{Kek, Keyring, LocalKek, SecretValue};

every_backend!(two_tenants_never_see_each_other);

const AT: &str = "2026-01-01T00:00:00.000Z";

async fn run(store: &Store, id: &str) {
    let agents = vec!["build".to_owned()];
    store
        .create_run(&NewRun {
            id,
            flight: "deploy",
            flight_path: None,
            source: "# Deploy\n\n## build\nBuild.\n",
            digest: "d",
            inputs: &serde_json::json!({}),
            created_at: AT,
            agents: &agents,
            event: None,
        })
        .await
        .expect("create run");
}

async fn two_tenants_never_see_each_other(db: &TestDb) {
    let local = backends::open(db).await;
    assert!(local.create_tenant("acme", AT).await.expect("create"));
    assert!(!local.create_tenant("acme", AT).await.expect("again"));
    assert!(local.for_tenant("nope").await.expect("lookup").is_none());
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    assert_eq!(acme.tenant(), "acme");
    run(&local, "0aa1local").await;
    run(&acme, "0aa2acme").await;

    for (store, own, other) in [
        (&local, "0aa1local", "0aa2acme"),
        (&acme, "0aa2acme", "0aa1local"),
    ] {
        let ids: Vec<String> = store
            .runs(100)
            .await
            .expect("runs")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [own], "{} lists only its own runs", store.tenant());
        assert_eq!(
            store.run("0aa").await.expect("the prefix is its own").id,
            own
        );
        assert!(
            matches!(store.run(other).await, Err(Error::NoRun(_))),
            "{other}"
        );
    }

    let kek = LocalKek::generate().expect("kek");
    let ring = Keyring::new(Kek::Local(kek));
    let value = |text: &str| SecretValue::new(text.as_bytes().to_vec());
    Secrets::new(&local, &ring)
        .set("TOKEN", &value("local-value"), "a", AT)
        .await
        .expect("set");
    Secrets::new(&acme, &ring)
        .set("TOKEN", &value("acme-value"), "b", AT)
        .await
        .expect("set");
    Secrets::new(&acme, &ring)
        .set("ONLY_ACME", &value("x"), "b", AT)
        .await
        .expect("set");
    let opened = Secrets::new(&local, &ring)
        .open(&["TOKEN"])
        .await
        .expect("open");
    assert_eq!(
        opened.get("TOKEN").map(|v| v.expose()),
        Some(&b"local-value"[..])
    );
    let opened = Secrets::new(&acme, &ring)
        .open(&["TOKEN"])
        .await
        .expect("open");
    assert_eq!(
        opened.get("TOKEN").map(|v| v.expose()),
        Some(&b"acme-value"[..])
    );
    assert!(matches!(
        Secrets::new(&local, &ring).open(&["ONLY_ACME"]).await,
        Err(SecretsError::NoSecret(_))
    ));
    let names = |entries: Vec<murmur_engine::store::secrets::SecretEntry>| -> Vec<String> {
        entries.into_iter().map(|e| e.name).collect()
    };
    assert_eq!(names(local.secrets().await.expect("list")), ["TOKEN"]);
    assert_eq!(
        names(acme.secrets().await.expect("list")),
        ["ONLY_ACME", "TOKEN"]
    );
    assert!(
        !local.remove_secret("ONLY_ACME").await.expect("remove"),
        "not local's to remove"
    );

    local.add_token("ci", "mur_local", AT).await.expect("token");
    acme.add_token("ci", "mur_acme", AT).await.expect("token");
    let token_names = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .list_tokens()
                .await
                .expect("tokens")
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(token_names(&local).await, ["ci"]);
    assert_eq!(token_names(&acme).await, ["ci"]);
    assert_eq!(local.authenticate("mur_acme").await.expect("auth"), None);
    assert_eq!(
        acme.authenticate("mur_acme")
            .await
            .expect("auth")
            .as_deref(),
        Some("ci")
    );
    assert_eq!(acme.revoke_token("ci").await.expect("revoke"), 1);
    assert_eq!(
        local
            .authenticate("mur_local")
            .await
            .expect("auth")
            .as_deref(),
        Some("ci")
    );
    assert_eq!(acme.authenticate("mur_acme").await.expect("auth"), None);
    let tenants: Vec<String> = local
        .tenants()
        .await
        .expect("tenants")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tenants, ["acme", "local"]);
}
