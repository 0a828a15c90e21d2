//! The driver with the Claude adapter, against small shell scripts standing in for the CLI
//! (real processes printing real stream-json lines) and against recorded exits.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Error, Overload, conclude};
use crate::claude::{self, ClaudeOutcome, ClaudeRequest, Summary};
use crate::{Line, Stream, Update};

/// How long a test waits for an event that should come at once; only reached when broken.
const DEADLINE: Duration = Duration::from_secs(30);

const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"s-new"}"#;
const ANSWER: &str = r#"{"type":"result","subtype":"success","is_error":false,"result":"Done","num_turns":2,"total_cost_usd":0.5,"session_id":"s-new"}"#;
const BUSY: &str = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 Overloaded","session_id":"s-new"}"#;

/// A stand-in `claude` in `dir` running `body` (a shell script; `$*` are the arguments).
fn fake_cli(dir: &Path, body: &str) -> ClaudeRequest {
    let binary = dir.join("claude");
    std::fs::write(&binary, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    ClaudeRequest {
        binary,
        prompt: "do it".into(),
        workdir: dir.to_path_buf(),
        model: None,
        system_prompt: None,
        allowed_tools: vec![],
        resume: None,
        env: vec![],
        idle_timeout: DEADLINE,
    }
}

fn exit(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

fn summary(is_error: bool, result: &str) -> Option<Summary> {
    Some(Summary {
        subtype: "success".into(),
        is_error,
        result: result.into(),
        num_turns: 3,
        total_cost_usd: 0.25,
        session_id: "s-1".into(),
    })
}

fn claude_end(
    summary: Option<Summary>,
    code: i32,
    stderr: &str,
    resume: Option<&str>,
) -> Result<ClaudeOutcome, Error> {
    conclude::<ClaudeRequest>(summary, exit(code), stderr, resume)
}

#[test]
fn a_claude_transcript_and_exit_become_the_outcome() {
    let outcome = claude_end(summary(false, "Done"), 0, "", None).unwrap();
    assert_eq!(
        outcome,
        ClaudeOutcome {
            response: "Done".into(),
            session_id: "s-1".into(),
            turns: 3,
            cost_usd: 0.25
        }
    );
    assert!(matches!(
        claude_end(summary(true, "API Error: 529 overloaded_error"), 1, "", None),
        Err(Error::Overloaded(m)) if m == "API Error: 529 overloaded_error"
    ));
    assert!(matches!(
        claude_end(summary(true, ""), 1, "", None),
        Err(Error::Reported(m)) if m == "success"
    ));
    let busy = "starting\nAPI Error: Rate limit reached\n\n";
    assert!(matches!(
        claude_end(None, 1, busy, None),
        Err(Error::Overloaded(m)) if m == "API Error: Rate limit reached"
    ));
    let Err(error @ Error::Exit { code: 2, .. }) = claude_end(None, 2, "a\n  b  \n", None) else {
        panic!("an exit error")
    };
    assert_eq!(
        error.to_string(),
        "the Claude Code CLI exited with status 2: b"
    );
    let Err(error) = claude_end(None, 0, "", None) else {
        panic!("no result")
    };
    assert_eq!(
        error.to_string(),
        "the Claude Code CLI ended without a result line"
    );
    assert!(error.is_retryable());
    let unsaved = "No conversation found with session ID: s-0\n";
    assert!(matches!(
        claude_end(None, 1, unsaved, Some("s-0")),
        Err(Error::SessionNotFound(s)) if s == "s-0"
    ));
    assert!(
        matches!(claude_end(None, 1, unsaved, None), Err(Error::Exit { .. })),
        "only a resume can miss its session"
    );
}

/// Starts a turn in a task; returns its updates, the stop handle and the task.
fn start_turn(
    request: ClaudeRequest,
    overload: Overload,
) -> (
    mpsc::UnboundedReceiver<Update>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<ClaudeOutcome, Error>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, mut stop) = oneshot::channel();
    let task = tokio::spawn(async move { claude::turn(request, overload, tx, &mut stop).await });
    (rx, stop_tx, task)
}

/// Waits for the first update that `wanted` accepts.
async fn wait_for(updates: &mut mpsc::UnboundedReceiver<Update>, wanted: impl Fn(&Update) -> bool) {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(update) = updates.recv().await {
            if wanted(&update) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the awaited update came");
}

fn stderr_says(update: &Update, text: &str) -> bool {
    matches!(update, Update::Line(Line { stream: Stream::Stderr, text: t }) if t.contains(text))
}

#[tokio::test]
async fn a_stop_ends_a_parked_wait() {
    let dir = tempfile::tempdir().unwrap();
    let request = fake_cli(dir.path(), &format!("echo '{INIT}'\necho '{BUSY}'\nexit 1"));
    let overload = Overload {
        backoff: Duration::from_secs(3600),
        tries: 5,
    };
    let (mut updates, stop, task) = start_turn(request, overload);
    wait_for(&mut updates, |u| {
        stderr_says(
            u,
            "API Error: 529 Overloaded; parked, trying again in 3600s (1 of 5)",
        )
    })
    .await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the stop is prompt");
    assert!(matches!(result.unwrap(), Err(Error::Stopped)));
}

#[tokio::test]
async fn a_stop_kills_the_running_cli() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let body = format!(
        "echo $$ > '{}'\necho '{INIT}'\nexec sleep 300",
        pid_file.display()
    );
    let (mut updates, stop, task) = start_turn(fake_cli(dir.path(), &body), Overload::default());
    wait_for(&mut updates, |u| *u == Update::Session("s-new".into())).await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the stop is prompt");
    assert!(matches!(result.unwrap(), Err(Error::Stopped)));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new("/proc").join(pid.trim()).exists(),
        "the CLI ({}) is gone",
        pid.trim()
    );
}

