//! `GET/PUT/DELETE /v1/secrets[/{name}]` without a socket: names and dates go out, values only
//! in (encrypted before they are stored), bad names and values are refused, and a server
//! without a key-encryption key says so.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use murmur_engine::SystemClock;
use murmur_engine::secrets::Secrets;
use murmur_vault::{Kek, Keyring, LocalKek};
use serde_json::{Value, json};

use super::tests::{authed, call, test_executor};
use super::{AppState, router};

const VALUE: &str = "value-5b0c-never-answered";

async fn serving(with_key: bool) -> (tempfile::TempDir, Router, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    let mut executor = test_executor(dir.path(), Arc::new(SystemClock)).await;
    if with_key {
        let kek = LocalKek::generate().expect("a key");
        executor.environment.keyring = Ok(Arc::new(Keyring::new(Kek::Local(kek))));
    }
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    (dir, router(state.clone()), state)
}

fn put(name: &str, body: Value) -> axum::http::Request<Body> {
    authed("PUT", &format!("/v1/secrets/{name}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn get(uri: &str) -> axum::http::Request<Body> {
    authed("GET", uri).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn secrets_are_set_listed_and_removed_without_their_values() {
    let (_dir, app, state) = serving(true).await;
    let (status, created) = call(&app, put("DEPLOY_TOKEN", json!({"value": VALUE}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "DEPLOY_TOKEN");
    assert_eq!(created["updated_by"], "tests", "the token's name sets it");
    let (status, replaced) = call(&app, put("DEPLOY_TOKEN", json!({"value": "v2"}))).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let (status, listed) = call(&app, get("/v1/secrets")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    for answer in [&created, &replaced, &listed] {
        assert!(!answer.to_string().contains(VALUE), "{answer}");
        assert!(answer.get("value").is_none() && !answer.to_string().contains("\"v2\""));
    }
    let executor = state.executor();
    let keyring = executor.environment.keyring.as_ref().expect("keyring");
    let opened = Secrets::new(&executor.store, keyring)
        .open(&["DEPLOY_TOKEN"])
        .await
        .expect("opens");
    assert_eq!(
        opened.get("DEPLOY_TOKEN").map(|v| v.expose()),
        Some(&b"v2"[..])
    );
    let delete = authed("DELETE", "/v1/secrets/DEPLOY_TOKEN")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, delete).await.0, StatusCode::NO_CONTENT);
    let again = authed("DELETE", "/v1/secrets/DEPLOY_TOKEN")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, again).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(call(&app, get("/v1/secrets")).await.1, json!([]));
}

#[tokio::test]
async fn bad_names_values_and_bodies_are_refused() {
    let (_dir, app, _) = serving(true).await;
    for (name, body) in [
        ("1BAD", json!({"value": "x"})),
        ("MURMUR_X", json!({"value": "x"})),
        ("GOOD", json!({"value": ""})),
        ("GOOD", json!({"valeu": "x"})),
    ] {
        let (status, answer) = call(&app, put(name, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
    }
    let unauthed = axum::http::Request::builder()
        .method("GET")
        .uri("/v1/secrets")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, unauthed).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_server_without_a_key_refuses_to_set_and_says_why() {
    let (_dir, app, _) = serving(false).await;
    let (status, answer) = call(&app, put("DEPLOY_TOKEN", json!({"value": VALUE}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer.to_string().contains("MURMUR_KEK"), "{answer}");
    assert!(!answer.to_string().contains(VALUE));
}
