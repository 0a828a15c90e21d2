//! The `claude` runtime: Claude Code headless in the agent's worktree, as an adapter of the
//! [`crate::cli_agent`] driver. Its stream is read as it arrives; the session id is reported
//! the moment it is seen, so the engine can checkpoint it and resume the same conversation
//! after a crash instead of starting over.

mod mcp;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use crate::cli_agent::{Error, Overload};
pub use stream::{Malformed, StreamEvent, Summary, parse_line};

use crate::cli_agent::{self, Agent, Invocation, Program, Verdict, tail};
use crate::lines::{clip, send_line};
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

/// Claude Code as the driver's errors name it.
pub static PROGRAM: Program = Program {
    name: "Claude Code CLI",
    install: "npm install -g @anthropic-ai/claude-code",
    unfinished: "a result line",
    session: "session",
    unknown_session: "No conversation found with session ID",
    exit_detail_lines: 1,
    overloaded: &["overloaded", "rate limit", "rate_limit", "529", "429"],
};

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
    let murmur = mcp::config(&request.env);
    let mut allowed = request.allowed_tools.clone();
    if murmur.is_some() {
        allowed.push(mcp::ALLOWED.to_owned());
    }
    if !allowed.is_empty() {
        args.extend(["--allowedTools".to_owned(), allowed.join(" ")]);
    }
    if let Some(config) = murmur {
        args.extend(["--mcp-config".to_owned(), config]);
    }
    if let Some(session) = &request.resume {
        args.extend(["--resume".to_owned(), session.clone()]);
    }
    args
}

/// Runs the CLI once, to its `result` line, streaming readable lines and the session id.
/// `stop` is borrowed so that a caller may run another turn under the same stop signal.
pub async fn run(
    request: ClaudeRequest,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<ClaudeOutcome, Error> {
    cli_agent::run(&request, &updates, stop).await
}

/// Runs a whole turn: [`run`], parked and tried again while the model is overloaded, and in
/// a new session when the one to resume was never saved (see [`cli_agent`]).
pub async fn turn(
    request: ClaudeRequest,
    overload: Overload,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<ClaudeOutcome, Error> {
    cli_agent::turn(request, overload, &updates, stop).await
}

impl Agent for ClaudeRequest {
    type Event = StreamEvent;
    type Events = Vec<StreamEvent>;
    type Malformed = Malformed;
    /// The last `result` line.
    type Transcript = Option<Summary>;
    type Outcome = ClaudeOutcome;

    const PROGRAM: &'static Program = &PROGRAM;

    fn invocation(&self) -> Invocation<'_> {
        Invocation {
            binary: &self.binary,
            args: arguments(self),
            workdir: &self.workdir,
            env: &self.env,
            stdin: None,
            idle_timeout: self.idle_timeout,
        }
    }

    fn resume(&self) -> Option<&str> {
        self.resume.as_deref()
    }

    fn fresh(&self) -> Self {
        Self {
            resume: None,
            ..self.clone()
        }
    }

    fn parse(line: &str) -> Result<Vec<StreamEvent>, Malformed> {
        parse_line(line)
    }

    fn report(&self, event: &StreamEvent, updates: &mpsc::UnboundedSender<Update>) {
        report(event, updates);
    }

    fn record(transcript: &mut Option<Summary>, event: StreamEvent) {
        if let StreamEvent::Result(summary) = event {
            *transcript = Some(summary);
        }
    }

    fn verdict(summary: Option<Summary>, stderr: &str) -> Verdict<ClaudeOutcome> {
        let Some(summary) = summary else {
            // Without a result line, only stderr can tell that the model was busy.
            let busy = PROGRAM
                .says_overloaded(stderr)
                .then(|| tail(stderr, 1).unwrap_or_default());
            return Verdict::Unfinished { busy };
        };
        if summary.is_error {
            // The subtype says `success` even for an API error; the text is the message.
            return Verdict::Failed(if summary.result.is_empty() {
                summary.subtype
            } else {
                summary.result
            });
        }
        Verdict::Answered(ClaudeOutcome {
            response: summary.result,
            session_id: summary.session_id,
            turns: summary.num_turns,
            cost_usd: summary.total_cost_usd,
        })
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
