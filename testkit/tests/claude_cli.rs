//! The real Claude Code CLI (`node_modules/.bin/claude`) against the scripted model server.
//!
//! These tests pin down the behaviour Murmur's `claude` runtime relies on: the stream-json
//! transcript, real tool execution in the working tree, `--resume`, and what a hung model call
//! looks like from the outside. They wait on output lines and server events, never on sleeps;
//! the only timeout is a safety net that turns a stuck CLI into a failure instead of a hang.

mod support;

use std::time::Instant;

use murmur_testkit::{ModelServer, RequestKind, Turn};
use serde_json::Value;
use support::{Finished, MODEL, SAFETY_NET, Sandbox, git, record, run, spawn};

const COMMIT_HELLO: &str = "echo hi > hello.txt && git add hello.txt \
                            && git -c user.name=t -c user.email=t@t commit -qm hello";

/// Runs the brief's first scenario and returns the finished run; shared by the resume test.
fn create_hello(server: &ModelServer, sandbox: &Sandbox) -> Finished {
    let done = run(sandbox.claude(server, &["-p", "create hello.txt"]));
    done.assert_success();
    done
}

#[test]
fn runs_a_bash_tool_call_and_reports_the_result() {
    let server = ModelServer::start(vec![
        Turn::bash(COMMIT_HELLO),
        Turn::text("Done: created hello.txt"),
    ]);
    let sandbox = Sandbox::new();
    let done = create_hello(&server, &sandbox);

    record("claude-stream.jsonl", &done);

    let session = done.session_id();
    assert!(!session.is_empty());
    let tool_use = done
        .of_type("assistant")
        .into_iter()
        .flat_map(|e| e["message"]["content"].as_array().unwrap().iter())
        .find(|c| c["type"] == "tool_use")
        .cloned()
        .expect("an assistant tool_use line");
    assert_eq!(tool_use["name"], "Bash");
    assert_eq!(tool_use["input"]["command"], COMMIT_HELLO);
    let tool_result = done
        .of_type("user")
        .into_iter()
        .flat_map(|e| e["message"]["content"].as_array().unwrap().iter())
        .find(|c| c["type"] == "tool_result")
        .cloned()
        .expect("a user tool_result line");
    assert_eq!(tool_result["tool_use_id"], tool_use["id"]);
    assert_eq!(tool_result["is_error"], false);

    let result = done.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "Done: created hello.txt");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 2);
    assert_eq!(result["session_id"], session.as_str());
    assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);

    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(git(&sandbox.repo, &["log", "--format=%s"]), "hello\n");

    // Only the two agent-loop calls reached the server: no probes, helpers or unknown paths.
    // A new CLI version that calls something else fails here on purpose: see README.md.
    let calls: Vec<_> = server
        .log()
        .iter()
        .map(|r| (r.kind, format!("{} {}", r.method, r.path)))
        .collect();
    let expected = "POST /v1/messages?beta=true".to_owned();
    assert_eq!(
        calls,
        [
            (RequestKind::Scripted(0), expected.clone()),
            (RequestKind::Scripted(1), expected)
        ]
    );
    // The session header is the id the init line reports, on every call.
    for request in server.log() {
        assert_eq!(request.headers["x-claude-code-session-id"], session);
    }
    let first = &server.requests()[0];
    assert_eq!(first["stream"], true);
    assert_eq!(first["model"], MODEL);
    assert!(first["messages"].to_string().contains("create hello.txt"));
}

#[test]
fn resume_sends_the_previous_conversation_under_the_same_session() {
    let server = ModelServer::start(vec![
        Turn::bash(COMMIT_HELLO),
        Turn::text("Done: created hello.txt"),
        Turn::text("Yes, hello.txt is committed."),
    ]);
    let sandbox = Sandbox::new();
    let session = create_hello(&server, &sandbox).session_id();

    let again = run(sandbox.claude(
        &server,
        &["--resume", &session, "-p", "is hello.txt committed?"],
    ));
    again.assert_success();
    assert_eq!(again.session_id(), session, "resume keeps the session id");
    assert_eq!(again.result()["result"], "Yes, hello.txt is committed.");

    let log = server.log();
    let resumed = log.last().unwrap();
    assert_eq!(resumed.kind, RequestKind::Scripted(2));
    assert_eq!(resumed.headers["x-claude-code-session-id"], session);
    let history = resumed.body["messages"].to_string();
    for expected in [
        "create hello.txt",
        COMMIT_HELLO,
        "toolu_testkit_0",
        "tool_result",
        "Done: created hello.txt",
        "is hello.txt committed?",
    ] {
        assert!(
            history.contains(&expected.replace('"', "\\\"")),
            "the resumed request carries {expected:?}: {history}"
        );
    }
}

#[test]
fn a_hung_model_call_leaves_only_the_init_line() {
    let server = ModelServer::start(vec![Turn::Hang]);
    let sandbox = Sandbox::new();
    let mut running = spawn(sandbox.claude(&server, &["-p", "create hello.txt"]));
    let deadline = Instant::now() + SAFETY_NET;

    let init: Value = serde_json::from_str(&running.next_line(deadline).expect("an init line"))
        .expect("init is JSON");
    assert_eq!(init["subtype"], "init");
    assert!(
        server.wait_for_scripted(1, SAFETY_NET),
        "the hung call reached the server"
    );
    // What the caller's watchdog does: kill, then see that nothing but init was printed.
    running.child.kill().expect("kill claude");
    let rest = running.finish();
    assert!(!rest.status.success());
    let printed: Vec<_> = rest.events.iter().map(|e| e["type"].clone()).collect();
    assert!(
        printed.iter().all(|t| t != "assistant" && t != "result"),
        "nothing after init but {printed:?}"
    );
    assert!(!sandbox.repo.join("hello.txt").exists());
}

#[test]
fn an_api_error_without_retries_ends_in_an_error_result() {
    let server = ModelServer::start(vec![Turn::overloaded()]);
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.claude(&server, &["-p", "create hello.txt"]);
    // The CLI retries 529s with backoff by default; zero retries makes the first one final.
    cmd.env("CLAUDE_CODE_MAX_RETRIES", "0");
    let done = run(cmd);
    record("claude-stream-api-error.jsonl", &done);

    assert_eq!(done.status.code(), Some(1));
    let result = done.result();
    // Surprising but observed: the subtype stays "success"; is_error and the status tell.
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["api_error_status"], 529);
    assert_eq!(result["api_error_type"], "overloaded_error");
    assert!(result["result"].as_str().unwrap().contains("529"));
}

#[test]
fn an_overloaded_call_is_retried_and_the_run_recovers() {
    // Each retry is a new request, so it takes the next turn of the script.
    let server = ModelServer::start(vec![Turn::overloaded(), Turn::text("recovered")]);
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.claude(&server, &["-p", "create hello.txt"]);
    cmd.env("CLAUDE_CODE_MAX_RETRIES", "1");
    let done = run(cmd);
    done.assert_success();
    record("claude-stream-retry.jsonl", &done);

    let retry = done
        .events
        .iter()
        .find(|e| e["subtype"] == "api_retry")
        .expect("a system/api_retry line");
    assert_eq!(retry["type"], "system");
    assert_eq!(retry["error_status"], 529);
    assert_eq!(retry["attempt"], 1);
    assert_eq!(done.result()["result"], "recovered");
    assert_eq!(server.scripted_requests().len(), 2);
}
