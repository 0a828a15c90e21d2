//! `murmur serve` run by people operating it, as a real process on a real port: a client that
//! hangs up right after sending its start still gets its run; `/healthz` and `/readyz` answer
//! 503 once the store is gone; `--log-format json` writes one JSON object per stderr line,
//! requests and started runs among them.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::db::PgDatabase;
use support::{http, murmur, setup};

const QUICK_FLIGHT: &str = "---\nruntime: exec\n---\n# Job\n\n## one\n> command: echo first\n\n## two\n> needs: one\n> command: echo second\n";
/// Long enough for anything the server does in these tests, short enough to fail fast.
const DEADLINE: Duration = Duration::from_secs(60);

/// A `murmur serve` whose stderr lines arrive on a channel.
struct Server {
    child: Child,
    address: String,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(repo: &Path, extra: &[&str]) -> Server {
        let mut child = murmur(repo)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .env_remove("MURMUR_LOG_FORMAT")
            .env_remove("MURMUR_LOG")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            address: String::new(),
            lines,
        };
        let listening = server.wait_for_line(|line| line.contains("listening on http://"));
        let tail = listening
            .split("listening on http://")
            .nth(1)
            .expect("address");
        server.address = tail
            .split(|c: char| c == '"' || c.is_whitespace())
            .next()
            .expect("address")
            .to_owned();
        server
    }

    /// The first stderr line (from now on) that `wanted` accepts; every line is checked by
    /// `each` first.
    fn wait_for_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        self.wait_checking(wanted, |_| {})
    }

    fn wait_checking(&self, wanted: impl Fn(&str) -> bool, each: impl Fn(&str)) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no such log line within {DEADLINE:?}: {e}"));
            each(&line);
            if wanted(&line) {
                return line;
            }
        }
    }
}

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

