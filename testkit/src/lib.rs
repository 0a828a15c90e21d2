//! Test peers for Murmur's integration tests.
//!
//! [`ModelServer`] is a scripted model server speaking two APIs from one script: the Anthropic
//! Messages API, for the real Claude Code CLI (`ANTHROPIC_BASE_URL`), and the OpenAI Responses
//! API, for the real Codex CLI (a custom model provider). It answers the CLI's agent loop turn
//! by turn, recording every request so tests can assert what the CLI sent. [`claude_cli`] and
//! [`codex_cli`] find the CLIs installed from the repository's `package.json` and isolate them.
//! See `testkit/README.md` for what the CLIs were observed to do.

mod anthropic;
pub mod claude_cli;
pub mod codex_cli;
pub mod gce;
pub mod git;
mod model_server;
pub mod moto;
pub mod process;
mod responses;
mod turn;

pub use anthropic::{INPUT_TOKENS, OUTPUT_TOKENS};
pub use model_server::{HELPER_REPLY, ModelServer, Recorded, RequestKind};
pub use turn::Turn;
