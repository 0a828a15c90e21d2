//! The real Codex CLI (`node_modules/.bin/codex`) against the scripted Responses API server.
//!
//! These pin down the wire protocol and the `codex exec --json` transcript that Murmur's `codex`
//! runtime relies on (the runtime's own end-to-end tests, with resume and the idle watchdog,
//! live in `runtime/tests/codex_cli.rs`). `MURMUR_RECORD_CODEX_FIXTURE=1` re-records the
//! fixtures the runtime's parser tests read.

#[allow(dead_code)] // Shared with the Claude tests; only the generic parts are used here.
mod support;

use std::path::Path;

use murmur_testkit::codex_cli::{MODEL, codex_command, config_args};
use murmur_testkit::{ModelServer, RequestKind, Turn};
use serde_json::Value;
use support::{Finished, Sandbox, git, spawn};

const COMMIT_HELLO: &str = "echo hi > hello.txt && git add hello.txt \
                            && git -c user.name=t -c user.email=t@t commit -qm hello";

fn codex(server: &ModelServer, sandbox: &Sandbox, prompt: &str) -> Finished {
    let mut cmd = codex_command(&sandbox.home);
    cmd.current_dir(&sandbox.repo)
        .args(["exec", "--json", "--skip-git-repo-check", "-m", MODEL])
        .args(config_args(&server.openai_url()))
        .args(["-c", "sandbox_mode=\"danger-full-access\""])
        .arg(prompt);
    spawn(cmd).finish()
}

fn record(name: &str, run: &Finished) {
    if std::env::var_os("MURMUR_RECORD_CODEX_FIXTURE").is_some() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        std::fs::write(fixture, run.raw.join("\n") + "\n").unwrap();
    }
}

fn types(run: &Finished) -> Vec<String> {
    run.events
        .iter()
        .map(|e| {
            let ty = e["type"].as_str().unwrap_or("?");
            match e["item"]["type"].as_str() {
                Some(item) => format!("{ty}:{item}"),
                None => ty.to_owned(),
            }
        })
        .collect()
}

#[test]
fn runs_an_exec_command_call_and_reports_the_final_message() {
    let server = ModelServer::start(vec![
        Turn::exec_command(COMMIT_HELLO),
        Turn::text("Done: created hello.txt"),
    ]);
    let sandbox = Sandbox::new();
    let done = codex(&server, &sandbox, "create hello.txt");
    done.assert_success();
    record("codex-exec.jsonl", &done);

    assert_eq!(
        types(&done),
        [
            "thread.started",
            "turn.started",
            "item.started:command_execution",
            "item.completed:command_execution",
            "item.completed:agent_message",
            "turn.completed"
        ]
    );
    let thread = done.events[0]["thread_id"].as_str().unwrap().to_owned();
    let command = &done.events[3]["item"];
    assert!(command["command"].as_str().unwrap().contains(COMMIT_HELLO));
    assert_eq!(
        (&command["exit_code"], &command["status"]),
        (&0.into(), &"completed".into())
    );
    assert_eq!(done.events[4]["item"]["text"], "Done: created hello.txt");
    // Usage adds up the turn's two model calls (100 input + 20 output tokens each).
    let usage = &done.events[5]["usage"];
    assert_eq!(
        (&usage["input_tokens"], &usage["output_tokens"]),
        (&200.into(), &40.into())
    );

    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(git(&sandbox.repo, &["log", "--format=%s"]), "hello\n");

    // Only the two agent-loop calls reached the server: no model list, no helper calls.
    let calls: Vec<_> = server
        .log()
        .iter()
        .map(|r| (r.kind, format!("{} {}", r.method, r.path)))
        .collect();
    let expected = "POST /v1/responses".to_owned();
    assert_eq!(
        calls,
        [
            (RequestKind::Scripted(0), expected.clone()),
            (RequestKind::Scripted(1), expected)
        ]
    );
    for request in server.log() {
        assert_eq!(request.headers["authorization"], "Bearer test-key");
        assert_eq!(request.headers["accept"], "text/event-stream");
        assert_eq!(
            request.headers["session-id"], thread,
            "the thread id is the session"
        );
        assert_eq!(request.headers["thread-id"], thread);
    }
    let first = &server.requests()[0];
    assert_eq!(
        (&first["model"], &first["stream"]),
        (&MODEL.into(), &true.into())
    );
    let exec = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "exec_command")
        .expect("the exec_command tool is offered");
    assert_eq!(exec["type"], "function");
    assert_eq!(exec["parameters"]["required"], serde_json::json!(["cmd"]));
    assert!(first["input"].to_string().contains("create hello.txt"));

    // The second call carries the call and its output, matched by call_id.
    let input = server.requests()[1]["input"].as_array().unwrap().clone();
    let item = |ty: &str| -> Value {
        input
            .iter()
            .find(|i| i["type"] == ty)
            .cloned()
            .unwrap_or_else(|| panic!("a {ty}"))
    };
    assert_eq!(item("function_call")["call_id"], "call_testkit_0");
    let output = item("function_call_output");
    assert_eq!(output["call_id"], "call_testkit_0");
    assert!(
        output["output"]
            .as_str()
            .unwrap()
            .contains("Process exited with code 0"),
        "{output}"
    );
}

#[test]
fn an_api_error_without_retries_fails_the_turn() {
    // Codex words each status its own way: 429 "exceeded retry limit, last status: 429 Too Many
    // Requests"; 500 "We're currently experiencing high demand, ..." (the body is dropped);
    // 503/529 "unexpected status 503 Service Unavailable: <message>, url: ..."; 400 the raw body.
    let server = ModelServer::start(vec![Turn::error(429, "rate_limit_exceeded", "slow down")]);
    let sandbox = Sandbox::new();
    let done = codex(&server, &sandbox, "create hello.txt");
    record("codex-exec-error.jsonl", &done);

    assert_eq!(done.status.code(), Some(1), "stderr: {}", done.stderr);
    let types = types(&done);
    assert_eq!(types.first().map(String::as_str), Some("thread.started"));
    assert_eq!(
        types.last().map(String::as_str),
        Some("turn.failed"),
        "{types:?}"
    );
    let failed = done.events.last().unwrap();
    let message = failed["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "exceeded retry limit, last status: 429 Too Many Requests"
    );
    // An `error` event with the same message comes first.
    assert_eq!(done.events[done.events.len() - 2]["message"], message);
    assert_eq!(server.log().len(), 1, "request_max_retries=0: no retry");
}