/// The server's runs (newest first).
fn list_runs(address: &str, token: &str) -> Vec<Value> {
    let (status, body) = http(
        address,
        "GET",
        "/v1/runs",
        &[("Authorization", &auth(token))],
        "",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

#[test]
fn a_client_that_hangs_up_right_after_sending_still_gets_its_run() {
    const CLIENTS: usize = 16;
    // Every run's last agent reports to the test, so it waits for that instead of looking.
    let beacon = support::beacon::Beacon::bind();
    let flight = format!(
        "{QUICK_FLIGHT}\n## told\n> needs: two\n> command: {}\n",
        beacon.signal()
    );
    let (repo, token) = setup(&flight);
    let server = Server::start(repo.path(), &[]);
    for n in 0..CLIENTS {
        let body = "{\"inputs\": {}}";
        let request = format!(
            "POST /v1/flights/job/runs HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nIdempotency-Key: gone-{n}\r\nContent-Length: {}\r\n\r\n{body}",
            server.address,
            auth(&token),
            body.len()
        );
        let mut stream = TcpStream::connect(&server.address).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        // Gone before any answer: the server sees the connection close mid-request.
        drop(stream);
    }
    for _ in 0..CLIENTS {
        beacon.wait("a run of a client that hung up");
    }
    let runs = list_runs(&server.address, &token);
    assert_eq!(runs.len(), CLIENTS, "one run per client");
    for run in &runs {
        let id = run["id"].as_str().expect("id");
        // The event stream ends when the run has ended.
        let stream = [
            ("Authorization", auth(&token)),
            ("Accept", "text/event-stream".to_owned()),
        ];
        let headers: Vec<(&str, &str)> = stream.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, events) = http(
            &server.address,
            "GET",
            &format!("/v1/runs/{id}/events"),
            &headers,
            "",
        );
        assert_eq!(status, 200);
        assert!(
            events.contains("event: run_completed"),
            "run {id} completes: {events}"
        );
    }
}

#[test]
fn health_and_readiness_answer_503_once_the_store_is_gone() {
    let Some(support::db::Backend::Postgres(admin)) = support::db::Backend::postgres() else {
        return;
    };
    let (repo, _) = setup(QUICK_FLIGHT);
    let (database, url) = PgDatabase::create(&admin, "health");
    let token_made = murmur(repo.path())
        .args(["token", "create", "--name", "t", "--db", &url])
        .output()
        .expect("token");
    assert!(
        token_made.status.success(),
        "{}",
        String::from_utf8_lossy(&token_made.stderr)
    );
    let server = Server::start(repo.path(), &["--db", &url]);
    let (status, body) = http(&server.address, "GET", "/healthz", &[], "");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (status, body) = http(&server.address, "GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{body}");

    // DROP DATABASE ... WITH (FORCE): the server's connections are cut, new ones refused.
    let name = url.rsplit('/').next().expect("name").to_owned();
    drop(database);
    let (status, body) = http(&server.address, "GET", "/healthz", &[], "");
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "unavailable", "{body}");
    for secret in [name.as_str(), "postgres", "SELECT", "127.0.0.1", "murmur:"] {
        assert!(
            !body.contains(secret),
            "the answer leaks `{secret}`: {body}"
        );
    }
    let (status, body) = http(&server.address, "GET", "/readyz", &[], "");
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["store"].as_str(),
            ready["drives_runs"].as_bool()
        ),
        (Some("not_ready"), Some("unavailable"), Some(true)),
        "{body}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_requests_and_started_runs() {
    let (repo, token) = setup(QUICK_FLIGHT);
    let server = Server::start(repo.path(), &["--log-format", "json"]);
    let parsed = |line: &str| -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
    };
    assert_eq!(http(&server.address, "GET", "/healthz", &[], "").0, 200);
    let request = server.wait_checking(
        |line| parsed(line)["route"] == "/healthz",
        |line| drop(parsed(line)),
    );
    let request = parsed(&request);
    assert_eq!(
        (
            &request["message"],
            &request["method"],
            &request["status"],
            &request["level"]
        ),
        (
            &Value::from("request"),
            &Value::from("GET"),
            &Value::from(200),
            &Value::from("INFO")
        ),
        "{request}"
    );
    assert!(
        request["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{request}"
    );

    let start = [
        ("Authorization", auth(&token)),
        ("Content-Type", "application/json".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = start.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = http(
        &server.address,
        "POST",
        "/v1/flights/job/runs",
        &headers,
        "{}",
    );
    assert_eq!(status, 202, "{body}");
    let run_id = serde_json::from_str::<Value>(&body).expect("json")["run_id"].clone();
    let started = server.wait_checking(
        |line| parsed(line)["message"] == "run started",
        |line| drop(parsed(line)),
    );
    let started = parsed(&started);
    assert_eq!(
        (&started["run"], &started["flight"], &started["trigger"]),
        (&run_id, &Value::from("job"), &Value::from("http")),
        "{started}"
    );
    let logged = server.wait_checking(
        |line| parsed(line)["route"] == "/v1/flights/{name}/runs",
        |line| drop(parsed(line)),
    );
    assert_eq!(parsed(&logged)["status"], 202, "{logged}");
}

#[test]
fn an_interrupted_server_stops_though_a_live_event_stream_is_open() {
    let beacon = support::beacon::Beacon::bind();
    // One agent that never ends on its own: its run's event stream stays open.
    let flight = format!(
        "---\nruntime: exec\n---\n# Job\n\n## forever\n> command: {}; exec sleep 600\n",
        beacon.signal()
    );
    let (repo, token) = setup(&flight);
    let mut server = Server::start(repo.path(), &[]);
    let headers = [
        ("Authorization", auth(&token)),
        ("Content-Type", "application/json".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = http(
        &server.address,
        "POST",
        "/v1/flights/job/runs",
        &headers,
        "{}",
    );
    assert_eq!(status, 202, "{body}");
    let run: Value = serde_json::from_str(&body).expect("json");
    let id = run["run_id"].as_str().expect("run id");
    beacon.wait("the agent runs");
    let mut stream = TcpStream::connect(&server.address).expect("connect");
    let request = format!(
        "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.address,
        auth(&token)
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("the stream answers");
    assert!(status_line.contains("200"), "{status_line}");

    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupt.success());
    // Its stderr closes when the process ends: wait for that, not for a time.
    let deadline = Instant::now() + DEADLINE;
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.lines.recv_timeout(left) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break true,
            Err(mpsc::RecvTimeoutError::Timeout) => break false,
        }
    };
    assert!(ended, "the server still runs with a live stream open");
    server.child.wait().expect("the server is reaped");
    drop(stream);
}
