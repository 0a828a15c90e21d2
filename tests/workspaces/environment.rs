//! A workspace's variables (`defaults.environment`, `--env NAME=VALUE`) are in its agents'
//! environment on the local pool and on a `murmur worker`, as data: a value that looks like
//! shell is passed as it is, never run. A name the environment cannot hold is refused.

use std::path::Path;

use serde_json::json;

use super::harness::*;
use crate::support::murmur;
use crate::support::watched::Watched;

fn staged(pool: Option<&str>) -> String {
    let pool = pool.map_or(String::new(), |p| format!("pool: {p}\n"));
    format!(
        "---\nruntime: exec\n{pool}---\n# Staged\n\n## staged\n> command: echo \"stage=$STAGE trick=$TRICK run=${{#MURMUR_RUN_ID}}\"\n"
    )
}

/// A `murmur worker` of pool `fleet` in its own folder below `root`, and its machine's id.
fn worker(server: &Server, root: &Path) -> (Watched, String) {
    let token = cli_ok(
        server.folder.path(),
        &[
            "token",
            "create",
            "--worker",
            "--pool",
            "fleet",
            "--name",
            "env-fleet",
        ],
    );
    let dir = root.join("worker");
    std::fs::create_dir_all(&dir).expect("worker folder");
    let url = format!("http://{}", server.address);
    let mut command = murmur(&dir);
    command.args(["worker", "--server", &url, "--token", &token]);
    command.arg("--dir").arg(&dir);
    crate::support::serve::registered(command)
}

#[test]
fn a_workspaces_variables_reach_its_agents_here_and_on_a_worker() {
    let root = tempfile::tempdir().expect("temp dir");
    let proof = root.path().join("ran");
    let trick = format!("$(touch {})", proof.display());
    let here = Origin::new(root.path(), "here", &[("staged", staged(None))]);
    let there = Origin::new(root.path(), "there", &[("staged", staged(None))]);
    let folder = Server::folder();
    std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
    let config = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";
    std::fs::write(folder.path().join(".murmur/murmur.yaml"), config).expect("config");
    let url = here.url();
    cli_fails(
        folder.path(),
        &[
            "workspace",
            "add",
            "bad",
            "--repo",
            &url,
            "--env",
            "MURMUR_RUN_ID=x",
        ],
        "no name for a workspace variable",
    );
    cli_fails(
        folder.path(),
        &["workspace", "add", "bad", "--repo", &url, "--env", "STAGE"],
        "NAME=VALUE",
    );
    let stage = "STAGE=staging";
    let tricky = format!("TRICK={trick}");
    let args = [
        "workspace",
        "add",
        "here",
        "--repo",
        &url,
        "--env",
        stage,
        "--env",
        &tricky,
    ];
    cli_ok(folder.path(), &args);
    let shown = cli_ok(folder.path(), &["workspace", "show", "here"]);
    assert!(shown.contains("env STAGE=staging"), "{shown}");
    let server = Server::start(folder);
    // The same over HTTP, for a workspace whose agents run on the worker.
    let body = json!({
        "name": "there",
        "repositories": [{ "url": there.url() }],
        "defaults": { "pool": "fleet", "environment": { "STAGE": "remote", "TRICK": trick } },
    });
    let (status, added) = server.request("POST", "/v1/workspaces", &body.to_string());
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        added["defaults"]["environment"]["STAGE"], "remote",
        "{added}"
    );
    let bad = json!({
        "name": "worse", "repositories": [{ "url": there.url() }],
        "defaults": { "environment": { "A B": "x" } },
    });
    let (status, refused) = server.request("POST", "/v1/workspaces", &bad.to_string());
    assert_eq!(status, 400, "{refused}");

    let run = server.run("staged", "here");
    assert_eq!(
        response(&run),
        format!("stage=staging trick={trick} run=32"),
        "{run:#}"
    );
    let (mut worker, machine) = worker(&server, root.path());
    let run = server.run("staged", "there");
    assert_eq!(
        response(&run),
        format!("stage=remote trick={trick} run=32"),
        "{run:#}"
    );
    assert_eq!(run["agents"][0]["machine"], machine.as_str(), "{run:#}");
    assert!(!proof.exists(), "a variable's value is data, never run");
    let _ = worker.child.kill();
}
