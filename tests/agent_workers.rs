//! Agents on remote workers spawn agents: an `exec` agent placed on a `murmur worker` runs
//! `murmur spawn` and `murmur wait`. Its agent API URL is the one the worker reaches the server
//! by (here `localhost`, while the server's own listener is `127.0.0.1`), its token the one the
//! server issued for the attempt; the child runs and its answer reaches the parent.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use support::db::Backend;
use support::fixture::Fixture;
use support::watched::Watched;
use support::{http, murmur};

const BIN: &str = env!("CARGO_BIN_EXE_murmur");
/// The parent on the workers pool, its child on the server's own slots.
const CONFIG: &str =
    "pools:\n  fleet: { placement: workers, max_vms: 1 }\n  local:\n    max_vms: 2\n";

fn token(fixture: &Fixture, args: &[&str]) -> String {
    let out = fixture.murmur(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn serve(fixture: &Fixture) -> (Watched, String) {
    let mut server = Watched::spawn(fixture.command(&["serve", "--bind", "127.0.0.1:0"]));
    let line = server.wait_for("listening on http://");
    let address = line
        .split("listening on http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_owned();
    (server, address)
}

fn get(address: &str, token: &str, path: &str, accept: &str) -> String {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Accept", accept)];
    let (status, body) = http(address, "GET", path, &headers, "");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
fn an_agent_on_a_worker_spawns_a_child_through_the_server_and_waits_for_it() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "agent-workers");
    fixture.write_config(CONFIG);
    let script = format!(
        "{BIN} spawn helper --runtime exec echo remote-answer >/dev/null && echo \"api=$MURMUR_API_URL got $({BIN} wait helper)\""
    );
    fixture.write_flight(
        "job",
        &format!("---\nruntime: exec\npool: fleet\n---\n# Job\n\n## lead\n> command: {script}\n"),
    );
    let api_token = token(&fixture, &["token", "create", "--name", "tests"]);
    let worker_token = token(
        &fixture,
        &[
            "token",
            "create",
            "--worker",
            "--pool",
            "fleet",
            "--name",
            "fleet-workers",
        ],
    );
    let (mut server, address) = serve(&fixture);
    let port = address.rsplit(':').next().expect("port");
    // Another spelling of the server's address than its listener's, as a remote host has.
    let reached_by = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = murmur(fixture.repo());
    command.args(["worker", "--server", &reached_by, "--token", &worker_token]);
    command.arg("--dir").arg(dir.path().join("worker"));
    let mut worker = Watched::spawn(command);
    worker.wait_for("registered machine");

    let auth = format!("Bearer {api_token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = http(&address, "POST", "/v1/flights/job/runs", &headers, "{}");
    assert_eq!(status, 202, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let run = run["run_id"].as_str().expect("run_id").to_owned();
    let events = get(
        &address,
        &api_token,
        &format!("/v1/runs/{run}/events"),
        "text/event-stream",
    );
    assert!(
        events.contains("event: run_completed"),
        "{events}\nthe server said:\n{}\nthe worker said:\n{}",
        server.said(),
        worker.said()
    );
    let shown: serde_json::Value = serde_json::from_str(&get(
        &address,
        &api_token,
        &format!("/v1/runs/{run}"),
        "application/json",
    ))
    .expect("JSON");
    let lead = &shown["agents"][0];
    assert_eq!(
        lead["response"],
        format!("api={reached_by} got remote-answer"),
        "{shown}"
    );
    let machine = lead["machine"].as_str().unwrap_or_default();
    assert!(!machine.is_empty(), "the parent was placed: {shown}");
    let machines = get(&address, &api_token, "/v1/machines", "application/json");
    assert!(
        machines.contains(machine) && machines.contains("fleet"),
        "the parent ran on the worker's machine {machine}: {machines}"
    );
    let agents = fixture.murmur(&["ls", "--all", "--json"]);
    let agents: serde_json::Value = serde_json::from_slice(&agents.stdout).expect("JSON");
    let helper = agents
        .as_array()
        .and_then(|all| all.iter().find(|agent| agent["slug"] == "helper"))
        .unwrap_or_else(|| panic!("the child is recorded: {agents}"));
    assert_eq!(helper["parent"], format!("{run}/lead"), "{helper}");
    assert_eq!(helper["state"], "completed", "{helper}");
    worker.stop();
    server.stop();
}
