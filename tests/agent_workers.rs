//! Agents on remote workers spawn agents: an `exec` agent placed on a `murmur worker` runs
//! `murmur spawn` and `murmur wait`. Its agent API URL is the one the worker reaches the server
//! by (here `localhost`, while the server's own listener is `127.0.0.1`), its token the one the
//! server issued for the attempt; the child runs and its answer reaches the parent.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use support::db::Backend;
use support::fixture::Fixture;
use support::serve::{self, Murmur};

const BIN: &str = env!("CARGO_BIN_EXE_murmur");
/// The parent on the workers pool, its child on the server's own slots.
const CONFIG: &str =
    "pools:\n  fleet: { placement: workers, max_vms: 1 }\n  local:\n    max_vms: 2\n";

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
    let mut cluster = serve::Cluster::start(fixture, "fleet", Box::new(|_| {}));
    let (api, fixture) = (&cluster.api, &cluster.murmur);
    let port = api.address.rsplit(':').next().expect("port");
    // Another spelling of the server's address than its listener's, as a remote host has.
    let reached_by = format!("http://localhost:{port}");
    let command = fixture.worker();
    let dir = cluster.path("worker");
    let command = serve::worker_args(command, &reached_by, &cluster.worker_token, &dir);
    let (mut worker, _) = serve::registered(command);

    let run = api.start_run("job");
    let events = api.events_until_ended(&run);
    assert!(
        events.contains("event: run_completed"),
        "{events}\nthe server said:\n{}\nthe worker said:\n{}",
        cluster.server.said(),
        worker.said()
    );
    let shown = api.get(&format!("/v1/runs/{run}"), "application/json");
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    let lead = &shown["agents"][0];
    assert_eq!(
        lead["response"],
        format!("api={reached_by} got remote-answer"),
        "{shown}"
    );
    let machine = lead["machine"].as_str().unwrap_or_default();
    assert!(!machine.is_empty(), "the parent was placed: {shown}");
    let machines = api.get("/v1/machines", "application/json");
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
}
