//! The `claude` runtime: Claude Code headless in the agent's worktree. Its stream is read as
//! it arrives; the session id is reported the moment it is seen, so the engine can checkpoint
//! it and resume the same conversation after a crash instead of starting over.

mod stream;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot};

pub use stream::{Malformed, StreamEvent, Summary, parse_line};

use crate::lines::{clip, read_stderr, send_line};
use crate::process::{Cli, StartError};
use crate::{Stream, Update};

#[derive(Debug, Clone)]
pub struct ClaudeRequest {
    /// The `claude` executable (from PATH or configuration).
    pub binary: PathBuf,
    pub prompt: String,
    pub workdir: PathBuf,
    pub model: Option<String>,
    /// The persona's text, through `--append-system-prompt`.
    pub system_prompt: Option<String>,
    pub allowed_tools: Vec<String>,
    /// Continue this session (`continues`, follow-ups, crash recovery).
    pub resume: Option<String>,
    /// Credentials and `ANTHROPIC_BASE_URL` reach the CLI only through here.
    pub env: Vec<(String, String)>,
    /// Silence longer than this is a hang: the CLI is killed.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaudeOutcome {
    pub response: String,
    pub session_id: String,
    pub turns: u32,
    pub cost_usd: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the Claude Code CLI `{0}` was not found: install it (`npm install -g @anthropic-ai/claude-code`) or set its path in .murmur/murmur.yaml"
    )]
    Missing(String),
    #[error("cannot start the Claude Code CLI: {0}")]
    Spawn(std::io::Error),
    #[error("no output for {}s: the agent looks hung and was stopped", .0.as_secs())]
    Idle(Duration),
    #[error("the model is overloaded or rate limited: {0}")]
    Overloaded(String),
    #[error("the Claude Code CLI exited with status {code}: {detail}")]
    Exit { code: i32, detail: String },
    #[error("the agent reported an error: {0}")]
    Reported(String),
    /// `--resume` named a session the CLI never saved (it was stopped before its first reply).
    #[error("session {0} was not saved by the CLI, so it cannot be resumed")]
    SessionNotFound(String),
    #[error("the Claude Code CLI ended without a result line")]
    NoResult,
    #[error("the agent was stopped")]
    Stopped,
    #[error("lost contact with the Claude Code CLI: {0}")]
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

/// The command line, exactly as it is run.
pub fn arguments(request: &ClaudeRequest) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        request.prompt.clone(),
        "--output-format".to_owned(),
        "stream-json".to_owned(),
        "--verbose".to_owned(),
    ];
    if let Some(model) = &request.model {
        args.extend(["--model".to_owned(), model.clone()]);
    }
    if let Some(system) = &request.system_prompt {
        args.extend(["--append-system-prompt".to_owned(), system.clone()]);
    }
    if !request.allowed_tools.is_empty() {
        args.extend(["--allowedTools".to_owned(), request.allowed_tools.join(" ")]);
    }
    if let Some(session) = &request.resume {
        args.extend(["--resume".to_owned(), session.clone()]);
    }
    args
}

/// Runs one turn to its `result` line, streaming readable lines and the session id.
/// `stop` is borrowed so that a caller may run another turn under the same stop signal.
pub async fn run(
    request: ClaudeRequest,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<ClaudeOutcome, Error> {
    let args = arguments(&request);
    let mut cli = Cli::start(
        &request.binary,
        &args,
        &request.workdir,
        &request.env,
        false,
    )
    .map_err(|e| match e {
        StartError::Missing(binary) => Error::Missing(binary),
        StartError::Spawn(e) => Error::Spawn(e),
    })?;
    let child = &mut cli.child;
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_stderr(err, updates.clone())));
    let stdout = child.stdout.take().ok_or(Error::NoResult)?;
    let summary = tokio::select! {
        read = read_stream(stdout, &updates, request.idle_timeout) => read,
        _ = stop => { cli.kill_tree(); let _ = cli.child.wait().await; return Err(Error::Stopped); }
    };
    if matches!(summary, Err(Error::Idle(_))) {
        cli.kill_tree();
    }
    let status = cli.child.wait().await?;
    let stderr_text = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    finish(summary?, status, &stderr_text, request.resume.as_deref())
}

/// Turns the last `result` line and the exit status into the outcome.
fn finish(
    summary: Option<Summary>,
    status: std::process::ExitStatus,
    stderr: &str,
    resume: Option<&str>,
) -> Result<ClaudeOutcome, Error> {
    if let Some(session) = resume
        && stderr.contains("No conversation found with session ID")
    {
        return Err(Error::SessionNotFound(session.to_owned()));
    }
    let detail = |fallback: &str| {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(fallback);
        last.trim().to_owned()
    };
    let Some(summary) = summary else {
        if looks_overloaded(stderr) {
            return Err(Error::Overloaded(detail("")));
        }
        return match status.code() {
            Some(0) | None => Err(Error::NoResult),
            Some(code) => Err(Error::Exit {
                code,
                detail: detail("no output"),
            }),
        };
    };
    if summary.is_error {
        let text = if summary.result.is_empty() {
            summary.subtype.clone()
        } else {
            summary.result.clone()
        };
        if looks_overloaded(&text) {
            return Err(Error::Overloaded(text));
        }
        return Err(Error::Reported(text));
    }
    Ok(ClaudeOutcome {
        response: summary.result,
        session_id: summary.session_id,
        turns: summary.num_turns,
        cost_usd: summary.total_cost_usd,
    })
}

fn looks_overloaded(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["overloaded", "rate limit", "rate_limit", "529", "429"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// Reads stdout until it closes; `Err(Idle)` after `idle` without a line.
async fn read_stream(
    stdout: impl AsyncRead + Unpin,
    updates: &mpsc::UnboundedSender<Update>,
    idle: Duration,
) -> Result<Option<Summary>, Error> {
    let mut lines = BufReader::new(stdout).lines();
    let mut summary = None;
    loop {
        let line = match tokio::time::timeout(idle, lines.next_line()).await {
            Err(_) => return Err(Error::Idle(idle)),
            Ok(line) => line?,
        };
        let Some(line) = line else { return Ok(summary) };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(events) => {
                for event in events {
                    report(&event, updates);
                    if let StreamEvent::Result(result) = event {
                        summary = Some(result);
                    }
                }
            }
            Err(malformed) => send_line(
                updates,
                Stream::Stderr,
                format!("murmur: skipped a line: {malformed}"),
            ),
        }
    }
}

fn report(event: &StreamEvent, updates: &mpsc::UnboundedSender<Update>) {
    match event {
        StreamEvent::Init { session_id } => {
            let _ = updates.send(Update::Session(session_id.clone()));
        }
        StreamEvent::Text(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                send_line(updates, Stream::Stdout, line.to_owned());
            }
        }
        StreamEvent::ToolUse { name, input } => send_line(
            updates,
            Stream::Stdout,
            format!("[{name}] {}", clip(input, 200)),
        ),
        StreamEvent::ToolResult { text, is_error } => {
            let mark = if *is_error { "tool error" } else { "tool" };
            let first = text.lines().next().unwrap_or("");
            send_line(
                updates,
                Stream::Stdout,
                format!("[{mark}] {}", clip(first, 200)),
            );
        }
        StreamEvent::Result(_) | StreamEvent::Other => {}
    }
}
