//! Workspaces end to end, real processes and real git: a `murmur serve` started in an empty
//! folder serves workspaces whose origins are local bare repositories. A run works in its
//! workspace's repository; a name found in two workspaces needs one chosen (409 otherwise);
//! a push (and its webhook) reaches the next run of that workspace only; a two-repository
//! workspace gives its agent both on its branch; and the same through a `murmur worker` in a
//! folder that has no copy of any repository. Bad input: names, URLs, base branches, removal
//! with runs in flight.

#[path = "workspaces/bases.rs"]
mod bases;
#[path = "workspaces/children.rs"]
mod children;
#[path = "workspaces/credentials.rs"]
mod credentials;
#[path = "workspaces/defaults.rs"]
mod defaults;
#[path = "workspaces/environment.rs"]
mod environment;
#[path = "workspaces/far_worker.rs"]
mod far_worker;
#[path = "workspaces/git_http.rs"]
mod git_http;
#[path = "workspaces/harness.rs"]
mod harness;
#[path = "../cli/tests/support/mod.rs"]
mod support;

use harness::*;
use serde_json::{Value, json};
use support::murmur;

#[test]
fn two_workspaces_each_run_in_their_own_repository() {
    let root = tempfile::tempdir().expect("temp dir");
    let go = root.path().join("go");
    let a = Origin::new(
        root.path(),
        "a",
        &[("hello", hello(None)), ("hold", hold(&go))],
    );
    let b = Origin::new(root.path(), "b", &[("hello", hello(None))]);
    let folder = Server::folder();
    let here = folder.path();
    cli_ok(here, &["workspace", "add", "alpha", "--repo", &a.url()]);
    cli_ok(
        here,
        &[
            "workspace",
            "add",
            "beta",
            "--repo",
            &b.url(),
            "--base",
            "main",
        ],
    );
    // Bad input, each refused with what to fix.
    cli_fails(
        here,
        &["workspace", "add", "Not_A_Slug", "--repo", &a.url()],
        "is not a workspace name",
    );
    let nowhere = root.path().join("nowhere").display().to_string();
    cli_fails(
        here,
        &["workspace", "add", "lost", "--repo", &nowhere],
        "cannot be read as a git repository",
    );
    let plain = root.path().join("seed-a/.murmur").display().to_string();
    cli_fails(
        here,
        &["workspace", "add", "plain", "--repo", &plain],
        "cannot be read as a git repository",
    );
    cli_fails(
        here,
        &[
            "workspace",
            "add",
            "nobase",
            "--repo",
            &a.url(),
            "--base",
            "nope",
        ],
        "has no branch `nope`",
    );
    cli_fails(
        here,
        &["workspace", "add", "alpha", "--repo", &b.url()],
        "exists already",
    );
    cli_fails(
        here,
        &[
            "workspace",
            "add",
            "leaky",
            "--repo",
            "https://x:s3cr3t@example.com/r.git",
        ],
        "carries a credential",
    );
    // One repository in two workspaces is allowed.
    cli_ok(here, &["workspace", "add", "gamma", "--repo", &a.url()]);
    cli_ok(here, &["workspace", "rm", "gamma"]);
    let listed: Value =
        serde_json::from_str(&cli_ok(here, &["workspace", "ls", "--json"])).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    let server = Server::start(folder);
    let (status, refused) = server.start_run("hello", None);
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "ambiguous_flight", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alpha") && message.contains("beta"),
        "{message}"
    );
    let (status, unknown) = server.start_run("hello", Some("delta"));
    assert_eq!(status, 404, "{unknown}");

    assert_eq!(response(&server.run("hello", "alpha")), "in repo-a");
    assert_eq!(response(&server.run("hello", "beta")), "in repo-b");
    // The CLI chooses the same way.
    let url = format!("http://{}", server.address);
    let mut command = murmur(root.path());
    command.args([
        "flight",
        "run",
        "hello",
        "--server",
        &url,
        "--workspace",
        "beta",
        "--detach",
    ]);
    let out = command
        .env("MURMUR_TOKEN", &server.token)
        .output()
        .expect("murmur runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(response(&server.wait(&id)), "in repo-b");

    // A push with its webhook: the mirror of that workspace moves at once, the other not.
    let b_before = server.head("beta");
    let pushed = a.push("repo-a-2");
    let (status, answer) = server.push_delivery(&a.url(), &pushed, "delivery-1");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(server.head("alpha"), pushed);
    assert_eq!(server.head("beta"), b_before);
    assert_eq!(response(&server.run("hello", "alpha")), "in repo-a-2");
    assert_eq!(response(&server.run("hello", "beta")), "in repo-b");
    // Without a webhook, the run's start fetches.
    let pushed = b.push("repo-b-2");
    assert_eq!(response(&server.run("hello", "beta")), "in repo-b-2");
    assert_eq!(server.head("beta"), pushed);

    // A workspace with a run in flight stays, and says which run keeps it.
    let (status, held) = server.start_run("hold", None);
    assert_eq!(status, 202, "{held}");
    let held = held["run_id"].as_str().expect("run id").to_owned();
    cli_fails(server.folder.path(), &["workspace", "rm", "alpha"], &held);
    let (status, refused) = server.request("DELETE", "/v1/workspaces/alpha", "");
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&held),
        "{refused}"
    );
    std::fs::write(&go, "").expect("go");
    server.wait(&held);
    let (status, _) = server.request("DELETE", "/v1/workspaces/alpha", "");
    assert_eq!(status, 204);
    let (status, _) = server.request("GET", "/v1/workspaces/alpha", "");
    assert_eq!(status, 404);
}

