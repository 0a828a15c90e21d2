//! Envelope encryption end to end: data keys wrapped by a keyring, secrets under data keys,
//! and a KEK rotation that re-wraps data keys while old secrets keep opening.

use murmur_vault::kek::keyring_from_values;
use murmur_vault::{Error, Kek, KeyFile, Keyring, LocalKek, SecretValue, WrappedKey};

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.as_bytes().to_vec())
}

fn local() -> Kek {
    Kek::Local(LocalKek::generate().expect("kek"))
}

#[tokio::test]
async fn a_wrapped_data_key_opens_only_for_its_tenant_and_kek() {
    let keyring = Keyring::new(local());
    let (key, wrapped) = keyring.new_data_key("acme").await.expect("new");
    assert_eq!(wrapped.kek_id, keyring.current_id());
    let sealed = key.encrypt("acme", "TOKEN", &value("v1")).expect("seal");
    let opened = keyring.unwrap("acme", &wrapped).await.expect("unwrap");
    assert_eq!(
        opened
            .decrypt("acme", "TOKEN", &sealed)
            .expect("open")
            .expose(),
        b"v1"
    );
    let other_tenant = keyring
        .unwrap("globex", &wrapped)
        .await
        .expect_err("tenant");
    assert!(
        matches!(other_tenant, Error::Unwrap { .. }),
        "{other_tenant}"
    );
    let other_kek = Keyring::new(local())
        .unwrap("acme", &wrapped)
        .await
        .expect_err("kek");
    assert!(matches!(other_kek, Error::UnknownKek { .. }), "{other_kek}");
    for index in 0..wrapped.bytes.len() {
        let mut tampered = wrapped.clone();
        tampered.bytes[index] ^= 0x80;
        assert!(
            keyring.unwrap("acme", &tampered).await.is_err(),
            "byte {index}"
        );
    }
    let forged = WrappedKey {
        kek_id: wrapped.kek_id.clone(),
        bytes: vec![1, 2, 3],
    };
    assert!(keyring.unwrap("acme", &forged).await.is_err());
}

#[tokio::test]
async fn rotation_rewraps_data_keys_and_old_secrets_still_open() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    let mut file = KeyFile::open_or_create(&path).expect("key file");
    let before = file.keyring().expect("keyring");
    let mut stored = Vec::new();
    for tenant in ["acme", "globex"] {
        let (key, wrapped) = before.new_data_key(tenant).await.expect("new");
        let sealed = key.encrypt(tenant, "TOKEN", &value(tenant)).expect("seal");
        stored.push((tenant, wrapped, sealed));
    }

    file.rotate().expect("rotate");
    let after = file.keyring().expect("keyring");
    let mut rewrapped = Vec::new();
    for (tenant, wrapped, sealed) in &stored {
        let new = after
            .rewrap(tenant, wrapped)
            .await
            .expect("rewrap")
            .expect("changed");
        assert_eq!(new.kek_id, after.current_id());
        assert!(
            after.rewrap(tenant, &new).await.expect("again").is_none(),
            "idempotent"
        );
        rewrapped.push((tenant, new, sealed));
    }

    let in_use: Vec<&str> = rewrapped
        .iter()
        .map(|(_, w, _)| w.kek_id.as_str())
        .collect();
    assert_eq!(file.retire(&in_use).expect("retire").len(), 1);
    let retired = file.keyring().expect("keyring");
    for ((tenant, new, sealed), (_, old, _)) in rewrapped.iter().zip(&stored) {
        let key = retired.unwrap(tenant, new).await.expect("unwrap");
        let opened = key
            .decrypt(tenant, "TOKEN", sealed)
            .expect("old secret opens");
        assert_eq!(opened.expose(), tenant.as_bytes());
        let gone = retired.unwrap(tenant, old).await.expect_err("old wrap");
        assert!(matches!(gone, Error::UnknownKek { .. }), "{gone}");
    }
}

#[tokio::test]
async fn environment_keys_rotate_through_the_previous_variable() {
    let old = LocalKek::generate().expect("kek").to_base64();
    let new = LocalKek::generate().expect("kek").to_base64();
    let before = keyring_from_values(Some(&old), None).expect("keyring");
    let (key, wrapped) = before.new_data_key("acme").await.expect("new");
    let sealed = key.encrypt("acme", "TOKEN", &value("v")).expect("seal");

    let only_new = keyring_from_values(Some(&new), None).expect("keyring");
    assert!(matches!(
        only_new.unwrap("acme", &wrapped).await,
        Err(Error::UnknownKek { .. })
    ));
    let after = keyring_from_values(Some(&new), Some(&old)).expect("keyring");
    let rewrapped = after
        .rewrap("acme", &wrapped)
        .await
        .expect("rewrap")
        .expect("new");
    let opened = only_new
        .unwrap("acme", &rewrapped)
        .await
        .expect("new kek opens it");
    assert_eq!(
        opened
            .decrypt("acme", "TOKEN", &sealed)
            .expect("open")
            .expose(),
        b"v"
    );
}

#[test]
fn nothing_secret_shows_in_debug_output() {
    let kek = LocalKek::generate().expect("kek");
    let text = kek.to_base64();
    let keyring = Keyring::new(Kek::Local(kek));
    let shown = format!("{keyring:?}");
    assert!(!shown.contains(text.as_str()), "{shown}");
    assert!(shown.contains("local:"), "{shown}");
}
