//! Agents' environment and secrets end to end, with the real binary on the local pool: a
//! secret set with `murmur secret set` reaches an `exec` agent through `secrets:` in
//! `.murmur/murmur.yaml`, sealed to the local machine's ephemeral key and opened in memory;
//! the agent prints its SHA-256 and the value, which comes back masked. The marker is then
//! looked for everywhere it must not be: the SQLite file and its WAL, `.murmur/` (worktrees
//! and logs included), the event log, `runs show --json`, and the environment and command line
//! of every process but the agent's own while it runs. The engine's own environment does
//! not reach the agent, but the names `environment.pass` lists do.

mod support;
use support::{described as text, with_stdin as run};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use support::beacon::Beacon;
use support::db::Backend;
use support::fixture::Fixture;
use support::watched::Watched;

/// A secret's value, unique to one test: the tests run at once, and each looks for its own
/// value in every process but its agent's.
fn marker(test: &str) -> String {
    format!("marker-9d2e61b4-{test}-no-plaintext-anywhere")
}

fn murmur(fixture: &Fixture, keys: &Path, args: &[&str]) -> Command {
    let mut command = fixture.command(args);
    command
        .env_remove("MURMUR_KEK")
        .env_remove("MURMUR_KEK_PREVIOUS")
        .env("MURMUR_KEY_FILE", keys)
        .env("H7_TEST_HIDDEN", "engine-only")
        .env("H7_TEST_PASSED", "kept");
    command
}

/// Every process whose environment or command line holds the marker and that is not one of
/// the agent's own (which carry its run id in their environment).
fn leaking_processes(run_id: &str, marker: &str) -> Vec<String> {
    let own = format!("MURMUR_RUN_ID={run_id}");
    let mut leaks = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let read = |what: &str| std::fs::read(entry.path().join(what)).unwrap_or_default();
        let (environ, cmdline) = (read("environ"), read("cmdline"));
        let holds = |bytes: &[u8], needle: &str| {
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        if holds(&cmdline, marker) {
            leaks.push(format!("{pid} cmdline"));
        }
        if holds(&environ, marker) && !holds(&environ, &own) {
            leaks.push(format!("{pid} environ"));
        }
    }
    leaks
}

/// Files below `dir` whose bytes hold the marker.
fn files_holding_marker(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding_marker(&path, marker));
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}

fn a_secret_reaches_its_agent_sealed_and_rests_nowhere_in_plaintext(backend: &Backend) {
    let marker = &marker(match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    });
    let fixture = Fixture::with_history(backend, "agent_secrets");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let set = run(
        &mut murmur(&fixture, &keys, &["secret", "set", "DEPLOY_TOKEN"]),
        &format!("{marker}\n"),
    );
    assert!(set.status.success(), "{}", text(&set));
    fixture.write_config("secrets: [DEPLOY_TOKEN]\nenvironment:\n  pass: [H7_TEST_PASSED]\n");
    let beacon = Beacon::bind();
    let release = fixture.path("release");
    let script = format!(
        "printf %s \"$DEPLOY_TOKEN\" | sha256sum | cut -d' ' -f1; echo \"value $DEPLOY_TOKEN\"; \
         echo \"hidden=${{H7_TEST_HIDDEN:-unset}} passed=${{H7_TEST_PASSED:-unset}} \
         keys=${{MURMUR_KEY_FILE:-unset}}\"; {}; until [ -e {} ]; do sleep 0.05; done; \
         echo \"done $DEPLOY_TOKEN\"",
        beacon.signal(),
        release.display()
    );
    fixture.write_flight(
        "deploy",
        &format!("---\nruntime: exec\n---\n# Deploy\n\n## tok\n> command: {script}\n"),
    );
    let started = murmur(&fixture, &keys, &["flight", "run", "deploy", "--detach"])
        .output()
        .expect("murmur runs");
    assert!(started.status.success(), "{}", text(&started));
    let run_id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    beacon.wait("the agent");
    let leaks = leaking_processes(&run_id, marker);
    std::fs::write(&release, "").expect("release the agent");
    assert!(leaks.is_empty(), "the marker is in {leaks:?}");

    let waited = murmur(&fixture, &keys, &["wait", &format!("{run_id}/tok")])
        .output()
        .expect("murmur wait");
    assert!(waited.status.success(), "{}", text(&waited));
    let shown = fixture.show(&run_id);
    assert_eq!(shown["status"], "completed", "{shown}");
    let logs = fixture.logs(&run_id).join("\n");
    let hash = hex::encode(Sha256::digest(marker.as_bytes()));
    assert!(
        logs.contains(&hash),
        "the agent's hash of the value:\n{logs}"
    );
    assert!(logs.contains("value ***"), "the value masked:\n{logs}");
    assert!(
        logs.contains("hidden=unset passed=kept keys=unset"),
        "the engine's environment stays with the engine:\n{logs}"
    );
    for answer in [&logs, &shown.to_string()] {
        assert!(
            !answer.contains(marker.as_str()),
            "the marker in an answer:\n{answer}"
        );
    }
    let files = files_holding_marker(&fixture.path(".murmur"), marker);
    assert!(files.is_empty(), "the marker in {files:?}");
    let repo_files = files_holding_marker(fixture.repo(), marker);
    assert!(repo_files.is_empty(), "the marker in {repo_files:?}");
    if let Backend::Postgres(_) = backend {
        let dump = Command::new("pg_dump")
            .arg(fixture.db_url())
            .output()
            .expect("pg_dump runs");
        assert!(dump.status.success(), "{}", text(&dump));
        assert!(dump.stdout.len() > 1000, "pg_dump dumped the store");
        let dumped = String::from_utf8_lossy(&dump.stdout);
        assert!(
            !dumped.contains(marker.as_str()),
            "the marker in the PostgreSQL store"
        );
    }
}