#[test]
fn workspaces_over_http() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = Origin::new(root.path(), "a", &[("hello", hello(None))]);
    let server = Server::start(Server::folder());
    let add = |body: Value| server.request("POST", "/v1/workspaces", &body.to_string());
    let (status, added) = add(json!({ "name": "alpha", "repositories": [{ "url": a.url() }] }));
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["repositories"][0]["base"], "main", "{added}");
    let (status, again) = add(json!({ "name": "alpha", "repositories": [{ "url": a.url() }] }));
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (409, json!("exists")),
        "{again}"
    );
    let (status, bad) = add(json!({ "name": "../x", "repositories": [{ "url": a.url() }] }));
    assert_eq!(status, 400, "{bad}");
    let (status, bad) =
        add(json!({ "name": "b", "repositories": [{ "url": a.url(), "base": "nope" }] }));
    assert_eq!(status, 400, "{bad}");
    // A credential secret that is not there: named, with the workspace.
    let (status, bad) = add(json!({
        "name": "c", "repositories": [{ "url": a.url(), "credential": "GIT_TOKEN" }]
    }));
    assert_eq!(status, 400, "{bad}");
    let message = bad["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`c`") && message.contains("GIT_TOKEN"),
        "{message}"
    );
    let (status, listed) = server.request("GET", "/v1/workspaces", "");
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // Only one workspace has `hello`: no choice needed.
    let (status, started) = server.start_run("hello", None);
    assert_eq!(status, 202, "{started}");
    let run = server.wait(started["run_id"].as_str().expect("id"));
    assert_eq!(response(&run), "in repo-a");
    let (status, document) = server.request("GET", "/v1/openapi.json", "");
    assert_eq!(status, 200);
    assert!(
        document["paths"]["/v1/workspaces/{name}"]["delete"].is_object(),
        "{document:#}"
    );
}

