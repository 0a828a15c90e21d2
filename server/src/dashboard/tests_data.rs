//! The data the dashboard's pages read, through the router: a run's graph with fan-out
//! instances, an agent's log, the live runs list, flights with diagnostics, follow-ups, and
//! runs of another tenant.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::html::CSP;
use super::tests::{
    Browser, Dashboard, TOKEN, as_json, dashboard, get_with, log_in, post_json, send,
};

/// Starts flight `name` over the session and waits (on the event stream) for its end.
async fn finished_run(d: &Dashboard, browser: &Browser, name: &str) -> String {
    let start = post_json(
        &format!("/v1/flights/{name}/runs"),
        browser,
        Some(&browser.csrf),
        json!({}),
    );
    let (status, _, body) = send(&d.app, start).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = as_json(&body)["run_id"].as_str().unwrap().to_owned();
    let request = Request::get(format!("/v1/runs/{id}/events"))
        .header(header::COOKIE, &browser.cookie)
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let (_, _, events) = send(&d.app, request).await;
    assert!(events.contains("event: run_completed"), "{events}");
    id
}

#[tokio::test]
async fn the_run_page_data_groups_fan_out_instances_and_reads_an_agents_log() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let id = finished_run(&d, &browser, "fan").await;
    let (status, headers, page) =
        send(&d.app, get_with(&format!("/runs/{id}"), &browser.cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert!(page.contains(&format!("data-subject=\"{id}\"")));
    let (status, _, body) =
        send(&d.app, get_with(&format!("/ui/runs/{id}"), &browser.cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = as_json(&body);
    assert_eq!(data["run"]["status"], "completed");
    let graph = data["graph"].as_array().unwrap();
    let of = |slug: &str| {
        graph
            .iter()
            .find(|n| n["slug"] == slug)
            .cloned()
            .unwrap_or_else(|| panic!("{slug} in {graph:?}"))
    };
    assert_eq!(of("sum")["needs"], json!(["part"]));
    let instances: Vec<&Value> = graph.iter().filter(|n| n["template"] == "part").collect();
    let items: Vec<&str> = instances
        .iter()
        .map(|n| n["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["a", "b", "c"]);
    assert_eq!(instances[0]["slug"], "part-a");
    assert!(data["seq"].as_i64().unwrap() > 0);
    let (_, _, log) = send(
        &d.app,
        get_with(&format!("/ui/runs/{id}/agents/part-b/log"), &browser.cookie),
    )
    .await;
    let log = as_json(&log);
    let lines: Vec<&str> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["part"]);
    // The live list streams the run with its status.
    let request = get_with("/ui/runs/live", &browser.cookie);
    let response = d.app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let first = futures::StreamExt::next(&mut body)
        .await
        .expect("a first list")
        .expect("bytes");
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.starts_with("event: runs") && text.contains(&id) && text.contains("completed"),
        "{text}"
    );
}

#[tokio::test]
async fn flights_show_their_diagnostics_inputs_and_graph() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let (_, _, list) = send(&d.app, get_with("/ui/flights", &browser.cookie)).await;
    let list = as_json(&list);
    let broken = list
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "broken")
        .expect("invalid files are listed");
    assert_eq!(
        (broken["valid"].clone(), broken["errors"].clone()),
        (json!(false), json!(1))
    );
    let (_, _, broken) = send(&d.app, get_with("/ui/flights/broken", &browser.cookie)).await;
    assert_eq!(as_json(&broken)["diagnostics"][0]["code"], "unknown-agent");
    let (status, _, hello) = send(&d.app, get_with("/ui/flights/hello", &browser.cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let hello = as_json(&hello);
    assert_eq!(
        hello["inputs"],
        json!([{"name": "who", "description": null, "default": "world", "required": false}])
    );
    assert_eq!(hello["graph"][0]["slug"], "greet");
    assert!(hello["graph_text"].as_str().unwrap().contains("greet"));
    let (status, _, _) = send(&d.app, get_with("/flights/hello", &browser.cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, page) = send(&d.app, get_with("/machines", &browser.cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("src=\"/assets/machines.js\""), "{page}");
}

#[tokio::test]
async fn a_follow_up_needs_text_and_a_known_agent() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let id = finished_run(&d, &browser, "hello").await;
    let queue = |slug: &str, body: Value| {
        post_json(
            &format!("/ui/runs/{id}/agents/{slug}/queue"),
            &browser,
            Some(&browser.csrf),
            body,
        )
    };
    assert_eq!(
        send(&d.app, queue("greet", json!({"text": "  "}))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&d.app, queue("nobody", json!({"text": "more"})))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let no_csrf = post_json(
        &format!("/ui/runs/{id}/agents/greet/queue"),
        &browser,
        None,
        json!({"text": "more"}),
    );
    assert_eq!(send(&d.app, no_csrf).await.0, StatusCode::FORBIDDEN);
    // A follow-up for an agent of a completed run reopens the run, which runs it.
    let (status, _, body) = send(&d.app, queue("greet", json!({"text": "once more"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(as_json(&body)["reopened"], true);
    let request = Request::get(format!("/v1/runs/{id}/events"))
        .header(header::COOKIE, &browser.cookie)
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let (_, _, events) = send(&d.app, request).await;
    let after = events
        .split("event: run_reopened")
        .nth(1)
        .unwrap_or_else(|| panic!("{events}"));
    assert!(
        after.contains("event: agent_follow_up") && after.contains("event: run_completed"),
        "{events}"
    );
}

#[tokio::test]
async fn another_tenants_run_is_not_found_and_a_bearer_token_reads_the_page_data() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let id = finished_run(&d, &browser, "hello").await;
    let tenant = d.state.store().tenant().to_owned();
    assert!(super::run::run_of(&d.state, &tenant, &id).await.is_ok());
    let other = super::run::run_of(&d.state, "another-tenant", &id).await;
    let status = axum::response::IntoResponse::into_response(other.expect_err("hidden")).status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A session of another tenant is no session here.
    let (session, _) = d.state.inner.dashboard.open(TOKEN, "another-tenant");
    let cookie = format!("{}={session}", super::session::COOKIE_NAME);
    let (status, _, _) = send(&d.app, get_with(&format!("/runs/{id}"), &cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let bearer = Request::get(format!("/ui/runs/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&d.app, bearer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(as_json(&body)["graph"][0]["slug"], "greet");
}