every_backend!(a_secret_reaches_its_agent_sealed_and_rests_nowhere_in_plaintext);

fn created_token(fixture: &Fixture, args: &[&str]) -> String {
    let out = fixture.murmur(args);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_worker_opens_the_secrets_sealed_to_its_key_and_they_rest_nowhere() {
    let marker = &marker("worker");
    let fixture = Fixture::with_history(&Backend::Sqlite, "worker_secrets");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let set = run(
        &mut murmur(&fixture, &keys, &["secret", "set", "DEPLOY_TOKEN"]),
        marker,
    );
    assert!(set.status.success(), "{}", text(&set));
    fixture.write_config(
        "pools:\n  fleet: { placement: workers, max_vms: 1 }\nsecrets: [DEPLOY_TOKEN]\n",
    );
    let beacon = Beacon::bind();
    let release = fixture.path("release");
    let script = format!(
        "printf %s \"$DEPLOY_TOKEN\" | sha256sum | cut -d' ' -f1; echo \"value $DEPLOY_TOKEN\"; \
         {}; until [ -e {} ]; do sleep 0.05; done",
        beacon.signal(),
        release.display()
    );
    fixture.write_flight(
        "deploy",
        &format!("---\nruntime: exec\npool: fleet\n---\n# Deploy\n\n## tok\n> command: {script}\n"),
    );
    let api = created_token(&fixture, &["token", "create", "--name", "api"]);
    let worker_token = created_token(
        &fixture,
        &[
            "token", "create", "--worker", "--pool", "fleet", "--name", "w",
        ],
    );
    let mut serve_command = murmur(&fixture, &keys, &["serve", "--bind", "127.0.0.1:0"]);
    serve_command.stdin(Stdio::null());
    let mut server = Watched::spawn(serve_command);
    let line = server.wait_for("listening on http://");
    let address = line
        .split("listening on http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_owned();
    let worker_dir = tempfile::tempdir().expect("worker dir");
    let mut worker_command = support::murmur(fixture.repo());
    worker_command
        .args([
            "worker",
            "--server",
            &format!("http://{address}"),
            "--token",
            &worker_token,
        ])
        .arg("--dir")
        .arg(worker_dir.path())
        .env_remove("MURMUR_KEY_FILE")
        .env_remove("MURMUR_KEK");
    let mut worker = Watched::spawn(worker_command);
    worker.wait_for("registered machine");

    let auth = format!("Bearer {api}");
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = support::http(&address, "POST", "/v1/flights/deploy/runs", &json, "{}");
    assert_eq!(status, 202, "{body}");
    let started: serde_json::Value = serde_json::from_str(&body).expect("json");
    let run_id = started["run_id"].as_str().expect("run id").to_owned();
    beacon.wait("the agent on the worker");
    let leaks = leaking_processes(&run_id, marker);
    std::fs::write(&release, "").expect("release the agent");
    assert!(leaks.is_empty(), "the marker is in {leaks:?}");
    let stream = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
    ];
    let path = format!("/v1/runs/{run_id}/events");
    let (status, events) = support::http(&address, "GET", &path, &stream, "");
    assert_eq!(status, 200, "{events}");
    let hash = hex::encode(Sha256::digest(marker.as_bytes()));
    assert!(events.contains(&hash), "the agent's hash:\n{events}");
    assert!(events.contains("value ***"), "the value masked:\n{events}");
    let bearer = [("Authorization", auth.as_str())];
    let (_, shown) = support::http(&address, "GET", &format!("/v1/runs/{run_id}"), &bearer, "");
    assert!(shown.contains("completed"), "{shown}");
    let (_, secrets) = support::http(&address, "GET", "/v1/runs", &bearer, "");
    let (server_log, worker_log) = (server.stop(), worker.stop());
    for (what, answer) in [
        ("the event stream", &events),
        ("the run", &shown),
        ("the runs", &secrets),
        ("the server's log", &server_log),
        ("the worker's log", &worker_log),
    ] {
        assert!(
            !answer.contains(marker.as_str()),
            "the marker in {what}:\n{answer}"
        );
    }
    for dir in [fixture.path(".murmur"), worker_dir.path().to_path_buf()] {
        let files = files_holding_marker(&dir, marker);
        assert!(files.is_empty(), "the marker in {files:?}");
    }
}
