//! Secrets in the store, on every backend: only ciphertext and wrapped keys are kept, names
//! are listed with who and when, and a KEK rotation re-wraps data keys while every secret
//! still opens.

mod backends;

use backends::TestDb;
use murmur_engine::secrets::{Error, Secrets};
use murmur_engine::store::secrets::{NewSecret, StoredKey, Written};
use murmur_vault::{Kek, Keyring, LocalKek, SecretValue};

every_backend!(
    a_secret_round_trips_and_is_listed_without_its_value,
    only_ciphertext_reaches_the_database,
    a_ciphertext_moved_to_another_name_does_not_open,
    rotation_rewraps_the_data_key_and_old_secrets_still_open,
    a_stale_rewrap_loses_to_the_one_that_got_there_first,
    concurrent_first_secrets_share_one_data_key,
    missing_and_bad_secrets_are_clear_errors,
);

const AT: &str = "2026-01-01T00:00:00.000Z";
const LATER: &str = "2026-01-02T00:00:00.000Z";

fn kek_text() -> String {
    LocalKek::generate().expect("kek").to_base64().to_string()
}

fn keyring(current: &str, previous: &[&str]) -> Keyring {
    let kek = |text: &str| Kek::Local(LocalKek::from_base64(text).expect("kek"));
    previous
        .iter()
        .fold(Keyring::new(kek(current)), |ring, old| {
            ring.with_previous(kek(old))
        })
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.as_bytes().to_vec())
}

async fn a_secret_round_trips_and_is_listed_without_its_value(db: &TestDb) {
    let store = backends::open(db).await;
    let ring = keyring(&kek_text(), &[]);
    let secrets = Secrets::new(&store, &ring);
    let first = secrets
        .set("TOKEN", &value("one"), "alice", AT)
        .await
        .expect("set");
    assert_eq!(first, Written::Created);
    secrets
        .set("API_KEY", &value("k"), "alice", AT)
        .await
        .expect("set");
    let again = secrets
        .set("TOKEN", &value("two"), "bob", LATER)
        .await
        .expect("set");
    assert_eq!(again, Written::Replaced);

    let listed = secrets.list().await.expect("list");
    let names: Vec<_> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["API_KEY", "TOKEN"]);
    let token = &listed[1];
    assert_eq!(
        (token.created_by.as_str(), token.created_at.as_str()),
        ("alice", AT)
    );
    assert_eq!(
        (token.updated_by.as_str(), token.updated_at.as_str()),
        ("bob", LATER)
    );
    let json = serde_json::to_string(&listed).expect("json");
    assert!(!json.contains("two") && !json.contains("\"k\""), "{json}");

    let opened = secrets.open(&["TOKEN", "API_KEY"]).await.expect("open");
    assert_eq!(opened.get("TOKEN").expect("token").expose(), b"two");
    assert_eq!(opened.get("API_KEY").expect("key").expose(), b"k");
    secrets.remove("TOKEN").await.expect("remove");
    assert!(matches!(
        secrets.remove("TOKEN").await,
        Err(Error::NoSecret(_))
    ));
    assert_eq!(secrets.list().await.expect("list").len(), 1);
}

async fn only_ciphertext_reaches_the_database(db: &TestDb) {
    let marker = format!("marker-{}", uuid_ish());
    {
        let store = backends::open(db).await;
        let ring = keyring(&kek_text(), &[]);
        let secrets = Secrets::new(&store, &ring);
        secrets
            .set("MARKED", &value(&marker), "local", AT)
            .await
            .expect("set");
        let stored = store.secret_ciphertexts(&["MARKED"]).await.expect("read");
        assert_eq!(stored.len(), 1);
        assert!(!contains(&stored[0].ciphertext, marker.as_bytes()));
        let key = store.data_key().await.expect("key").expect("made");
        assert!(key.kek_id.starts_with("local:"), "{key:?}");
    }
    // On SQLite, look at the bytes of the database and its write-ahead log themselves.
    if !db.url.starts_with("postgres") {
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", db.url);
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !contains(&bytes, marker.as_bytes()),
                    "{path} holds the value"
                );
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn uuid_ish() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
}

async fn a_ciphertext_moved_to_another_name_does_not_open(db: &TestDb) {
    let store = backends::open(db).await;
    let ring = keyring(&kek_text(), &[]);
    let secrets = Secrets::new(&store, &ring);
    secrets
        .set("REAL", &value("v"), "local", AT)
        .await
        .expect("set");
    let stored = store
        .secret_ciphertexts(&["REAL"])
        .await
        .expect("read")
        .remove(0);
    let moved = NewSecret {
        name: "COPY",
        ciphertext: &stored.ciphertext,
        nonce: &stored.nonce,
        by: "mallory",
        at: AT,
    };
    store.set_secret(&moved).await.expect("write the copy");
    let refused = secrets.open(&["COPY"]).await.expect_err("moved");
    assert!(
        matches!(refused, Error::Vault(murmur_vault::Error::Decrypt { .. })),
        "{refused}"
    );
    let mut flipped = stored.ciphertext.clone();
    flipped[0] ^= 1;
    let tampered = NewSecret {
        name: "REAL",
        ciphertext: &flipped,
        ..moved
    };
    store.set_secret(&tampered).await.expect("write");
    assert!(secrets.open(&["REAL"]).await.is_err());
}

