//! Base branches: which one a run starts from (the start's, then the repository's, then the
//! workspace's, then the origin's default branch), a missing one named, and a long-lived
//! agent whose base moved on: its follow-up takes the new base in as its repository's
//! `conflict_resolution` says (merge, rebase, or none).

use serde_json::{Value, json};

use super::harness::*;

#[test]
fn a_run_starts_from_its_own_base_then_the_repositorys_then_the_workspaces() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = Origin::new(root.path(), "a", &[("hello", hello(None))]);
    a.branch("release", "repo-a-release");
    let folder = Server::folder();
    let here = folder.path();
    // The workspace's base for a repository that names none; the repository's own wins.
    let url = a.url();
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["workspace", "add", name, "--repo", &url];
        args.extend_from_slice(extra);
        cli_ok(here, &args);
    };
    add("rel", &["--default-base", "release"]);
    add("own", &["--base", "main", "--default-base", "release"]);
    add("plain", &[]);
    cli_fails(
        here,
        &[
            "workspace",
            "add",
            "lost",
            "--repo",
            &a.url(),
            "--default-base",
            "nope",
        ],
        "has no branch `nope`",
    );
    let shown: Value =
        serde_json::from_str(&cli_ok(here, &["workspace", "show", "rel", "--json"])).expect("json");
    assert_eq!(shown["repositories"][0]["base"], "release", "{shown:#}");

    let server = Server::start(folder);
    assert_eq!(response(&server.run("hello", "rel")), "in repo-a-release");
    assert_eq!(response(&server.run("hello", "own")), "in repo-a");
    assert_eq!(response(&server.run("hello", "plain")), "in repo-a");
    // The start's own base wins over the repository's.
    let (status, started) =
        server.start_with("hello", json!({ "workspace": "own", "base": "release" }));
    assert_eq!(status, 202, "{started}");
    let run = server.wait(started["run_id"].as_str().expect("id"));
    assert_eq!(response(&run), "in repo-a-release");
    // A base the origin does not have: the workspace, the repository and the branch named.
    let (status, refused) =
        server.start_with("hello", json!({ "workspace": "own", "base": "nope" }));
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    for part in ["`own`", a.url().as_str(), "`nope`"] {
        assert!(message.contains(part), "{part} in {message}");
    }
    let (status, refused) = server.start_with(
        "hello",
        json!({ "workspace": "own", "base": "--upload-pack=x" }),
    );
    assert_eq!(status, 400, "{refused}");
    // The CLI names the base the same way.
    let url = format!("http://{}", server.address);
    let out = crate::support::murmur(root.path())
        .args(["flight", "run", "hello", "--server", &url])
        .args(["--workspace", "plain", "--base", "release", "--detach"])
        .env("MURMUR_TOKEN", &server.token)
        .output()
        .expect("murmur runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(response(&server.wait(&id)), "in repo-a-release");
}

/// A long-lived agent: each turn commits `agent-N.txt` and says which marker it sees; `hold`
/// keeps the run going until the file `go` exists.
fn grow(go: &std::path::Path) -> String {
    format!(
        "---\nruntime: exec\non_idle: keep-alive\n---\n# Grow\n\n## grow\n> command: n=$(ls agent-*.txt 2>/dev/null | wc -l | tr -d ' '); echo $n > agent-$n.txt && git add agent-$n.txt && git -c user.email=a@a -c user.name=a commit -q -m \"agent $n\" && echo \"turn $n sees $(cat marker.txt)\"\n\n## hold\n> command: until [ -e {} ]; do sleep 0.05; done; echo held\n",
        go.display()
    )
}

const POLICIES: [&str; 3] = ["merge", "rebase", "none"];

