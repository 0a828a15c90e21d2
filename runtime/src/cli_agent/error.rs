//! Why an agent CLI's turn failed, in the words of whichever CLI it was.

use std::time::Duration;

/// An agent CLI as its error messages name it, and how it words what the driver looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// `Claude Code CLI`, `Codex CLI`.
    pub name: &'static str,
    /// The command that installs it.
    pub install: &'static str,
    /// What it failed to do when its stream ends too early: `ended without {unfinished}`.
    pub unfinished: &'static str,
    /// What it calls a conversation: `session`, `thread`.
    pub session: &'static str,
    /// What it prints on stderr when asked to resume a conversation it never saved.
    pub(crate) unknown_session: &'static str,
    /// How many of its last stderr lines explain a failed exit.
    pub(crate) exit_detail_lines: usize,
    /// Lower-case words in its messages that mean a busy model (overloaded, rate limited).
    pub(crate) overloaded: &'static [&'static str],
}

impl Program {
    /// Whether `text` says the model is overloaded or rate limited, as this CLI words it.
    pub fn says_overloaded(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.overloaded.iter().any(|needle| lower.contains(needle))
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the {program} `{binary}` was not found: install it (`{}`) or set its path in .murmur/murmur.yaml",
        program.install
    )]
    Missing {
        program: &'static Program,
        binary: String,
    },
    #[error("cannot start the {program}: {source}")]
    Spawn {
        program: &'static Program,
        source: std::io::Error,
    },
    #[error("no output for {}s: the agent looks hung and was stopped", .0.as_secs())]
    Idle(Duration),
    #[error("the model is overloaded or rate limited: {0}")]
    Overloaded(String),
    /// Still overloaded after every parked retry of a turn.
    #[error("the model stayed overloaded: {0}")]
    StayedOverloaded(String),
    #[error("the {program} exited with status {code}: {detail}")]
    Exit {
        program: &'static Program,
        code: i32,
        detail: String,
    },
    #[error("the agent reported an error: {0}")]
    Reported(String),
    /// `resume` named a session the CLI never saved (it was stopped before saving one, or
    /// it keeps its sessions elsewhere).
    #[error("session {0} was not saved by the CLI, so it cannot be resumed")]
    SessionNotFound(String),
    #[error("the {} ended without {}", .0.name, .0.unfinished)]
    NoResult(&'static Program),
    #[error("the agent was stopped")]
    Stopped,
    #[error("lost contact with the {program}: {source}")]
    Io {
        program: &'static Program,
        source: std::io::Error,
    },
}

impl Error {
    /// Worth another attempt: a hang or a busy model, not a broken setup.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Idle(_) | Error::Overloaded(_) | Error::StayedOverloaded(_) | Error::NoResult(_)
        )
    }
}
