//! The `codex` runtime: the Codex CLI headless (`codex exec --json`) in the agent's worktree.
//! Its JSONL is read as it arrives; the thread id is reported the moment it is seen, so the
//! engine can checkpoint it and resume the same conversation (`codex exec resume <id>`) after
//! a crash instead of starting over.

mod stream;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use stream::{Malformed, StreamEvent, Usage, parse_line};

use crate::lines::{read_stderr, send_line};
use crate::process::{Cli, StartError};
use crate::{Stream, Update};

#[derive(Debug, Clone)]
pub struct CodexRequest {
    /// The `codex` executable (from PATH or configuration).
    pub binary: PathBuf,
    /// Sent on stdin (the prompt argument is `-`), so no length limit and no leading `-` issue.
    pub prompt: String,
    pub workdir: PathBuf,
    pub model: Option<String>,
    /// The persona's text, as the `developer_instructions` setting (a developer message).
    pub system_prompt: Option<String>,
    /// Continue this thread (`continues`, follow-ups, crash recovery).
    pub resume: Option<String>,
    /// Credentials, `CODEX_HOME` and the like reach the CLI only through here.
    pub env: Vec<(String, String)>,
    /// Silence longer than this is a hang: the CLI is killed. `error` lines (a model call
    /// failing, the CLI reconnecting) do not count as activity.
    pub idle_timeout: Duration,
    /// `-c key=value` overrides (TOML values), after the runtime's own [`DEFAULT_CONFIG`] so
    /// they win: a model provider, `sandbox_mode="workspace-write"`, ...
    pub extra_config: Vec<String>,
}

/// Settings every run gets: no approval prompts (nobody is there to answer) and no sandbox.
/// The worktree is the agent's isolation, and the `workspace-write` sandbox keeps `.git`
/// read-only, so an agent could not commit. Resumed runs need them again: `codex exec resume`
/// does not take them from the thread (it falls back to `read-only`).
pub const DEFAULT_CONFIG: &[&str] = &[
    "approval_policy=\"never\"",
    "sandbox_mode=\"danger-full-access\"",
];

#[derive(Debug, Clone, PartialEq)]
pub struct CodexOutcome {
    /// The last agent message of the turn.
    pub response: String,
    /// The thread id, for `resume`.
    pub session_id: String,
    /// Actions of the agent: messages, commands, file changes and tool calls.
    pub turns: u32,
    /// The thread's running token totals, as the CLI reports them.
    pub usage: Usage,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the Codex CLI `{0}` was not found: install it (`npm install -g @openai/codex`) or set its path in .murmur/murmur.yaml"
    )]
    Missing(String),
    #[error("cannot start the Codex CLI: {0}")]
    Spawn(std::io::Error),
    #[error("no output for {}s: the agent looks hung and was stopped", .0.as_secs())]
    Idle(Duration),
    #[error("the model is overloaded or rate limited: {0}")]
    Overloaded(String),
    #[error("the Codex CLI exited with status {code}: {detail}")]
    Exit { code: i32, detail: String },
    #[error("the agent reported an error: {0}")]
    Reported(String),
    /// `resume` named a thread the CLI has no rollout file for (another `CODEX_HOME`, or it was
    /// stopped before saving one).
    #[error("session {0} was not saved by the CLI, so it cannot be resumed")]
    SessionNotFound(String),
    #[error("the Codex CLI ended without completing its turn")]
    NoResult,
    #[error("the agent was stopped")]
    Stopped,
    #[error("lost contact with the Codex CLI: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Worth another attempt: a hang or a busy model, not a broken setup.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Idle(_) | Error::Overloaded(_) | Error::NoResult
        )
    }
}

/// The command line, exactly as it is run (the prompt goes to stdin).
pub fn arguments(request: &CodexRequest) -> Vec<String> {
    let mut args = vec!["exec".to_owned()];
    if request.resume.is_some() {
        args.push("resume".to_owned());
    }
    args.extend(["--json".to_owned(), "--skip-git-repo-check".to_owned()]);
    if let Some(model) = &request.model {
        args.extend(["--model".to_owned(), model.clone()]);
    }
    let mut config: Vec<String> = DEFAULT_CONFIG.iter().map(|c| (*c).to_owned()).collect();
    if let Some(system) = &request.system_prompt {
        // A JSON string is a valid TOML basic string.
        let quoted = serde_json::Value::from(system.as_str()).to_string();
        config.push(format!("developer_instructions={quoted}"));
    }
    config.extend(request.extra_config.iter().cloned());
    for value in config {
        args.extend(["-c".to_owned(), value]);
    }
    if let Some(session) = &request.resume {
        args.push(session.clone());
    }
    args.push("-".to_owned());
    args
}

/// What the transcript said, as far as the outcome needs it.
#[derive(Debug, Default)]
struct Transcript {
    thread_id: Option<String>,
    response: String,
    turns: u32,
    usage: Option<Usage>,
    failure: Option<String>,
    last_error: Option<String>,
}

