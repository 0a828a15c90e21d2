//! The script of a [`crate::ModelServer`]: what each agent-loop model call is answered with.
//! The same turn is rendered in the wire format of whichever API the call used: an Anthropic
//! message (`/v1/messages`) or an OpenAI response (`/v1/responses`).

use serde_json::{Value, json};

/// What the server answers to the next model call of the agent loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// An assistant message with one text block (`stop_reason: end_turn`), or, on the
    /// Responses API, one `message` output item with an `output_text` part.
    Text(String),
    /// An assistant message with one `tool_use` block (`stop_reason: tool_use`), or, on the
    /// Responses API, one `function_call` item whose `arguments` are `input` JSON-encoded.
    /// Claude Code's Bash tool takes `{"command": "..."}` ([`Turn::bash`]); Codex's
    /// `exec_command` takes `{"cmd": "..."}` ([`Turn::exec_command`]).
    ToolUse { name: String, input: Value },
    /// Read the request and never answer (not even the status line), for watchdog tests.
    Hang,
    /// An API error: `status` with body `{"type":"error","error":{"type": kind, "message"}}`
    /// (Anthropic) or `{"error":{"type": kind, "code": kind, "message", "param": null}}` (OpenAI).
    Error {
        status: u16,
        kind: String,
        message: String,
    },
}

impl Turn {
    pub fn text(text: impl Into<String>) -> Turn {
        Turn::Text(text.into())
    }

    pub fn tool_use(name: impl Into<String>, input: Value) -> Turn {
        Turn::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// A `Bash` tool call running `command`.
    pub fn bash(command: impl Into<String>) -> Turn {
        Turn::tool_use("Bash", json!({"command": command.into()}))
    }

    /// A call of Codex's `exec_command` tool (its shell) running `cmd`.
    pub fn exec_command(cmd: impl Into<String>) -> Turn {
        Turn::tool_use("exec_command", json!({"cmd": cmd.into()}))
    }

    pub fn error(status: u16, kind: impl Into<String>, message: impl Into<String>) -> Turn {
        Turn::Error {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// The API's "overloaded" answer (HTTP 529), which clients retry.
    pub fn overloaded() -> Turn {
        Turn::error(529, "overloaded_error", "Overloaded")
    }

    /// The API's rate-limit answer (HTTP 429), which clients retry.
    pub fn rate_limited() -> Turn {
        Turn::error(429, "rate_limit_error", "Rate limited")
    }
}
