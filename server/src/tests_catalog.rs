//! The catalog routes through `oneshot`: save, list, read, delete, and runs of catalog flights.

use axum::body::Body;
use axum::http::{StatusCode, header};
use serde_json::json;

use super::tests::{authed, call, fixture, live_events};

const V1: &str =
    "---\nruntime: exec\n---\n# Catalog one\n\n## say\n> command: echo from-catalog-v1\n";
const V2: &str =
    "---\nruntime: exec\n---\n# Catalog two\n\n## say\n> command: echo from-catalog-v2\n";

fn put(name: &str, content_type: &str, text: &str) -> axum::http::Request<Body> {
    authed("PUT", &format!("/v1/flights/{name}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(text.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> axum::http::Request<Body> {
    authed("GET", uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn flights_are_saved_as_generations_and_read_back() {
    let f = fixture().await;
    let (status, first) = call(&f.app, put("greeter", "text/markdown", V1)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (&first["name"], &first["generation"], &first["author"]),
        (&json!("greeter"), &json!(1), &json!("tests"))
    );
    let (status, second) = call(&f.app, put("greeter", "text/plain; charset=utf-8", V2)).await;
    assert_eq!((status, &second["generation"]), (StatusCode::OK, &json!(2)));
    let (status, latest) = call(&f.app, get("/v1/flights/greeter")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&latest["markdown"], &latest["origin"], &latest["title"]),
        (&json!(V2), &json!("catalog"), &json!("Catalog two"))
    );
    let (_, old) = call(&f.app, get("/v1/flights/greeter?generation=1")).await;
    assert_eq!(old["markdown"], json!(V1));
    let (status, none) = call(&f.app, get("/v1/flights/greeter?generation=9")).await;
    assert_eq!(
        (status, &none["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let raw = authed("GET", "/v1/flights/greeter")
        .header(header::ACCEPT, "text/markdown")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&f.app, raw).await.1, json!(V2));
    let (_, listed) = call(&f.app, get("/v1/flights")).await;
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("greeter", "catalog"),
            ("hello", "repository"),
            ("nightly", "repository"),
            ("triage", "repository")
        ],
        "the invalid repository flight is not listed"
    );
}

#[tokio::test]
async fn an_invalid_flight_is_refused_with_its_diagnostics() {
    let f = fixture().await;
    let (status, body) = call(
        &f.app,
        put(
            "bad",
            "text/markdown",
            "# Bad\n\n## a\n> needs: zzz\n\nA.\n",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_flight");
    let diagnostic = &body["error"]["diagnostics"][0];
    assert_eq!(
        (
            &diagnostic["code"],
            &diagnostic["severity"],
            &diagnostic["line"]
        ),
        (&json!("unknown-agent"), &json!("error"), &json!(4))
    );
    let (status, _) = call(&f.app, get("/v1/flights/bad")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    let (status, body) = call(&f.app, put("bad", "application/json", V1)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!("unsupported_media_type")
        )
    );
    let (status, body) = call(&f.app, put(".hidden", "text/markdown", V1)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_name"))
    );
    let not_utf8 = authed("PUT", "/v1/flights/x")
        .header(header::CONTENT_TYPE, "text/markdown")
        .body(Body::from(vec![0xff, 0xfe, b'#']))
        .unwrap();
    assert_eq!(call(&f.app, not_utf8).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_catalog_flight_wins_over_the_repository_file_and_can_be_deleted() {
    let f = fixture().await;
    assert_eq!(
        call(&f.app, put("hello", "text/markdown", V1)).await.0,
        StatusCode::CREATED
    );
    let start = || {
        authed("POST", "/v1/flights/hello/runs")
            .body(Body::empty())
            .unwrap()
    };
    let (status, started) = call(&f.app, start()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().expect("id").to_owned();
    let (_, sse) = live_events(&f.app, &id, None).await;
    assert!(
        sse.contains("from-catalog-v1"),
        "the catalog's text ran: {sse}"
    );
    let delete = || {
        authed("DELETE", "/v1/flights/hello")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&f.app, delete()).await.0, StatusCode::NO_CONTENT);
    let (status, body) = call(&f.app, delete()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (_, shown) = call(&f.app, get("/v1/flights/hello")).await;
    assert_eq!(shown["origin"], "repository", "the file is back in view");
    let (_, started) = call(&f.app, start()).await;
    let id = started["run_id"].as_str().expect("id").to_owned();
    let (_, sse) = live_events(&f.app, &id, None).await;
    assert!(
        sse.contains("hello world"),
        "the repository's text ran: {sse}"
    );
}

#[tokio::test]
async fn an_idempotency_key_names_one_run_of_one_flight() {
    let f = fixture().await;
    let start = |flight: &str, body: &'static str| {
        authed("POST", &format!("/v1/flights/{flight}/runs"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "shared")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, first) = call(&f.app, start("hello", "null")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "`null` is no inputs: {first}");
    let (status, other) = call(&f.app, start("triage", "{}")).await;
    assert_eq!(
        (status, &other["error"]["code"]),
        (StatusCode::CONFLICT, &json!("idempotency_key_reused"))
    );
    let (status, bad) = call(&f.app, start("..%2Fx", "{}")).await;
    assert_eq!(
        (status, &bad["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "a name that cannot be a flight is checked before the key"
    );
}