#[test]
fn a_follow_up_takes_the_moved_base_as_its_repository_says() {
    let root = tempfile::tempdir().expect("temp dir");
    let go = root.path().join("go");
    let a = Origin::new(root.path(), "a", &[("grow", grow(&go))]);
    let folder = Server::folder();
    std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
    std::fs::write(
        folder.path().join(".murmur/murmur.yaml"),
        "pools:\n  local: { max_vms: 8 }\n",
    )
    .expect("config");
    // One repository in three workspaces, one per conflict resolution.
    for policy in POLICIES {
        cli_ok(
            folder.path(),
            &[
                "workspace",
                "add",
                policy,
                "--repo",
                &a.url(),
                "--conflict-resolution",
                policy,
            ],
        );
    }
    let server = Server::start(folder);
    let mut runs = Vec::new();
    for policy in POLICIES {
        let (status, started) = server.start_with("grow", json!({ "workspace": policy }));
        assert_eq!(status, 202, "{started}");
        let id = started["run_id"].as_str().expect("id").to_owned();
        let mut events = server.events(&id);
        let idle = events.until(|e| is(e, "agent_idle", 1));
        assert_eq!(idle["response"], "turn 0 sees repo-a", "{idle}");
        runs.push((policy, id, events));
    }
    // The base moves on; the webhook fetches every mirror of the repository.
    let pushed = a.push("repo-a-2");
    let (status, answer) = server.push_delivery(&a.url(), &pushed, "moved-base");
    assert_eq!(status, 200, "{answer}");
    for (policy, id, events) in &mut runs {
        cli_ok(
            server.folder.path(),
            &["queue", "add", "--run", id, "--detach", "grow", "once more"],
        );
        let idle = events.until(|e| is(e, "agent_idle", 2));
        let sees = if *policy == "none" {
            "repo-a"
        } else {
            "repo-a-2"
        };
        assert_eq!(
            idle["response"],
            format!("turn 1 sees {sees}"),
            "{policy}: {idle}"
        );
        let branch = idle["delivered"]["branch"]
            .as_str()
            .expect("the branch")
            .to_owned();
        check_branch(&server, policy, &branch, &pushed);
        assert_eq!(
            idle["delivered"]["commits"], 2,
            "{policy}: only the agent's: {idle}"
        );
    }
    std::fs::write(&go, "").expect("go");
    for (_, id, _) in &runs {
        server.wait(id);
    }
}

fn is(event: &Value, kind: &str, attempt: u64) -> bool {
    event["type"] == kind && event["slug"] == "grow" && event["attempt"] == attempt
}

/// What the agent's branch in the server's mirror holds after its follow-up.
fn check_branch(server: &Server, policy: &str, branch: &str, pushed: &str) {
    let mirror = server.mirror(policy, 0);
    let has = |commit: &str| {
        std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", commit, branch])
            .current_dir(&mirror)
            .status()
            .expect("git")
            .success()
    };
    let merges = git(&mirror, &["rev-list", "--merges", "--count", branch]);
    match policy {
        "merge" => {
            assert!(has(pushed), "merge: the new base is in the branch");
            assert_eq!(merges, "1", "merge: one merge commit");
        }
        "rebase" => {
            assert!(has(pushed), "rebase: the new base is in the branch");
            assert_eq!(merges, "0", "rebase: no merge commit");
            let first = git(&mirror, &["rev-parse", &format!("{branch}~1^")]);
            assert_eq!(
                first, pushed,
                "rebase: the agent's commits sit on the new base"
            );
        }
        _ => {
            assert!(!has(pushed), "none: the branch stays where it started");
            assert_eq!(merges, "0");
        }
    }
}

/// Each turn rewrites `marker.txt`, which the base changes too.
fn clash(go: &std::path::Path) -> String {
    format!(
        "---\nruntime: exec\non_idle: keep-alive\n---\n# Clash\n\n## grow\n> command: echo \"the agent's\" > marker.txt && git -c user.email=a@a -c user.name=a commit -q -am clash && echo clashed\n\n## hold\n> command: until [ -e {} ]; do sleep 0.05; done; echo held\n",
        go.display()
    )
}

#[test]
fn a_moved_base_that_conflicts_fails_the_turn_and_leaves_the_branch() {
    let root = tempfile::tempdir().expect("temp dir");
    let go = root.path().join("go");
    let a = Origin::new(root.path(), "a", &[("clash", clash(&go))]);
    let folder = Server::folder();
    cli_ok(
        folder.path(),
        &["workspace", "add", "w", "--repo", &a.url()],
    );
    let server = Server::start(folder);
    let (status, started) = server.start_with("clash", json!({ "workspace": "w" }));
    assert_eq!(status, 202, "{started}");
    let id = started["run_id"].as_str().expect("id").to_owned();
    let mut events = server.events(&id);
    let idle = events.until(|e| is(e, "agent_idle", 1));
    let branch = idle["delivered"]["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    let mirror = server.mirror("w", 0);
    let before = git(&mirror, &["rev-parse", &branch]);
    let pushed = a.push("the base's");
    let (status, answer) = server.push_delivery(&a.url(), &pushed, "clashing-base");
    assert_eq!(status, 200, "{answer}");
    cli_ok(
        server.folder.path(),
        &[
            "queue",
            "add",
            "--run",
            &id,
            "--detach",
            "grow",
            "once more",
        ],
    );
    let failed = events.until(|e| {
        e["slug"] == "grow" && (e["type"] == "agent_failed" || e["type"] == "agent_idle")
    });
    assert_eq!(failed["type"], "agent_failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    for part in [
        "`main`",
        branch.as_str(),
        "marker.txt",
        "conflict_resolution",
    ] {
        assert!(error.contains(part), "{part} in {error}");
    }
    assert_eq!(
        git(&mirror, &["rev-parse", &branch]),
        before,
        "the branch is untouched"
    );
    std::fs::write(&go, "").expect("go");
}
