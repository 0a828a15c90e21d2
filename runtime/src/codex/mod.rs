//! The `codex` runtime: the Codex CLI headless (`codex exec --json`) in the agent's worktree,
//! as an adapter of the [`crate::cli_agent`] driver. Its JSONL is read as it arrives; the
//! thread id is reported the moment it is seen, so the engine can checkpoint it and resume
//! the same conversation (`codex exec resume <id>`) after a crash instead of starting over.

mod mcp;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use crate::cli_agent::{Error, Overload};
pub use stream::{Malformed, StreamEvent, Usage, parse_line};

use crate::cli_agent::{self, Agent, Invocation, Program, Verdict};
use crate::lines::send_line;
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

/// The Codex CLI as the driver's errors name it. Codex 0.169 words a busy model `exceeded
/// retry limit, last status: 429 Too Many Requests`, `We're currently experiencing high
/// demand, ...` (500), `unexpected status 503 Service Unavailable: ...`.
pub static PROGRAM: Program = Program {
    name: "Codex CLI",
    install: "npm install -g @openai/codex",
    unfinished: "completing its turn",
    session: "thread",
    unknown_session: "no rollout found for thread id",
    exit_detail_lines: 5,
    overloaded: &[
        "overloaded",
        "rate limit",
        "rate_limit",
        "too many requests",
        "high demand",
        "429",
        "503",
        "529",
    ],
};

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
    config.extend(mcp::config(&request.env));
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

/// Runs the CLI once, to `turn.completed`, streaming readable lines and the session id.
/// `stop` is borrowed so that a caller may run another turn under the same stop signal.
pub async fn run(
    request: CodexRequest,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<CodexOutcome, Error> {
    cli_agent::run(&request, &updates, stop).await
}

/// Runs a whole turn: [`run`], parked and tried again while the model is overloaded, and in
/// a new thread when the one to resume was never saved (see [`cli_agent`]).
pub async fn turn(
    request: CodexRequest,
    overload: Overload,
    updates: mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<CodexOutcome, Error> {
    cli_agent::turn(request, overload, &updates, stop).await
}

/// What the transcript said, as far as the outcome needs it.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    thread_id: Option<String>,
    response: String,
    turns: u32,
    usage: Option<Usage>,
    failure: Option<String>,
    last_error: Option<String>,
}

impl Agent for CodexRequest {
    type Event = StreamEvent;
    type Events = [StreamEvent; 1];
    type Malformed = Malformed;
    type Transcript = Transcript;
    type Outcome = CodexOutcome;

    const PROGRAM: &'static Program = &PROGRAM;

    fn invocation(&self) -> Invocation<'_> {
        Invocation {
            binary: &self.binary,
            args: arguments(self),
            workdir: &self.workdir,
            env: &self.env,
            stdin: Some(self.prompt.clone()),
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

    fn parse(line: &str) -> Result<[StreamEvent; 1], Malformed> {
        parse_line(line).map(|event| [event])
    }

    fn is_progress(event: &StreamEvent) -> bool {
        event.is_progress()
    }

    fn report(&self, event: &StreamEvent, updates: &mpsc::UnboundedSender<Update>) {
        report(event, updates, self.resume.as_deref());
    }

    fn record(transcript: &mut Transcript, event: StreamEvent) {
        record(transcript, event);
    }

    fn verdict(transcript: Transcript, _stderr: &str) -> Verdict<CodexOutcome> {
        if let Some(failure) = transcript.failure {
            return Verdict::Failed(failure);
        }
        let (Some(usage), Some(session_id)) = (transcript.usage, transcript.thread_id) else {
            // A failed model call is an `error` line; `turn.failed` follows only when final.
            let busy = transcript
                .last_error
                .filter(|error| PROGRAM.says_overloaded(error));
            return Verdict::Unfinished { busy };
        };
        Verdict::Answered(CodexOutcome {
            response: transcript.response,
            session_id,
            turns: transcript.turns,
            usage,
        })
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
