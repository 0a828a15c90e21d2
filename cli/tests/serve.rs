//! `murmur serve` over a real port on 127.0.0.1: runs started over HTTP, watched through the
//! SSE stream, and finished by a restarted server after the first one was killed mid-run.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use support::{http, serve, setup};

fn run_id(body: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["run_id"].as_str().expect("run_id").to_owned()
}

#[test]
fn runs_start_over_http_and_finish_on_the_event_stream() {
    let (repo, token) = setup(
        "---\nruntime: exec\n---\n# Job\n\n## one\n> command: echo first\n\n## two\n> needs: one\n> command: echo second\n",
    );
    let (mut server, address) = serve(repo.path());
    let auth = format!("Bearer {token}");
    let start = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "abc"),
    ];
    let (status, body) = http(
        &address,
        "POST",
        "/v1/flights/job/runs",
        &start,
        "{\"inputs\": {}}",
    );
    assert_eq!(status, 202, "{body}");
    let id = run_id(&body);
    let (_, again) = http(
        &address,
        "POST",
        "/v1/flights/job/runs",
        &start,
        "{\"inputs\": {}}",
    );
    assert_eq!(run_id(&again), id, "the same Idempotency-Key is one run");
    let stream = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
    ];
    let (status, events) = http(
        &address,
        "GET",
        &format!("/v1/runs/{id}/events"),
        &stream,
        "",
    );
    assert_eq!(status, 200);
    assert!(events.contains("event: run_completed"), "{events}");
    assert!(events.contains("second"), "{events}");
    let (_, runs) = http(
        &address,
        "GET",
        "/v1/runs",
        &[("Authorization", auth.as_str())],
        "",
    );
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("json");
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(1),
        "exactly one run: {runs}"
    );
    assert_eq!(http(&address, "GET", "/healthz", &[], "").0, 200);
    assert_eq!(http(&address, "GET", "/v1/runs", &[], "").0, 401);
    server.kill().expect("stop");
    server.wait().expect("reaped");
}

#[test]
fn a_restarted_server_finishes_the_run_it_was_killed_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let flight = support::waiting_flight(&go);
    let (repo, token) = setup(&flight);
    let auth = format!("Bearer {token}");
    let (mut first, address) = serve(repo.path());
    let (status, body) = http(
        &address,
        "POST",
        "/v1/flights/job/runs",
        &[("Authorization", auth.as_str())],
        "",
    );
    assert_eq!(status, 202, "{body}");
    let id = run_id(&body);
    // The agent waits for the file; kill the server while it waits.
    let (_, log) = wait_for(&address, &auth, &id, "agent_started");
    assert!(log.contains("agent_started"));
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let (mut second, address) = serve(repo.path());
    std::fs::write(&go, "go\n").expect("release the agent");
    let stream = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
    ];
    let (_, events) = http(
        &address,
        "GET",
        &format!("/v1/runs/{id}/events"),
        &stream,
        "",
    );
    assert!(
        events.contains("event: agent_interrupted") && events.contains("event: run_completed"),
        "{events}"
    );
    second.kill().expect("stop");
    second.wait().expect("reaped");
}

/// Reads the live stream until an event of `kind` arrives (the stream itself waits).
fn wait_for(address: &str, auth: &str, id: &str, kind: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let request = format!(
        "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: {auth}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut seen = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line == format!("event: {kind}") {
            return (200, seen);
        }
    }
    (0, seen)
}
