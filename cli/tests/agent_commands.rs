//! Murmur's agent commands with the real binary: `ls`, `status`, `wait`, `kill`, `queue add`,
//! and `runs approve` deciding a gate of a run that a background process drives.

mod support;

use std::process::Output;

use support::murmur_output as murmur;

fn repo(flights: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    for (name, text) in flights {
        let path = dir.path().join(format!(".murmur/flights/{name}.md"));
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

const CHAT: &str = "---\nruntime: exec\n---\n# Chat\n\n## echo\n> command: echo \"got: $(cat | tail -n 1)\"\n\nhello\n";
const GATED: &str =
    "---\nruntime: exec\n---\n# Gated\n\n## build\n> gate: approve\n> command: echo built\n";

#[test]
fn agents_are_listed_inspected_awaited_and_sent_follow_ups() {
    let repo = repo(&[("chat", CHAT)]);
    let dir = repo.path();
    assert_eq!(
        murmur(dir, &["flight", "run", "chat"]).status.code(),
        Some(0)
    );
    let status = json(&murmur(dir, &["status", "echo", "--json"]));
    assert_eq!(
        (status["state"].as_str(), status["response"].as_str()),
        (Some("completed"), Some("got: hello"))
    );
    let active = murmur(dir, &["ls"]);
    assert!(
        text(&active).contains("no agents at work"),
        "{}",
        text(&active)
    );
    let all = json(&murmur(dir, &["ls", "--all", "--json"]));
    assert_eq!(all[0]["slug"], "echo");
    let follow_up = murmur(dir, &["queue", "add", "echo", "and goodbye"]);
    assert_eq!(follow_up.status.code(), Some(0), "{}", text(&follow_up));
    assert!(
        text(&follow_up).contains("got: and goodbye"),
        "{}",
        text(&follow_up)
    );
    let status = json(&murmur(dir, &["status", "echo", "--json"]));
    assert_eq!(status["attempts"], 2, "the follow-up was a second turn");
    assert_eq!(murmur(dir, &["wait", "echo"]).status.code(), Some(0));
    let otherwise = murmur(
        dir,
        &["wait", "echo", "--phase", "running", "--timeout", "5s"],
    );
    assert_eq!(
        otherwise.status.code(),
        Some(1),
        "it ended without that phase"
    );
    let killed = murmur(dir, &["kill", "echo"]);
    assert_eq!(killed.status.code(), Some(1));
    assert!(
        text(&killed).contains("already ended: completed"),
        "{}",
        text(&killed)
    );
    let unknown = murmur(dir, &["status", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("no run has an agent `nobody`"),
        "{}",
        text(&unknown)
    );
    let phase = murmur(dir, &["wait", "echo", "--phase", "sleepy"]);
    assert!(
        text(&phase).contains("unknown phase `sleepy`"),
        "{}",
        text(&phase)
    );
}

#[test]
fn an_approval_from_the_command_line_lets_a_background_run_finish() {
    let repo = repo(&[("gated", GATED)]);
    let dir = repo.path();
    let started = murmur(dir, &["flight", "run", "gated", "--detach"]);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started));
    let run = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let waiting = murmur(
        dir,
        &[
            "wait",
            "build",
            "--phase",
            "checks-pending",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(waiting.status.code(), Some(0), "{}", text(&waiting));
    let early = murmur(dir, &["runs", "approve", &run, "nobody"]);
    assert_eq!(early.status.code(), Some(1));
    let approved = murmur(dir, &["runs", "approve", &run, "build", "--comment", "ok"]);
    assert_eq!(approved.status.code(), Some(0), "{}", text(&approved));
    let done = murmur(dir, &["wait", &format!("{run}/build"), "--timeout", "60s"]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let again = murmur(dir, &["runs", "approve", &run, "build"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("is not waiting for approval (it is completed)"),
        "{}",
        text(&again)
    );
}

#[test]
fn spawn_starts_one_agent_that_the_agent_commands_know() {
    let repo = repo(&[]);
    let dir = repo.path();
    let out = murmur(
        dir,
        &[
            "spawn",
            "greeter",
            "--runtime",
            "exec",
            "echo",
            "hello there",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = json(&murmur(dir, &["status", "greeter", "--json"]));
    assert_eq!(status["response"], "hello there");
    assert_eq!(status["flight"], "greeter");
    let bad = murmur(dir, &["spawn", "Not A Slug", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("is not a slug"), "{}", text(&bad));
}
