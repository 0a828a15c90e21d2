//! `murmur spawn --base BRANCH` with the real binary and a real repository: the agent starts
//! from that branch instead of the checked-out one; inside an agent, a child starts from the
//! spawn's base over its parent's, and without one from its parent's. A branch that does not
//! exist is refused, naming it, and nothing is started.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::murmur_output as murmur;

const BIN: &str = env!("CARGO_BIN_EXE_murmur");

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository on `main` whose `marker.txt` says which branch it is on, with `release`
/// and `other` beside it.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    git(root, &["init", "--quiet", "-b", "main"]);
    git(root, &["config", "user.email", "t@t"]);
    git(root, &["config", "user.name", "t"]);
    for branch in ["main", "release", "other"] {
        if branch != "main" {
            git(root, &["checkout", "--quiet", "-b", branch, "main"]);
        }
        std::fs::write(root.join("marker.txt"), format!("on-{branch}\n")).expect("marker");
        git(root, &["add", "marker.txt"]);
        git(root, &["commit", "--quiet", "-m", branch]);
    }
    git(root, &["checkout", "--quiet", "main"]);
    dir
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The response of agent `slug` of the newest run that has it.
fn response(dir: &Path, slug: &str) -> String {
    let listed = murmur(dir, &["ls", "--all", "--json"]);
    let agents: Value = serde_json::from_slice(&listed.stdout).expect("ls --json");
    let run = agents
        .as_array()
        .and_then(|all| all.iter().find(|a| a["slug"] == slug))
        .and_then(|a| a["run"].as_str())
        .unwrap_or_else(|| panic!("no agent {slug}: {agents}"))
        .to_owned();
    let shown = murmur(dir, &["runs", "show", &run, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("runs show --json");
    shown["agents"][0]["response"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn a_spawned_agent_starts_from_the_spawns_base() {
    let repo = repository();
    let dir = repo.path();
    let spawned = murmur(
        dir,
        &[
            "spawn",
            "probe",
            "--runtime",
            "exec",
            "--base",
            "release",
            "cat marker.txt",
        ],
    );
    assert_eq!(spawned.status.code(), Some(0), "{}", text(&spawned));
    assert_eq!(response(dir, "probe"), "on-release");
    let plain = murmur(
        dir,
        &["spawn", "plain", "--runtime", "exec", "cat marker.txt"],
    );
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));
    assert_eq!(
        response(dir, "plain"),
        "on-main",
        "the checked-out branch by default"
    );

    let missing = murmur(
        dir,
        &[
            "spawn",
            "lost",
            "--runtime",
            "exec",
            "--base",
            "nope",
            "true",
        ],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(said.contains("branch `nope`"), "{said}");
    let listed = text(&murmur(dir, &["ls", "--all", "--json"]));
    assert!(!listed.contains("\"lost\""), "nothing started: {listed}");
    let flight = murmur(dir, &["spawn", "--flight", "x", "--base", "release"]);
    assert_eq!(flight.status.code(), Some(2), "{}", text(&flight));
}

#[test]
fn a_child_starts_from_its_spawns_base_else_its_parents() {
    let repo = repository();
    let dir = repo.path();
    let script = format!(
        "kid=$({BIN} spawn kid --runtime exec cat marker.txt) && far=$({BIN} spawn far --runtime exec --base other cat marker.txt) && bad=$({BIN} spawn bad --runtime exec --base nope true 2>&1 | grep -o 'branch .nope.' | head -1) ; echo \"lead $(cat marker.txt) kid $({BIN} wait $kid) far $({BIN} wait $far) refused $bad\""
    );
    let lead = murmur(
        dir,
        &[
            "spawn",
            "lead",
            "--runtime",
            "exec",
            "--base",
            "release",
            &script,
        ],
    );
    assert_eq!(lead.status.code(), Some(0), "{}", text(&lead));
    assert_eq!(
        response(dir, "lead"),
        "lead on-release kid on-release far on-other refused branch `nope`"
    );
}
