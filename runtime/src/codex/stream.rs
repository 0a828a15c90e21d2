//! `codex exec --json` lines, read one at a time. Only what the engine uses is typed; anything
//! else is kept as `Other` so new CLI versions do not break us.
//!
//! Every line is `{"type": ...}`: `thread.started` (`thread_id`, first), `turn.started`,
//! `item.started` / `item.updated` / `item.completed` (`item.type`: `agent_message`,
//! `reasoning`, `command_execution`, `file_change`, `mcp_tool_call`, `web_search`,
//! `todo_list`, `error`, ...), `turn.completed` (`usage`), `turn.failed` (`error.message`) and
//! `error` (`message`: a failed model call, or a retry notice).

use serde::Deserialize;
use serde_json::Value;

use crate::Stream;

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The first line: the thread (session) this conversation lives in.
    ThreadStarted {
        thread_id: String,
    },
    TurnStarted,
    CommandStarted {
        command: String,
    },
    CommandFinished {
        command: String,
        exit_code: Option<i32>,
        /// The command's stdout and stderr, interleaved.
        output: String,
        /// `completed`, `failed` or `declined`.
        status: String,
    },
    AgentMessage(String),
    Reasoning(String),
    /// Another completed action of the agent: a file change, an MCP tool call, a web search.
    Step {
        kind: String,
        summary: String,
    },
    /// An `error` item: something the CLI reports and carries on after (an unknown model's
    /// metadata, for one).
    Warning(String),
    /// A top-level `error` line: a failed model call (`turn.failed` follows when it is final)
    /// or a notice that the CLI is reconnecting.
    Error(String),
    TurnCompleted(Usage),
    TurnFailed(String),
    Other,
}

impl StreamEvent {
    /// Whether the line shows the agent moving on. `error` lines do not: a CLI stuck
    /// reconnecting prints one every few seconds, and must still count as idle.
    pub fn is_progress(&self) -> bool {
        !matches!(self, StreamEvent::Error(_))
    }

    /// The readable lines this event shows the user: messages as they are, one line per
    /// command, its exit and other actions, and the CLI's warnings and errors on stderr.
    pub fn lines(&self) -> Vec<(Stream, String)> {
        let out = |text: String| vec![(Stream::Stdout, text)];
        match self {
            StreamEvent::AgentMessage(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (Stream::Stdout, l.to_owned()))
                .collect(),
            StreamEvent::CommandStarted { command } => out(format!("[exec] {}", clip(command))),
            StreamEvent::CommandFinished {
                exit_code,
                output,
                status,
                ..
            } => {
                let mark = exit_code.map_or_else(|| status.clone(), |code| format!("exit {code}"));
                let first = clip(output.lines().next().unwrap_or(""));
                out(format!("[{mark}] {first}").trim_end().to_owned())
            }
            StreamEvent::Step { kind, summary } => out(format!("[{kind}] {}", clip(summary))),
            StreamEvent::Warning(message) => vec![(Stream::Stderr, format!("[codex] {message}"))],
            StreamEvent::Error(message) => {
                vec![(Stream::Stderr, format!("[codex error] {message}"))]
            }
            StreamEvent::ThreadStarted { .. }
            | StreamEvent::TurnStarted
            | StreamEvent::Reasoning(_)
            | StreamEvent::TurnCompleted(_)
            | StreamEvent::TurnFailed(_)
            | StreamEvent::Other => vec![],
        }
    }
}

/// At most 200 characters, with an ellipsis when cut.
fn clip(text: &str) -> String {
    crate::lines::clip(text, 200)
}

/// Token counts of `turn.completed`. The CLI reports the thread's running totals: a resumed
/// thread's counts include the earlier runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub reasoning_output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a codex exec --json line ({reason}): {excerpt}")]
pub struct Malformed {
    pub reason: String,
    pub excerpt: String,
}

