//! `murmur_runtime::codex::run` driving the real Codex CLI (`node_modules/.bin/codex`) against
//! the scripted Responses API server of `murmur-testkit`, in a temporary git repository.
//!
//! No sleeps: each test waits on the run's own result and on server events. The only long
//! timeout is the idle watchdog of the successful runs, a safety net against a stuck CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use murmur_runtime::codex::{self, CodexOutcome, CodexRequest, Error, Overload};
use murmur_runtime::{Line, Stream, Update};
use murmur_testkit::codex_cli::{MODEL, codex_bin, codex_env, provider_config};
use murmur_testkit::{ModelServer, RequestKind, Turn};
use tokio::sync::{mpsc, oneshot};

const COMMIT_HELLO: &str = "echo hi > hello.txt && git add hello.txt \
                            && git -c user.name=t -c user.email=t@t commit -qm hello";
const PERSONA: &str = "You are the murmur test persona.";
/// Far above the ~1 s a run takes; only reached when something is broken.
const SAFETY_NET: Duration = Duration::from_secs(120);

/// A temporary home (`CODEX_HOME` and sessions) and a git repository to work in.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        Sandbox {
            _dir: dir,
            home,
            repo,
        }
    }

    fn request(&self, server: &ModelServer, prompt: &str) -> CodexRequest {
        CodexRequest {
            binary: codex_bin(),
            prompt: prompt.to_owned(),
            workdir: self.repo.clone(),
            model: Some(MODEL.to_owned()),
            system_prompt: Some(PERSONA.to_owned()),
            resume: None,
            env: codex_env(&self.home),
            idle_timeout: SAFETY_NET,
            extra_config: provider_config(&server.openai_url()),
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs one turn and returns its result with every update it sent, in order.
async fn run(request: CodexRequest) -> (Result<CodexOutcome, Error>, Vec<Update>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = oneshot::channel();
    let result = codex::run(request, tx, &mut stop).await;
    let mut updates = Vec::new();
    while let Ok(update) = rx.try_recv() {
        updates.push(update);
    }
    (result, updates)
}

/// Runs a whole turn (parked while the model is busy) and returns its result with every
/// update it sent, in order.
async fn turn(
    request: CodexRequest,
    overload: Overload,
) -> (Result<CodexOutcome, Error>, Vec<Update>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = oneshot::channel();
    let result = codex::turn(request, overload, tx, &mut stop).await;
    let mut updates = Vec::new();
    while let Ok(update) = rx.try_recv() {
        updates.push(update);
    }
    (result, updates)
}

/// The lines murmur itself wrote about parking the turn.
fn parked_lines(updates: &[Update]) -> Vec<&str> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Line(Line {
                stream: Stream::Stderr,
                text,
            }) if text.contains("parked, trying again") => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The first update that is not a line of the CLI's stderr.
fn first_event(updates: &[Update]) -> Option<&Update> {
    updates.iter().find(|u| {
        !matches!(
            u,
            Update::Line(Line {
                stream: Stream::Stderr,
                ..
            })
        )
    })
}

fn stdout_lines(updates: &[Update]) -> Vec<&str> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Line(Line {
                stream: Stream::Stdout,
                text,
            }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn commits_a_file_then_resumes_the_same_thread() {
    let server = ModelServer::start(vec![
        Turn::exec_command(COMMIT_HELLO),
        Turn::text("Done: created hello.txt"),
        Turn::text("Yes, hello.txt is committed."),
    ]);
    let sandbox = Sandbox::new();
    let (result, updates) = run(sandbox.request(&server, "create hello.txt")).await;
    let outcome = result.expect("the first turn succeeds");

    assert_eq!(outcome.response, "Done: created hello.txt");
    assert_eq!(outcome.turns, 2, "a command and a message");
    assert_eq!(
        (outcome.usage.input_tokens, outcome.usage.output_tokens),
        (200, 40)
    );
    let session = outcome.session_id.clone();
    assert_eq!(
        first_event(&updates),
        Some(&Update::Session(session.clone()))
    );
    let lines = stdout_lines(&updates);
    assert!(
        lines[0].starts_with("[exec] ") && lines[0].contains(COMMIT_HELLO),
        "{lines:?}"
    );
    assert_eq!(lines[1..], ["[exit 0]", "Done: created hello.txt"]);

    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(git(&sandbox.repo, &["log", "--format=%s"]), "hello\n");
    let first = &server.scripted_requests()[0];
    let developer: Vec<_> = first["input"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["role"] == "developer")
        .map(|i| i.to_string())
        .collect();
    assert!(
        developer.iter().any(|d| d.contains(PERSONA)),
        "the persona is a developer message"
    );

    // The same thread, resumed from its id: the CLI sends the whole earlier conversation.
    let resumed = CodexRequest {
        resume: Some(session.clone()),
        ..sandbox.request(&server, "is hello.txt committed?")
    };
    let (result, updates) = run(resumed).await;
    let again = result.expect("the resumed turn succeeds");
    assert_eq!(again.session_id, session, "resume keeps the thread id");
    assert_eq!(again.response, "Yes, hello.txt is committed.");
    assert_eq!(
        first_event(&updates),
        Some(&Update::Session(session.clone()))
    );
    // Token counts are the thread's running totals: 2 calls before, 1 now.
    assert_eq!(again.usage.input_tokens, 300);

    let log = server.log();
    assert_eq!(log.len(), 3, "no calls but the scripted ones");
    let last = log.last().unwrap();
    assert_eq!(last.kind, RequestKind::Scripted(2));
    assert_eq!(last.headers["session-id"], session);
    let history = last.body["input"].to_string();
    for expected in [
        "create hello.txt",
        COMMIT_HELLO,
        "\"function_call\"",
        "\"function_call_output\"",
        "call_testkit_0",
        "Done: created hello.txt",
        "is hello.txt committed?",
    ] {
        assert!(
            history.contains(expected),
            "the resumed request carries {expected:?}: {history}"
        );
    }
}

#[tokio::test]
async fn a_hung_model_call_trips_the_idle_watchdog() {
    let server = ModelServer::start(vec![Turn::Hang]);
    let sandbox = Sandbox::new();
    let idle = Duration::from_secs(2);
    let request = CodexRequest {
        idle_timeout: idle,
        ..sandbox.request(&server, "create hello.txt")
    };
    let (result, updates) = run(request).await;

    assert!(
        matches!(result, Err(Error::Idle(d)) if d == idle),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_retryable());
    assert!(
        server.wait_for_scripted(1, Duration::ZERO),
        "the hung call had reached the server"
    );
    assert!(matches!(first_event(&updates), Some(Update::Session(_))));
    assert!(stdout_lines(&updates).is_empty(), "{updates:?}");
    assert!(!sandbox.repo.join("hello.txt").exists());
}

#[tokio::test]
async fn a_rate_limited_call_is_a_retryable_overload() {
    let server = ModelServer::start(vec![Turn::error(429, "rate_limit_exceeded", "slow down")]);
    let sandbox = Sandbox::new();
    let (result, _) = run(sandbox.request(&server, "create hello.txt")).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Overloaded(m) if m.contains("429 Too Many Requests")),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn resuming_an_unknown_thread_is_session_not_found() {
    let server = ModelServer::start(vec![]);
    let sandbox = Sandbox::new();
    let unknown = "01a21320-0000-7000-8000-000000000000";
    let request = CodexRequest {
        resume: Some(unknown.to_owned()),
        ..sandbox.request(&server, "hello?")
    };
    let (result, _) = run(request).await;
    assert!(
        matches!(&result, Err(Error::SessionNotFound(id)) if id == unknown),
        "{result:?}"
    );
    assert!(server.log().is_empty(), "nothing was sent to the model");
}

/// A short first wait, so that parking costs the test milliseconds.
const QUICK: Overload = Overload {
    backoff: Duration::from_millis(10),
    tries: 5,
};

#[tokio::test]
async fn an_overloaded_model_is_waited_out_and_the_turn_completes() {
    let server = ModelServer::start(vec![
        Turn::overloaded(),
        Turn::rate_limited(),
        Turn::exec_command(COMMIT_HELLO),
        Turn::text("Done: created hello.txt"),
    ]);
    let sandbox = Sandbox::new();
    let (result, updates) = turn(sandbox.request(&server, "create hello.txt"), QUICK).await;

    let outcome = result.expect("the turn succeeds once the model has capacity");
    assert_eq!(outcome.response, "Done: created hello.txt");
    let parked = parked_lines(&updates);
    assert_eq!(parked.len(), 2, "{updates:?}");
    assert!(
        parked[0].contains("529") && parked[0].ends_with("trying again in 0s (1 of 5)"),
        "{}",
        parked[0]
    );
    assert!(
        parked[1].contains("429 Too Many Requests") && parked[1].ends_with("(2 of 5)"),
        "{}",
        parked[1]
    );
    assert_eq!(git(&sandbox.repo, &["log", "--format=%s"]), "hello\n");
    let kinds: Vec<_> = server.log().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        (0..4).map(RequestKind::Scripted).collect::<Vec<_>>(),
        "one call per run while busy, then the agent loop"
    );
}

#[tokio::test]
async fn a_model_that_stays_overloaded_ends_the_turn_after_its_tries() {
    let server = ModelServer::start(vec![
        Turn::rate_limited(),
        Turn::rate_limited(),
        Turn::text("never reached"),
    ]);
    let sandbox = Sandbox::new();
    let overload = Overload { tries: 2, ..QUICK };
    let (result, updates) = turn(sandbox.request(&server, "create hello.txt"), overload).await;

    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::StayedOverloaded(m) if m.contains("429 Too Many Requests")),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the model stayed overloaded: ")
    );
    assert!(error.is_retryable());
    assert_eq!(parked_lines(&updates).len(), 1, "{updates:?}");
    assert_eq!(server.remaining_turns(), 1, "two runs, one model call each");
}
