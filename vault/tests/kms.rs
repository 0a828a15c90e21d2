//! AWS KMS as the key source, against moto's KMS (the real wire protocol, started by the test
//! on a free port). Skipped, saying so, only when no `moto_server` is installed; `.ci/run`
//! installs one.
#![cfg(feature = "kms")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use murmur_vault::kek::KmsKek;
use murmur_vault::{Error, Kek, Keyring, LocalKek, SecretValue};

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("MURMUR_MOTO_SERVER") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

/// Starts moto on a port of its choosing and waits (with a deadline) for it to say which.
fn start_moto() -> Option<Moto> {
    let Some(binary) = moto_binary() else {
        eprintln!(
            "skipped: no moto_server on PATH (pip install 'moto[server]', or set MURMUR_MOTO_SERVER)"
        );
        return None;
    };
    let mut child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let stderr = child.stderr.take().expect("stderr");
    let (found, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("Running on ").nth(1) {
                let _ = found.send(url.trim().to_owned());
            }
        }
    });
    let url = port
        .recv_timeout(Duration::from_secs(60))
        .expect("moto_server says where it listens within 60 s");
    Some(Moto { child, url })
}

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
    let Some(moto) = start_moto() else { return };
    let client = client(&moto.url);
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
    let Some(moto) = start_moto() else { return };
    let client = client(&moto.url);
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
    if let Some(moto) = start_moto() {
        let missing = KmsKek::connect(client(&moto.url), "alias/nothing-here").await;
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