/// One line of `codex exec --json` output.
pub fn parse_line(line: &str) -> Result<StreamEvent, Malformed> {
    let malformed = |reason: &str| Malformed {
        reason: reason.to_owned(),
        excerpt: line.chars().take(120).collect(),
    };
    let value: Value = serde_json::from_str(line).map_err(|e| malformed(&e.to_string()))?;
    let kind = text(&value, "type").ok_or_else(|| malformed("no `type`"))?;
    Ok(match kind.as_str() {
        "thread.started" => StreamEvent::ThreadStarted {
            thread_id: text(&value, "thread_id")
                .ok_or_else(|| malformed("thread.started without `thread_id`"))?,
        },
        "turn.started" => StreamEvent::TurnStarted,
        "turn.completed" => StreamEvent::TurnCompleted(
            value
                .get("usage")
                .map(|u| Usage::deserialize(u).map_err(|e| malformed(&e.to_string())))
                .transpose()?
                .unwrap_or_default(),
        ),
        "turn.failed" => StreamEvent::TurnFailed(
            value
                .get("error")
                .and_then(|e| text(e, "message"))
                .unwrap_or_else(|| "the turn failed".to_owned()),
        ),
        "error" => StreamEvent::Error(text(&value, "message").unwrap_or_default()),
        "item.started" | "item.completed" => {
            let item = value
                .get("item")
                .ok_or_else(|| malformed("an item line without `item`"))?;
            item_event(item, kind == "item.completed")
        }
        _ => StreamEvent::Other,
    })
}

