//! What a running attempt reports, and how it ended.

use serde::{Deserialize, Serialize};

use crate::{LocalPullRequest, Verdict};

/// One report of a running attempt, in the order it happened.
#[expect(
    clippy::large_enum_variant,
    reason = "one `Ended` per attempt; a box would only move the allocation, lines stay small"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptUpdate {
    Line {
        stream: Stream,
        text: String,
    },
    /// The agent's conversation, as soon as it is known (runtimes with sessions).
    Session {
        id: String,
    },
    /// The placement put the attempt on this machine (sent by the placement, not the attempt).
    Placed {
        machine: String,
        /// The machine the attempt was meant for (its `affinity`), gone: this one resumes the
        /// agent from its branch instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instead_of: Option<String>,
    },
    /// The machine is ready and the workspace prepared: the agent's runtime starts now.
    Running,
    /// The last report of an attempt.
    Ended {
        outcome: Result<Finished, AttemptFailure>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A successful attempt's answer and deliverables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub response: String,
    pub delivered: Delivered,
    /// `out: pr` without a GitHub remote: the pull request the engine records.
    pub local_pull_request: Option<LocalPullRequest>,
    /// A gate check's verdict (`RuntimeSpec::Check`); an agent's turn has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// An agent's deliverables: its branch and commits, pull requests, and what the model cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default)]
    pub commits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_stat: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// The branch's diff, for `out: diff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Delivered {
    pub fn is_empty(&self) -> bool {
        self == &Delivered::default()
    }
}

/// Why an attempt did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    pub kind: FailureKind,
    /// For people: what happened and, where it helps, what to do.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The agent's work failed (a non-zero exit, a runtime error, a failed delivery).
    Failed,
    /// The agent's `timeout` was up.
    TimedOut,
    /// Stopped on request (a cancel, a kill, a lost lease).
    Stopped,
    /// The attempt could not run as decided and would fail the same way again (a refused
    /// script reference).
    Refused,
    /// The machine running it stopped answering.
    Lost,
}

impl AttemptFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether another attempt may succeed where this one failed (within the agent's `retries`).
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, FailureKind::Refused | FailureKind::Stopped)
    }
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