async fn rotation_rewraps_the_data_key_and_old_secrets_still_open(db: &TestDb) {
    let store = backends::open(db).await;
    let (old, new) = (kek_text(), kek_text());
    let before = keyring(&old, &[]);
    Secrets::new(&store, &before)
        .set("TOKEN", &value("kept"), "local", AT)
        .await
        .expect("set");
    let ciphertext_before = store.secret_ciphertexts(&["TOKEN"]).await.expect("read");

    let during = keyring(&new, &[&old]);
    let secrets = Secrets::new(&store, &during);
    let rotation = secrets.rotate(LATER).await.expect("rotate");
    assert_eq!(
        (rotation.rewrapped, rotation.current, rotation.raced),
        (1, 0, 0)
    );
    assert_eq!(
        secrets.kek_ids_in_use().await.expect("ids"),
        [during.current_id()]
    );
    assert_eq!(secrets.rotate(LATER).await.expect("again").rewrapped, 0);

    let after = keyring(&new, &[]);
    let opened = Secrets::new(&store, &after)
        .open(&["TOKEN"])
        .await
        .expect("open");
    assert_eq!(opened.get("TOKEN").expect("token").expose(), b"kept");
    let ciphertext_after = store.secret_ciphertexts(&["TOKEN"]).await.expect("read");
    assert_eq!(
        ciphertext_before, ciphertext_after,
        "secrets are not re-encrypted"
    );
    let stale = Secrets::new(&store, &before)
        .open(&["TOKEN"])
        .await
        .expect_err("old kek");
    assert!(
        matches!(stale, Error::Vault(murmur_vault::Error::UnknownKek { .. })),
        "{stale}"
    );
}

async fn a_stale_rewrap_loses_to_the_one_that_got_there_first(db: &TestDb) {
    let store = backends::open(db).await;
    let ring = keyring(&kek_text(), &[]);
    Secrets::new(&store, &ring)
        .set("TOKEN", &value("v"), "local", AT)
        .await
        .expect("set");
    let original = store.data_key().await.expect("read").expect("key");
    let first = StoredKey {
        kek_id: "local:first".to_owned(),
        wrapped: vec![1; 8],
    };
    let tenant = store.tenant().to_owned();
    assert!(
        store
            .rewrap_data_key(&tenant, &original, &first, LATER)
            .await
            .expect("cas")
    );
    let second = StoredKey {
        kek_id: "local:second".to_owned(),
        wrapped: vec![2; 8],
    };
    assert!(
        !store
            .rewrap_data_key(&tenant, &original, &second, LATER)
            .await
            .expect("cas")
    );
    assert_eq!(store.data_key().await.expect("read"), Some(first));
}

async fn concurrent_first_secrets_share_one_data_key(db: &TestDb) {
    let store = backends::open(db).await;
    let ring = std::sync::Arc::new(keyring(&kek_text(), &[]));
    let names: Vec<String> = (0..6).map(|i| format!("S{i}")).collect();
    let mut sets = tokio::task::JoinSet::new();
    for name in names.clone() {
        let (store, ring) = (store.clone(), ring.clone());
        sets.spawn(async move {
            let secrets = Secrets::new(&store, &ring);
            secrets.set(&name, &value(&name), "local", AT).await
        });
    }
    while let Some(result) = sets.join_next().await {
        result.expect("task").expect("set");
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let opened = Secrets::new(&store, &ring)
        .open(&refs)
        .await
        .expect("all open");
    assert_eq!(opened.len(), names.len());
}

async fn missing_and_bad_secrets_are_clear_errors(db: &TestDb) {
    let store = backends::open(db).await;
    let ring = keyring(&kek_text(), &[]);
    let secrets = Secrets::new(&store, &ring);
    let missing = secrets.open(&["NOPE"]).await.expect_err("missing");
    assert!(missing.to_string().contains("secret ls"), "{missing}");
    assert!(secrets.open(&[]).await.expect("none").is_empty());
    for (name, text) in [("BAD-NAME", "v"), ("EMPTY", ""), ("MURMUR_TREE", "v")] {
        let refused = secrets.set(name, &value(text), "local", AT).await;
        assert!(
            matches!(refused, Err(Error::Vault(_))),
            "{name}: {refused:?}"
        );
    }
    assert!(
        secrets.list().await.expect("list").is_empty(),
        "nothing was stored"
    );
    secrets
        .set("TOKEN", &value("v"), "local", AT)
        .await
        .expect("set");
    let other = keyring(&kek_text(), &[]);
    let wrong = Secrets::new(&store, &other)
        .open(&["TOKEN"])
        .await
        .expect_err("kek");
    assert!(wrong.to_string().contains("not in the keyring"), "{wrong}");
}