fn item_event(item: &Value, completed: bool) -> StreamEvent {
    let body = |key| text(item, key).unwrap_or_default();
    match (text(item, "type").as_deref(), completed) {
        (Some("command_execution"), false) => StreamEvent::CommandStarted {
            command: body("command"),
        },
        (Some("command_execution"), true) => StreamEvent::CommandFinished {
            command: body("command"),
            exit_code: item
                .get("exit_code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            output: body("aggregated_output"),
            status: body("status"),
        },
        (Some("agent_message"), true) => StreamEvent::AgentMessage(body("text")),
        (Some("reasoning"), true) => StreamEvent::Reasoning(body("text")),
        (Some("error"), _) => StreamEvent::Warning(body("message")),
        (Some("file_change"), true) => StreamEvent::Step {
            kind: "file_change".to_owned(),
            summary: file_changes(item),
        },
        (Some("mcp_tool_call"), true) => StreamEvent::Step {
            kind: "mcp".to_owned(),
            summary: format!("{}.{} {}", body("server"), body("tool"), body("status")),
        },
        (Some("web_search"), true) => StreamEvent::Step {
            kind: "web_search".to_owned(),
            summary: body("query"),
        },
        (Some("collab_tool_call"), true) => StreamEvent::Step {
            kind: "agent".to_owned(),
            summary: format!("{} {}", body("tool"), body("status")),
        },
        _ => StreamEvent::Other,
    }
}

/// `update src/a.rs, add b.rs (failed)`.
fn file_changes(item: &Value) -> String {
    let changes: Vec<String> = item
        .get("changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let kind = text(c, "kind").unwrap_or_default();
            format!("{kind} {}", text(c, "path").unwrap_or_default())
        })
        .collect();
    let mut summary = changes.join(", ");
    if text(item, "status").as_deref() == Some("failed") {
        summary.push_str(" (failed)");
    }
    summary
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lines_the_engine_needs() {
        assert_eq!(
            parse_line(r#"{"type":"thread.started","thread_id":"t-1"}"#),
            Ok(StreamEvent::ThreadStarted {
                thread_id: "t-1".into()
            })
        );
        let started = r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#;
        assert_eq!(
            parse_line(started),
            Ok(StreamEvent::CommandStarted {
                command: "bash -lc ls".into()
            })
        );
        let done = r#"{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"bash -lc ls","aggregated_output":"a.txt\n","exit_code":2,"status":"failed"}}"#;
        assert_eq!(
            parse_line(done),
            Ok(StreamEvent::CommandFinished {
                command: "bash -lc ls".into(),
                exit_code: Some(2),
                output: "a.txt\n".into(),
                status: "failed".into()
            })
        );
        let patch = r#"{"type":"item.completed","item":{"id":"item_1","type":"file_change","changes":[{"path":"src/a.rs","kind":"update"},{"path":"b.rs","kind":"add"}],"status":"completed"}}"#;
        assert_eq!(
            parse_line(patch),
            Ok(StreamEvent::Step {
                kind: "file_change".into(),
                summary: "update src/a.rs, add b.rs".into()
            })
        );
        let usage = r#"{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":10,"cache_write_input_tokens":0,"output_tokens":40,"reasoning_output_tokens":5}}"#;
        assert_eq!(
            parse_line(usage),
            Ok(StreamEvent::TurnCompleted(Usage {
                input_tokens: 200,
                cached_input_tokens: 10,
                output_tokens: 40,
                reasoning_output_tokens: 5
            }))
        );
        let failed = r#"{"type":"turn.failed","error":{"message":"boom"}}"#;
        assert_eq!(
            parse_line(failed),
            Ok(StreamEvent::TurnFailed("boom".into()))
        );
    }

    #[test]
    fn errors_are_not_progress_but_warnings_are() {
        let retry = parse_line(r#"{"type":"error","message":"Reconnecting... 1/5"}"#).unwrap();
        assert_eq!(retry, StreamEvent::Error("Reconnecting... 1/5".into()));
        assert!(!retry.is_progress());
        let warning = r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `x` not found."}}"#;
        let warning = parse_line(warning).unwrap();
        assert_eq!(
            warning,
            StreamEvent::Warning("Model metadata for `x` not found.".into())
        );
        assert!(warning.is_progress());
    }

    #[test]
    fn events_render_as_readable_lines() {
        let finished = |exit_code, output: &str| StreamEvent::CommandFinished {
            command: "ls".into(),
            exit_code,
            output: output.into(),
            status: "failed".into(),
        };
        assert_eq!(
            finished(Some(0), "").lines(),
            [(Stream::Stdout, "[exit 0]".into())]
        );
        assert_eq!(
            finished(None, "first\nsecond").lines(),
            [(Stream::Stdout, "[failed] first".into())]
        );
        let long = StreamEvent::CommandStarted {
            command: "é".repeat(300),
        };
        assert_eq!(long.lines()[0].1, format!("[exec] {}…", "é".repeat(200)));
        assert_eq!(
            StreamEvent::AgentMessage("a\n\nb".into()).lines(),
            [(Stream::Stdout, "a".into()), (Stream::Stdout, "b".into())]
        );
        assert_eq!(
            StreamEvent::Error("boom".into()).lines(),
            [(Stream::Stderr, "[codex error] boom".into())]
        );
        assert!(
            StreamEvent::TurnCompleted(Usage::default())
                .lines()
                .is_empty()
        );
    }

    #[test]
    fn unknown_lines_pass_and_broken_ones_are_reported() {
        for other in [
            r#"{"type":"item.updated","item":{"id":"i","type":"todo_list","items":[]}}"#,
            r#"{"type":"item.completed","item":{"id":"i","type":"todo_list","items":[]}}"#,
            r#"{"type":"item.completed","item":{"id":"i","type":"something_new"}}"#,
            r#"{"type":"item.plan.delta","item_id":"i","delta":"x"}"#,
        ] {
            assert_eq!(parse_line(other), Ok(StreamEvent::Other), "{other}");
        }
        let broken = parse_line("{not json").unwrap_err();
        assert!(
            broken
                .to_string()
                .starts_with("not a codex exec --json line"),
            "{broken}"
        );
        assert!(parse_line(r#"{"no":"type"}"#).is_err());
        assert!(parse_line(r#"{"type":"thread.started"}"#).is_err());
        assert!(parse_line(r#"{"type":"item.completed"}"#).is_err());
    }
}

/// Real transcripts of Codex 0.169.0 (recorded by `testkit`), read line by line.
#[cfg(test)]
mod recorded {
    use super::*;

    fn events(transcript: &str) -> Vec<StreamEvent> {
        transcript
            .lines()
            .map(|line| parse_line(line).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn a_successful_turn() {
        let events = events(include_str!("../../../testkit/fixtures/codex-exec.jsonl"));
        assert!(
            matches!(&events[0], StreamEvent::ThreadStarted { thread_id } if !thread_id.is_empty()),
            "thread first: {events:?}"
        );
        assert_eq!(events[1], StreamEvent::TurnStarted);
        assert!(
            matches!(&events[2], StreamEvent::CommandStarted { command } if command.contains("git add hello.txt"))
        );
        assert!(matches!(
            &events[3],
            StreamEvent::CommandFinished { exit_code: Some(0), status, .. } if status == "completed"
        ));
        assert_eq!(
            events[4],
            StreamEvent::AgentMessage("Done: created hello.txt".into())
        );
        assert!(matches!(
            &events[5],
            StreamEvent::TurnCompleted(usage) if usage.input_tokens == 200 && usage.output_tokens == 40
        ));
    }

    #[test]
    fn a_failed_model_call() {
        let events = events(include_str!(
            "../../../testkit/fixtures/codex-exec-error.jsonl"
        ));
        let message = "exceeded retry limit, last status: 429 Too Many Requests";
        assert_eq!(events[2], StreamEvent::Error(message.into()));
        assert_eq!(events[3], StreamEvent::TurnFailed(message.into()));
    }
}
