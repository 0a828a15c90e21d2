//! Run and agent states, and their one mapping to the text stored in the database and shown
//! in JSON. Renaming a variant's text is a schema change.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Waiting for upstream agents.
    Pending,
    /// Ready, waiting for a machine.
    Queued,
    Starting,
    Running,
    TaskComplete,
    Idle,
    Sleeping,
    ChecksPending,
    Destroying,
    Completed,
    Failed,
    Canceled,
    /// An upstream failed, so this agent never ran.
    Skipped,
}

macro_rules! text_mapping {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(<$ty>::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_mapping!(RunStatus {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Canceled => "canceled",
});

text_mapping!(AgentState {
    Pending => "pending",
    Queued => "queued",
    Starting => "starting",
    Running => "running",
    TaskComplete => "task-complete",
    Idle => "idle",
    Sleeping => "sleeping",
    ChecksPending => "checks-pending",
    Destroying => "destroying",
    Completed => "completed",
    Failed => "failed",
    Canceled => "canceled",
    Skipped => "skipped",
});

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled
        )
    }
}

impl AgentState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AgentState::Completed | AgentState::Failed | AgentState::Canceled | AgentState::Skipped
        )
    }

    /// Its work is done and downstream agents may use it: completed, or resting on (or
    /// asleep on) its machine, ready for a follow-up.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            AgentState::Completed | AgentState::Idle | AgentState::Sleeping
        )
    }

    /// Holding a machine: a crash in these states means the work was in flight.
    pub fn holds_machine(self) -> bool {
        matches!(self, AgentState::Starting | AgentState::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mapping_is_pinned() {
        let runs: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            runs,
            ["queued", "running", "completed", "failed", "canceled"]
        );
        let agents: Vec<&str> = AgentState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            agents,
            [
                "pending",
                "queued",
                "starting",
                "running",
                "task-complete",
                "idle",
                "sleeping",
                "checks-pending",
                "destroying",
                "completed",
                "failed",
                "canceled",
                "skipped"
            ]
        );
        for state in AgentState::ALL {
            assert_eq!(AgentState::parse(state.as_str()), Some(*state));
            let json = serde_json::to_string(state).expect("serialises");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }
}
