//! The developer's profile (`murmur setup`'s file) on every backend: it opens with its
//! tenant's key only; a file of another tenant, one edited to name another tenant, one
//! changed in a byte or opened by another server's key is refused with a clear error.

mod backends;

use backends::TestDb;
use murmur_engine::Store;
use murmur_engine::profile::{self, Error};
use murmur_vault::{Kek, Keyring, LocalKek, SecretSet, SecretValue};

every_backend!(a_profile_opens_only_in_its_tenant_with_its_servers_key);

const AT: &str = "2026-01-01T00:00:00.000Z";

fn credentials() -> SecretSet {
    let mut set = SecretSet::new();
    for (name, value) in [
        ("ANTHROPIC_API_KEY", "sk-ant-profile-marker"),
        ("GITHUB_TOKEN", "ghp-profile-marker"),
    ] {
        set.insert(name, SecretValue::new(value.as_bytes().to_vec()))
            .expect("insert");
    }
    set
}

fn keyring() -> Keyring {
    Keyring::new(Kek::Local(LocalKek::generate().expect("key")))
}

async fn a_profile_opens_only_in_its_tenant_with_its_servers_key(db: &TestDb) {
    let local = backends::open(db).await;
    assert!(local.create_tenant("acme", AT).await.expect("tenant"));
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    let ring = keyring();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(profile::FILE);
    assert!(
        profile::read(&acme, &ring, &path)
            .await
            .expect("none")
            .is_none()
    );
    // The local tenant has a data key of its own (a secret), so the refusals below are the
    // profile's binding and not a missing key.
    let value = SecretValue::new(b"x".to_vec());
    murmur_engine::secrets::Secrets::new(&local, &ring)
        .set("OTHER", &value, "t", AT)
        .await
        .expect("secret");

    profile::write(&acme, &ring, "ada", &credentials(), &path, AT)
        .await
        .expect("write");
    let text = std::fs::read_to_string(&path).expect("text");
    assert!(!text.contains("marker"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (read, opened) = profile::read(&acme, &ring, &path)
        .await
        .expect("read")
        .expect("some");
    assert_eq!(
        (read.tenant.as_str(), read.developer.as_str()),
        ("acme", "ada")
    );
    assert_eq!(opened, credentials());

    let refused = profile::read(&local, &ring, &path).await.unwrap_err();
    assert!(matches!(refused, Error::OtherTenant { .. }), "{refused}");
    assert!(refused.to_string().contains("tenant `acme`"), "{refused}");

    let moved = text.replace("tenant: acme", "tenant: local");
    std::fs::write(&path, &moved).expect("edit");
    let refused = profile::read(&local, &ring, &path).await.unwrap_err();
    assert!(
        matches!(refused, Error::Vault(murmur_vault::Error::Profile { .. })),
        "a file renamed into another tenant opens with that tenant's key: {refused}"
    );

    let at = text.find("sealed: ").expect("sealed") + 12;
    let mut tampered = text.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, &tampered).expect("tamper");
    let refused = profile::read(&acme, &ring, &path).await.unwrap_err();
    assert!(
        matches!(refused, Error::Vault(murmur_vault::Error::Profile { .. })),
        "{refused}"
    );
    assert!(!refused.to_string().contains("marker"));

    std::fs::write(&path, &text).expect("restore");
    let refused = profile::read(&acme, &keyring(), &path).await.unwrap_err();
    assert!(
        refused.to_string().contains("not in the keyring"),
        "another server's key: {refused}"
    );
    let fresh = Store::open(&db.url).await.expect("reopen");
    let acme = fresh
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    let (_, again) = profile::read(&acme, &ring, &path)
        .await
        .expect("read")
        .expect("some");
    assert_eq!(
        again,
        credentials(),
        "the file is unchanged by the refusals"
    );
}