/// The two-repository workspace `duo` (front, back) of a server; answers the server. `pool`
/// is the pair flight's and the workspace's default pool; `hello` names none.
fn duo(pool: Option<&str>, config: Option<&str>) -> (tempfile::TempDir, Origin, Origin, Server) {
    let root = tempfile::tempdir().expect("temp dir");
    let front = Origin::new(
        root.path(),
        "front",
        &[
            ("pair", pair(pool)),
            ("hello", hello(None)),
            ("stack", stack(pool)),
        ],
    );
    let back = Origin::new(root.path(), "back", &[]);
    let folder = Server::folder();
    if let Some(config) = config {
        std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
        std::fs::write(folder.path().join(".murmur/murmur.yaml"), config).expect("config");
    }
    let (front_url, back_url) = (front.url(), back.url());
    let mut args = vec![
        "workspace",
        "add",
        "duo",
        "--repo",
        &front_url,
        "--repo",
        &back_url,
    ];
    if let Some(pool) = pool {
        args.extend(["--pool", pool]);
    }
    cli_ok(folder.path(), &args);
    (root, front, back, Server::start(folder))
}

/// The pair agent saw both repositories, on its branch, and its commit is on `back`'s branch.
fn check_pair(server: &Server, run: &Value) {
    let branch = run["agents"][0]["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    assert_eq!(
        response(run),
        format!("front repo-front back repo-back on {branch}"),
        "{run:#}"
    );
    let back = server.mirror("duo", 1);
    let committed = git(&back, &["show", &format!("{branch}:agent.txt")]);
    assert_eq!(committed, "work");
    let front = server.mirror("duo", 0);
    let status = git(&front, &["status", "--porcelain"]);
    assert!(
        status.is_empty(),
        "the first repository stays clean: {status}"
    );
}

#[test]
fn a_two_repository_workspace_gives_its_agent_both() {
    let (_root, _front, _back, server) = duo(None, None);
    let run = server.run("pair", "duo");
    check_pair(&server, &run);
}

/// The agent downstream sees what its upstream committed in the second repository only.
#[test]
fn upstream_commits_in_every_repository_reach_the_agent_downstream() {
    let (_root, _front, _back, server) = duo(None, None);
    let run = server.run("stack", "duo");
    assert_eq!(response_of(&run, "read"), "found laid", "{run:#}");
}

#[test]
fn a_worker_with_no_repository_runs_workspace_agents() {
    let config = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";
    let (root, front, _back, server) = duo(Some("fleet"), Some(config));
    let worker_token = cli_ok(
        server.folder.path(),
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
    let worker_dir = root.path().join("worker");
    std::fs::create_dir_all(&worker_dir).expect("worker folder");
    let url = format!("http://{}", server.address);
    let mut command = murmur(&worker_dir);
    command.args(["worker", "--server", &url, "--token", &worker_token]);
    command.arg("--dir").arg(&worker_dir);
    let (mut worker, machine) = crate::support::serve::registered(command);

    // `hello` names no pool: it runs on the workspace's default pool, the worker's.
    let run = server.run("hello", "duo");
    assert_eq!(response(&run), "in repo-front");
    assert_eq!(run["agents"][0]["machine"], machine.as_str(), "{run:#}");
    // The worker reaches the origin: it cloned that, not the server's mirror, and pushed the
    // agent's branch back to both.
    let branch = run["agents"][0]["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    let origins: Vec<String> = std::fs::read_dir(worker_dir.join("repositories"))
        .expect("the worker's clones")
        .flatten()
        .map(|e| git(&e.path(), &["remote", "get-url", "origin"]))
        .collect();
    assert!(origins.contains(&front.url()), "{origins:?}");
    let pushed = format!("refs/heads/{branch}");
    git(&front.bare, &["rev-parse", "--verify", &pushed]);
    git(
        &server.mirror("duo", 0),
        &["rev-parse", "--verify", &pushed],
    );
    let run = server.run("pair", "duo");
    check_pair(&server, &run);
    front.push("repo-front-2");
    assert_eq!(response(&server.run("hello", "duo")), "in repo-front-2");
    let _ = worker.child.kill();
}
