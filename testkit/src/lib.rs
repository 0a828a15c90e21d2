//! Test peers for Murmur's integration tests.
//!
//! [`ModelServer`] is a scripted Anthropic Messages API server: point the real Claude Code CLI
//! at it with `ANTHROPIC_BASE_URL` and it answers the CLI's agent loop turn by turn from a
//! script, recording every request so tests can assert what the CLI sent. [`claude_cli`] finds
//! the CLI installed from the repository's `package.json` and builds an isolated command for it.
//! See `testkit/README.md` for what the CLI was observed to do.

mod anthropic;
pub mod claude_cli;
mod model_server;
mod turn;

pub use anthropic::{INPUT_TOKENS, OUTPUT_TOKENS};
pub use model_server::{HELPER_REPLY, ModelServer, Recorded, RequestKind};
pub use turn::Turn;
