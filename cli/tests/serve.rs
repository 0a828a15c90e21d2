//! `murmur serve` over a real port on 127.0.0.1: runs started over HTTP, watched through the
//! SSE stream, and finished by a restarted server after the first one was killed mid-run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn murmur(repo: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
    command.current_dir(repo).env_remove("MURMUR_DATABASE_URL");
    command
}

/// Starts `murmur serve` on a free port and returns it with its address.
fn serve(repo: &Path) -> (Child, String) {
    let mut server = murmur(repo)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("line");
        if let Some(address) = line.split("listening on http://").nth(1) {
            break address.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, address)
}

/// One HTTP/1.1 request; returns the status and the body (read until the server closes).
fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn setup(flight: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
    std::fs::write(dir.path().join(".murmur/flights/job.md"), flight).expect("flight");
    let out = murmur(dir.path())
        .args(["token", "create", "--name", "tests"])
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (dir, token)
}

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
    // The agent waits for this file. A file, not a fifo: an attempt dying when the engine is
    // killed could take a fifo's one wake-up with it, and the next attempt would wait forever.
    let go = dir.path().join("go");
    let flight = format!(
        "---\nruntime: exec\n---\n# Job\n\n## wait\n> command: until [ -e {} ]; do sleep 0.05; done; echo released\n",
        go.display()
    );
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