#[tokio::test]
async fn an_unsaved_session_is_replaced_once_even_across_parked_retries() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // Asked to resume: the CLI's own error. Else busy on the first fresh run, then an answer.
    let body = format!(
        "case \"$*\" in *--resume*) echo 'No conversation found with session ID: s-0' >&2; exit 1;; esac\n\
         echo run >> '{runs}'\n\
         echo '{INIT}'\n\
         if [ $(wc -l < '{runs}') -eq 1 ]; then echo '{BUSY}'; exit 1; fi\n\
         echo '{ANSWER}'",
        runs = runs.display()
    );
    let request = ClaudeRequest {
        resume: Some("s-0".into()),
        ..fake_cli(dir.path(), &body)
    };
    let overload = Overload {
        backoff: Duration::from_millis(1),
        tries: 3,
    };
    let (mut updates, _stop, task) = start_turn(request, overload);
    let outcome = tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap().response, "Done");
    let mut notices = Vec::new();
    while let Ok(update) = updates.try_recv() {
        if let Update::Line(Line {
            stream: Stream::Stderr,
            text,
        }) = update
            && text.starts_with("murmur: ")
        {
            notices.push(text);
        }
    }
    assert_eq!(
        notices,
        [
            "murmur: session s-0 was never saved; starting a new session in the same worktree",
            "murmur: API Error: 529 Overloaded; parked, trying again in 0s (1 of 3)"
        ]
        .map(str::to_owned)
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\nrun\n");
}

#[tokio::test]
async fn a_missing_claude_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = oneshot::channel();
    let request = ClaudeRequest {
        binary: "/nonexistent/claude".into(),
        ..fake_cli(dir.path(), "")
    };
    let error = claude::run(request, tx, &mut stop).await.unwrap_err();
    assert!(matches!(&error, Error::Missing { binary, .. } if binary == "/nonexistent/claude"));
    assert!(
        error
            .to_string()
            .contains("npm install -g @anthropic-ai/claude-code"),
        "{error}"
    );
}
