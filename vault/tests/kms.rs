//! AWS KMS as the key source, against moto's KMS (the real wire protocol, started by the test
//! on a free port). Skipped, saying so, only when no `moto_server` is installed; `.ci/run`
//! installs one.
#![cfg(feature = "kms")]

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use murmur_vault::kek::KmsKek;
use murmur_vault::{Error, Kek, Keyring, LocalKek, SecretValue};

fn client(url: &str) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .build();
    Client::from_conf(config)
}

async fn new_key(client: &Client) -> String {
    let created = client.create_key().send().await.expect("create a KMS key");
    created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned()
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.as_bytes().to_vec())
}

#[tokio::test]
async fn kms_wraps_data_keys_per_tenant_and_rotation_between_keys_keeps_secrets_open() {
    let Some(moto) = murmur_testkit::moto::Moto::start() else {
        return;
    };
    let client = client(moto.url());
    let (first, second) = (new_key(&client).await, new_key(&client).await);
    let kek_a = KmsKek::connect(client.clone(), &first)
        .await
        .expect("connect");
    assert!(kek_a.id().starts_with("kms:arn:aws:kms:"), "{}", kek_a.id());
    let before = Keyring::new(Kek::Kms(kek_a));
    let (key, wrapped) = before.new_data_key("acme").await.expect("wrap");
    let sealed = key.encrypt("acme", "TOKEN", &value("v")).expect("seal");

    let other = before.unwrap("globex", &wrapped).await.expect_err("tenant");
    assert!(matches!(other, Error::Unwrap { .. }), "{other}");
    let mut tampered = wrapped.clone();
    let last = tampered.bytes.len() - 1;
    tampered.bytes[last] ^= 1;
    assert!(before.unwrap("acme", &tampered).await.is_err());

    let kek_a = KmsKek::connect(client.clone(), &first)
        .await
        .expect("connect");
    let kek_b = KmsKek::connect(client.clone(), &second)
        .await
        .expect("connect");
    let after = Keyring::new(Kek::Kms(kek_b)).with_previous(Kek::Kms(kek_a));
    let rewrapped = after
        .rewrap("acme", &wrapped)
        .await
        .expect("rewrap")
        .expect("new");
    assert_eq!(rewrapped.kek_id, after.current_id());
    let only_b = Keyring::new(Kek::Kms(
        KmsKek::connect(client.clone(), &second)
            .await
            .expect("connect"),
    ));
    let opened = only_b.unwrap("acme", &rewrapped).await.expect("unwrap");
    assert_eq!(
        opened
            .decrypt("acme", "TOKEN", &sealed)
            .expect("open")
            .expose(),
        b"v"
    );
}

#[tokio::test]
async fn a_local_kek_rotates_to_kms() {
    let Some(moto) = murmur_testkit::moto::Moto::start() else {
        return;
    };
    let client = client(moto.url());
    let key_id = new_key(&client).await;
    let text = LocalKek::generate().expect("kek").to_base64();
    let local_kek = || Kek::Local(LocalKek::from_base64(&text).expect("parse"));
    let local = Keyring::new(local_kek());
    let (key, wrapped) = local.new_data_key("acme").await.expect("wrap");
    let sealed = key.encrypt("acme", "TOKEN", &value("local")).expect("seal");
    let kms = KmsKek::connect(client, &key_id).await.expect("connect");
    let mixed = Keyring::new(Kek::Kms(kms)).with_previous(local_kek());
    let rewrapped = mixed
        .rewrap("acme", &wrapped)
        .await
        .expect("rewrap")
        .expect("new");
    assert!(rewrapped.kek_id.starts_with("kms:"));
    let opened = mixed.unwrap("acme", &rewrapped).await.expect("unwrap");
    assert_eq!(
        opened
            .decrypt("acme", "TOKEN", &sealed)
            .expect("open")
            .expose(),
        b"local"
    );
}

#[tokio::test]
async fn an_unknown_key_or_an_unreachable_kms_is_a_clear_error() {
    if let Some(moto) = murmur_testkit::moto::Moto::start() {
        let missing = KmsKek::connect(client(moto.url()), "alias/nothing-here").await;
        assert!(matches!(missing, Err(Error::Kms { .. })), "{missing:?}");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let refused = KmsKek::connect(client(&url), "any")
        .await
        .expect_err("refused");
    assert!(matches!(refused, Error::KmsUnreachable { .. }), "{refused}");
    assert!(
        refused.to_string().contains("AWS_ENDPOINT_URL_KMS"),
        "{refused}"
    );
}
