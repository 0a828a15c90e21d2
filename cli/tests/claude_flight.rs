//! Real coding agents end to end: the `murmur` binary runs a flight whose agents are the real
//! Claude Code CLI, talking to a scripted model server on 127.0.0.1. Real git, real commits.

mod claude_project;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use claude_project::{Project, agent, all_text, commit, text};
use murmur_testkit::git::git;
use murmur_testkit::{ModelServer, Turn};
use serde_json::Value;

const FLIGHT: &str = "---
runtime: claude
---

# Add a greeting

## design
> persona: architect
> out: respond

Plan a greeting file for the project.

## implement
> needs: design
> out: pr

Implement the plan.

## polish
> continues: implement

Polish the wording.
";

#[test]
fn design_implement_polish_with_the_real_claude_cli() {
    let project = Project::new(&[("feature", FLIGHT)]);
    let server = ModelServer::start(vec![
        Turn::text("Plan: create GREETING.md that says hello."),
        commit("Add greeting", "GREETING.md", "Hello"),
        Turn::text("Implemented: GREETING.md is committed."),
        commit("Polish greeting", "GREETING.md", "Hello, world"),
        Turn::text("Polished the wording."),
    ]);
    let out = project
        .murmur(&server, &["flight", "run", "feature", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 5, "one call per scripted turn");
    assert!(
        all_text(&calls[1]).contains("Plan: create GREETING.md"),
        "implement's prompt carries design's response"
    );
    assert!(
        calls[1]["system"]
            .to_string()
            .contains("careful software engineer"),
        "implement runs as programmer"
    );
    assert!(
        calls[0]["system"]
            .to_string()
            .contains("software architect"),
        "design runs as architect"
    );
    let polish_first = all_text(&calls[3]);
    assert!(
        polish_first.contains("Implement the plan")
            && polish_first.contains("Implemented: GREETING.md is committed."),
        "polish continues implement's conversation: {polish_first}"
    );
    assert!(polish_first.contains("Polish the wording"));

    let run = project.latest_run(&server);
    let show = project.show(&server, &run);
    let (implement, polish) = (agent(&show, "implement"), agent(&show, "polish"));
    let branch = format!("murmur/feature/{run}/implement");
    assert_eq!(implement["branch"], branch.as_str());
    assert_eq!(implement["commits"], 1);
    assert_eq!(
        polish["branch"],
        branch.as_str(),
        "polish works on implement's branch"
    );
    assert_eq!(
        polish["commits"], 2,
        "polish sees its own commit on top of implement's"
    );
    assert_eq!(
        polish["session_id"], implement["session_id"],
        "same session"
    );
    assert!(
        implement["session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        implement["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{implement}"
    );
    assert!(
        implement["turns"].as_i64().is_some_and(|t| t >= 2),
        "{implement}"
    );
    assert_eq!(agent(&show, "design")["commits"], 0);

    assert_eq!(
        git(
            project.repo(),
            &["log", "--format=%s", &format!("main..{branch}")]
        ),
        "Polish greeting\nAdd greeting"
    );
    assert_eq!(
        git(project.repo(), &["show", &format!("{branch}:GREETING.md")]),
        "Hello, world"
    );
    let prs = project.json(&server, &["pr", "ls", "--json"]);
    assert_eq!(prs.as_array().map(Vec::len), Some(1));
    assert_eq!(prs[0]["branch"], branch.as_str());
    assert_eq!(prs[0]["state"], "open");
    assert!(
        implement["prs"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("local:"))
    );
}

/// Polls `ready` (a file another process writes) for up to a minute.
fn wait_until(ready: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Reads the engine's JSON lines until `stop` says so, waits for `ready`, then SIGKILLs it.
fn kill_when(mut engine: Child, stop: impl Fn(&Value) -> bool, ready: impl FnOnce() -> bool) {
    let stdout = engine.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if stop(&value["event"]) {
            break;
        }
    }
    assert!(ready(), "the engine reached the point to kill it at");
    engine.kill().expect("SIGKILL");
    engine.wait().expect("reaped");
}

#[test]
fn a_killed_engine_resumes_the_agents_session_instead_of_restarting_it() {
    let project = Project::new(&[("feature", FLIGHT)]);
    let first = ModelServer::start(vec![
        Turn::text("Plan: one file."),
        commit("Add greeting", "GREETING.md", "Hello"),
        Turn::Hang,
    ]);
    let engine = project
        .murmur(&first, &["flight", "run", "feature", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    // Killed while the model "thinks" after the first tool call: the session has history.
    let tool_done = |event: &Value| {
        event["type"] == "agent_output"
            && event["slug"] == "implement"
            && event["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("[tool]"))
    };
    // Killed once the CLI asked the model again and its transcript holds the tool call.
    kill_when(engine, tool_done, || {
        first.wait_for_scripted(3, std::time::Duration::from_secs(60))
            && wait_until(|| project.transcripts_contain("Add greeting"))
    });
    let run = project.latest_run(&first);
    let before = project.show(&first, &run);
    let session = agent(&before, "implement")["session_id"]
        .as_str()
        .expect("session checkpointed")
        .to_owned();

    let second = ModelServer::start(vec![
        Turn::text("Implemented after the restart."),
        Turn::text("Polished."),
    ]);
    let resumed = project
        .murmur(&second, &["runs", "resume", &run, "--json"])
        .output()
        .expect("resumes");
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let after = project.show(&second, &run);
    let implement = agent(&after, "implement");
    assert_eq!(implement["attempts"], 2, "the in-flight attempt ran again");
    assert_eq!(
        implement["session_id"],
        session.as_str(),
        "in the same session"
    );
    assert_eq!(implement["state"], "completed");
    assert_eq!(
        agent(&after, "design")["attempts"],
        1,
        "design is not repeated"
    );
    let resumed_call = &second.scripted_requests()[0];
    assert!(
        all_text(resumed_call).contains("Implement the plan"),
        "the resumed session carries the first prompt"
    );
    assert!(
        all_text(resumed_call).contains("Add greeting"),
        "and the tool call of the killed attempt"
    );
    assert_eq!(
        implement["commits"], 1,
        "the commit of the killed attempt is kept"
    );
    let sessions: Vec<String> = second
        .log()
        .iter()
        .filter_map(|r| r.headers.get("x-claude-code-session-id").cloned())
        .collect();
    assert!(
        sessions.iter().any(|s| s == &session),
        "the CLI resumed {session}: {sessions:?}"
    );
}

#[test]
fn a_session_killed_before_it_was_saved_starts_afresh_in_the_same_worktree() {
    let project = Project::new(&[("feature", FLIGHT)]);
    let first = ModelServer::start(vec![Turn::text("Plan: one file."), Turn::Hang]);
    let engine = project
        .murmur(&first, &["flight", "run", "feature", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let implement_started =
        |event: &Value| event["type"] == "agent_session" && event["slug"] == "implement";
    kill_when(engine, implement_started, || {
        first.wait_for_scripted(2, std::time::Duration::from_secs(60))
    });
    let run = project.latest_run(&first);
    // Whether the CLI got to write its transcript before the kill depends on timing; what
    // this test is about is the case where it did not.
    project.forget_transcripts();
    let second = ModelServer::start(vec![
        commit("Add greeting", "GREETING.md", "Hello"),
        Turn::text("Implemented."),
        Turn::text("Polished."),
    ]);
    let resumed = project
        .murmur(&second, &["runs", "resume", &run])
        .output()
        .expect("resumes");
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        text(&resumed).contains("was never saved; starting a new session"),
        "{}",
        text(&resumed)
    );
    let show = project.show(&second, &run);
    assert_eq!(agent(&show, "implement")["attempts"], 2);
    assert_eq!(agent(&show, "implement")["commits"], 1);
}

#[test]
fn a_model_that_never_answers_trips_the_watchdog() {
    let project = Project::new(&[("feature", FLIGHT)]);
    let flight = FLIGHT.replace("runtime: claude\n", "runtime: claude\nidle_timeout: 2s\n");
    std::fs::write(project.repo().join(".murmur/flights/feature.md"), flight).expect("write");
    git(project.repo(), &["commit", "-qam", "short idle timeout"]);
    let server = ModelServer::start(vec![Turn::Hang]);
    let out = project
        .murmur(&server, &["flight", "run", "feature"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no output for 2s: the agent looks hung and was stopped"),
        "{}",
        text(&out)
    );
    let run = project.latest_run(&server);
    let show = project.show(&server, &run);
    assert_eq!(agent(&show, "design")["state"], "failed");
    assert_eq!(agent(&show, "implement")["state"], "skipped");
}

#[test]
fn a_missing_cli_or_a_dirty_repository_is_refused_before_a_run_is_recorded() {
    let project = Project::new(&[("feature", FLIGHT)]);
    let server = ModelServer::start(vec![Turn::text("never used")]);
    let missing = project
        .murmur(&server, &["flight", "run", "feature"])
        .env("MURMUR_CLAUDE_BIN", "/nonexistent/claude")
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("the Claude Code CLI `/nonexistent/claude` was not found (agent `design` runs on claude)"),
        "{}",
        text(&missing)
    );
    std::fs::write(
        project.repo().join("README.md"),
        "# Edited, not committed\n",
    )
    .expect("write");
    let dirty = project
        .murmur(&server, &["flight", "run", "feature"])
        .output()
        .expect("runs");
    assert_eq!(dirty.status.code(), Some(2), "{}", text(&dirty));
    assert!(
        text(&dirty).contains("uncommitted changes (README.md)"),
        "{}",
        text(&dirty)
    );
    assert_eq!(
        project.json(&server, &["runs", "ls", "--json"]),
        serde_json::json!([]),
        "no run was recorded"
    );
    assert_eq!(
        server.scripted_requests().len(),
        0,
        "no agent reached the model"
    );
}

#[test]
fn an_overloaded_model_parks_the_agent_and_it_tries_again() {
    let project = Project::new(&[("feature", FLIGHT)]);
    std::fs::write(
        project.repo().join(".murmur/murmur.yaml"),
        "runtimes:\n  claude:\n    overload_backoff: 1s\n",
    )
    .expect("config");
    let server = ModelServer::start(vec![
        Turn::overloaded(),
        Turn::text("Plan: after the storm."),
        commit("Add greeting", "GREETING.md", "Hello"),
        Turn::text("Implemented."),
        Turn::text("Polished."),
    ]);
    // The CLI's own retries are off, so the engine sees the overload itself.
    let out = project
        .murmur(&server, &["flight", "run", "feature"])
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("parked, trying again in 1s (1 of 5)"),
        "{}",
        text(&out)
    );
    let run = project.latest_run(&server);
    let show = project.show(&server, &run);
    assert_eq!(agent(&show, "design")["response"], "Plan: after the storm.");
    assert_eq!(
        agent(&show, "design")["attempts"],
        1,
        "parking is not a new attempt"
    );
}
