use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::*;
use crate::cli_agent::{conclude, read};

fn finish(
    transcript: Transcript,
    status: ExitStatus,
    stderr: &str,
    resume: Option<&str>,
) -> Result<CodexOutcome, Error> {
    conclude::<CodexRequest>(transcript, status, stderr, resume)
}

async fn read_stream(
    input: impl tokio::io::AsyncRead + Unpin,
    updates: &mpsc::UnboundedSender<Update>,
    idle: Duration,
    resume: Option<&str>,
) -> Result<Transcript, Error> {
    let request = CodexRequest {
        resume: resume.map(str::to_owned),
        ..request()
    };
    read(&request, input, updates, idle).await
}

fn request() -> CodexRequest {
    CodexRequest {
        binary: "codex".into(),
        prompt: "do it".into(),
        workdir: ".".into(),
        model: Some("gpt-5.5".into()),
        system_prompt: None,
        resume: None,
        env: vec![],
        idle_timeout: Duration::from_secs(60),
        extra_config: vec!["sandbox_mode=\"workspace-write\"".into()],
    }
}

#[test]
fn arguments_put_overrides_after_the_defaults_and_the_prompt_on_stdin() {
    assert_eq!(
        arguments(&request()),
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--model",
            "gpt-5.5",
            "-c",
            "approval_policy=\"never\"",
            "-c",
            "sandbox_mode=\"danger-full-access\"",
            "-c",
            "sandbox_mode=\"workspace-write\"",
            "-"
        ]
    );
    let resumed = CodexRequest {
        resume: Some("0199-thread".into()),
        system_prompt: Some("Be \"terse\".\nAlways.".into()),
        model: None,
        extra_config: vec![],
        ..request()
    };
    let args = arguments(&resumed);
    assert_eq!(
        args[..4],
        ["exec", "resume", "--json", "--skip-git-repo-check"]
    );
    assert_eq!(args[args.len() - 2..], ["0199-thread", "-"]);
    assert!(
        args.contains(&r#"developer_instructions="Be \"terse\".\nAlways.""#.to_owned()),
        "{args:?}"
    );
}

fn exit(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

fn completed() -> Transcript {
    Transcript {
        thread_id: Some("t-1".into()),
        response: "Done".into(),
        turns: 2,
        usage: Some(Usage::default()),
        ..Transcript::default()
    }
}

#[test]
fn finish_maps_the_transcript_and_exit_to_an_outcome() {
    let outcome = finish(completed(), exit(0), "", None).unwrap();
    assert_eq!(
        (
            outcome.response.as_str(),
            outcome.session_id.as_str(),
            outcome.turns
        ),
        ("Done", "t-1", 2)
    );

    let failed = |message: &str| Transcript {
        failure: Some(message.into()),
        ..completed()
    };
    let busy = "exceeded retry limit, last status: 429 Too Many Requests";
    assert!(
        matches!(finish(failed(busy), exit(1), "", None), Err(Error::Overloaded(m)) if m == busy)
    );
    assert!(matches!(
        finish(failed("bad request"), exit(1), "", None),
        Err(Error::Reported(m)) if m == "bad request"
    ));

    let stderr = "WARNING: noise\nError: thread/resume: thread/resume failed: no rollout found for thread id 0199 (code -32600)\n";
    assert!(matches!(
        finish(Transcript::default(), exit(1), stderr, Some("0199")),
        Err(Error::SessionNotFound(id)) if id == "0199"
    ));
    let Err(Error::Exit { code, detail, .. }) =
        finish(Transcript::default(), exit(2), "a\n\nb\n", None)
    else {
        panic!("an exit error")
    };
    assert_eq!((code, detail.as_str()), (2, "a\nb"));
    assert!(matches!(
        finish(Transcript::default(), exit(0), "", None),
        Err(Error::NoResult(_))
    ));
}

#[tokio::test]
async fn a_recorded_transcript_streams_the_session_first_then_readable_lines() {
    let transcript = include_str!("../../../testkit/fixtures/codex-exec.jsonl");
    let input = format!("{transcript}not json\n");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let read = read_stream(input.as_bytes(), &tx, Duration::from_secs(5), None)
        .await
        .unwrap();
    drop(tx);
    let mut updates = Vec::new();
    while let Some(update) = rx.recv().await {
        updates.push(update);
    }
    let Some(Update::Session(session)) = updates.first() else {
        panic!("session first: {updates:?}")
    };
    assert_eq!(read.thread_id.as_ref(), Some(session));
    let lines: Vec<_> = updates[1..]
        .iter()
        .map(|u| match u {
            Update::Line(line) => (line.stream, line.text.as_str()),
            Update::Session(_) => panic!("one session update"),
        })
        .collect();
    assert!(
        lines[0]
            .1
            .starts_with("[exec] /bin/bash -lc 'echo hi > hello.txt")
    );
    assert_eq!(lines[1], (Stream::Stdout, "[exit 0]"));
    assert_eq!(lines[2], (Stream::Stdout, "Done: created hello.txt"));
    assert_eq!(lines[3].0, Stream::Stderr);
    assert!(
        lines[3]
            .1
            .starts_with("murmur: skipped a line: not a codex exec --json line")
    );
    assert_eq!(lines.len(), 4);
    assert_eq!(
        (read.response.as_str(), read.turns),
        ("Done: created hello.txt", 2)
    );
    assert_eq!(read.usage.map(|u| u.output_tokens), Some(40));
}

#[tokio::test]
async fn a_resume_that_started_another_thread_is_flagged() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let input = "{\"type\":\"thread.started\",\"thread_id\":\"new\"}\n";
    read_stream(input.as_bytes(), &tx, Duration::from_secs(5), Some("old"))
        .await
        .unwrap();
    assert_eq!(rx.recv().await, Some(Update::Session("new".into())));
    let Some(Update::Line(line)) = rx.recv().await else {
        panic!("a warning line")
    };
    assert_eq!(
        line.text,
        "murmur: asked to resume old, but codex started new"
    );
}

#[tokio::test]
async fn silence_trips_the_watchdog() {
    let (_writer, reader) = tokio::io::duplex(64);
    let (tx, _rx) = mpsc::unbounded_channel();
    let idle = Duration::from_millis(50);
    assert!(matches!(
        read_stream(reader, &tx, idle, None).await,
        Err(Error::Idle(d)) if d == idle
    ));
}

#[tokio::test]
async fn a_missing_binary_is_reported_before_anything_runs() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = oneshot::channel();
    let request = CodexRequest {
        binary: "/nonexistent/codex".into(),
        ..request()
    };
    let error = run(request, tx, &mut stop).await.unwrap_err();
    assert!(matches!(&error, Error::Missing { binary, .. } if binary == "/nonexistent/codex"));
    assert!(error.to_string().contains("npm install -g @openai/codex"));
}