/// Runs one turn to `turn.completed`, streaming readable lines and the session id.
/// `stop` is borrowed so that a caller may run another turn under the same stop signal.
pub async fn run(
    request: CodexRequest,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<CodexOutcome, Error> {
    let args = arguments(&request);
    let mut cli = Cli::start(&request.binary, &args, &request.workdir, &request.env, true)
        .map_err(|e| match e {
            StartError::Missing(binary) => Error::Missing(binary),
            StartError::Spawn(e) => Error::Spawn(e),
        })?;
    let child = &mut cli.child;
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = request.prompt.clone();
        // A CLI that exits early closes the pipe; its exit status tells why, not this write.
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
        });
    }
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_stderr(err, updates.clone())));
    let stdout = child.stdout.take().ok_or(Error::NoResult)?;
    let resume = request.resume.as_deref();
    let transcript = tokio::select! {
        read = read_stream(stdout, &updates, request.idle_timeout, resume) => read,
        _ = stop => { cli.kill_tree(); let _ = cli.child.wait().await; return Err(Error::Stopped); }
    };
    if matches!(transcript, Err(Error::Idle(_))) {
        cli.kill_tree();
    }
    let status = cli.child.wait().await?;
    let stderr_text = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    finish(transcript?, status, &stderr_text, resume)
}

/// Turns the transcript and the exit status into the outcome.
fn finish(
    transcript: Transcript,
    status: std::process::ExitStatus,
    stderr: &str,
    resume: Option<&str>,
) -> Result<CodexOutcome, Error> {
    if let Some(session) = resume
        && stderr.contains("no rollout found for thread id")
    {
        return Err(Error::SessionNotFound(session.to_owned()));
    }
    if let Some(failure) = transcript.failure {
        if looks_overloaded(&failure) {
            return Err(Error::Overloaded(failure));
        }
        return Err(Error::Reported(failure));
    }
    let (Some(usage), Some(session_id)) = (transcript.usage, transcript.thread_id) else {
        if let Some(error) = transcript.last_error.filter(|e| looks_overloaded(e)) {
            return Err(Error::Overloaded(error));
        }
        return match status.code() {
            Some(0) | None => Err(Error::NoResult),
            Some(code) => Err(Error::Exit {
                code,
                detail: tail(stderr, 5).unwrap_or_else(|| "no output".to_owned()),
            }),
        };
    };
    Ok(CodexOutcome {
        response: transcript.response,
        session_id,
        turns: transcript.turns,
        usage,
    })
}

/// The last `lines` non-empty lines of `text`, if any.
fn tail(text: &str, lines: usize) -> Option<String> {
    let mut last: Vec<&str> = text
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(lines)
        .collect();
    last.reverse();
    (!last.is_empty()).then(|| last.join("\n"))
}

/// How Codex 0.169 words a busy model: `exceeded retry limit, last status: 429 Too Many
/// Requests`, `We're currently experiencing high demand, ...` (500), `unexpected status 503
/// Service Unavailable: ...`.
fn looks_overloaded(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "overloaded",
        "rate limit",
        "rate_limit",
        "too many requests",
        "high demand",
        "429",
        "503",
        "529",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Reads stdout until it closes; `Err(Idle)` after `idle` without progress.
async fn read_stream(
    stdout: impl AsyncRead + Unpin,
    updates: &mpsc::UnboundedSender<Update>,
    idle: Duration,
    resume: Option<&str>,
) -> Result<Transcript, Error> {
    let mut lines = BufReader::new(stdout).lines();
    let mut transcript = Transcript::default();
    let mut deadline = Instant::now() + idle;
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Err(_) => return Err(Error::Idle(idle)),
            Ok(line) => line?,
        };
        let Some(line) = line else {
            return Ok(transcript);
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(event) => {
                if event.is_progress() {
                    deadline = Instant::now() + idle;
                }
                report(&event, updates, resume);
                record(&mut transcript, event);
            }
            Err(malformed) => send_line(
                updates,
                Stream::Stderr,
                format!("murmur: skipped a line: {malformed}"),
            ),
        }
    }
}

fn record(transcript: &mut Transcript, event: StreamEvent) {
    match event {
        StreamEvent::ThreadStarted { thread_id } => transcript.thread_id = Some(thread_id),
        StreamEvent::AgentMessage(text) => {
            transcript.turns += 1;
            transcript.response = text;
        }
        StreamEvent::CommandFinished { .. } | StreamEvent::Step { .. } => transcript.turns += 1,
        StreamEvent::TurnCompleted(usage) => transcript.usage = Some(usage),
        StreamEvent::TurnFailed(message) => transcript.failure = Some(message),
        StreamEvent::Error(message) => transcript.last_error = Some(message),
        StreamEvent::TurnStarted
        | StreamEvent::CommandStarted { .. }
        | StreamEvent::Reasoning(_)
        | StreamEvent::Warning(_)
        | StreamEvent::Other => {}
    }
}

fn report(event: &StreamEvent, updates: &mpsc::UnboundedSender<Update>, resume: Option<&str>) {
    if let StreamEvent::ThreadStarted { thread_id } = event {
        let _ = updates.send(Update::Session(thread_id.clone()));
        if let Some(asked) = resume.filter(|asked| asked != thread_id) {
            // `codex exec resume` takes a non-UUID as a thread *name* and, finding none,
            // silently starts a new thread.
            let warning = format!("murmur: asked to resume {asked}, but codex started {thread_id}");
            send_line(updates, Stream::Stderr, warning);
        }
    }
    for (stream, text) in event.lines() {
        send_line(updates, stream, text);
    }
}

#[cfg(test)]
mod tests;
