//! A gate check the engine hands a placement like an attempt (`RuntimeSpec::Check`): it runs on
//! the machine that holds the agent's workspace, in the agent's worktree there, and ends with a
//! typed verdict (`Finished::verdict`).

use serde::{Deserialize, Serialize};

use crate::CodingSpec;

/// What a `ci` or `review` check runs. The attempt's workspace names the agent's repository,
/// branch and worktree; its `env` carries the check's `MURMUR_*` context.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum CheckSpec {
    /// The workspace's check command, run in the agent's worktree.
    Ci { command: String },
    /// A reviewer session over the branch's diff against the base, in the agent's worktree.
    Review {
        /// The agent whose change is reviewed (its key's slug names the check).
        agent: String,
        reviewer: Reviewer,
    },
}

/// The reviewer's coding runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "runtime", rename_all = "snake_case")]
pub enum Reviewer {
    Claude(CodingSpec),
    Codex(CodingSpec),
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "text", rename_all = "snake_case")]
pub enum Verdict {
    /// The agent's work passes; a note for the log.
    Passed(String),
    /// The agent's work does not pass: the text (a failed command's last lines, the reviewer's
    /// requests) goes back to the agent as a follow-up.
    Failed(String),
    /// The gate cannot be checked at all (no branch, a command that cannot start): the agent
    /// fails.
    Broken(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire shape a worker of another build reads: pinned.
    #[test]
    fn checks_and_verdicts_have_a_stable_wire_shape() {
        let ci = CheckSpec::Ci {
            command: "make test".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&ci).expect("json"),
            serde_json::json!({ "gate": "ci", "command": "make test" })
        );
        let failed = Verdict::Failed("exit 3".to_owned());
        let text = serde_json::to_string(&failed).expect("json");
        assert_eq!(text, r#"{"verdict":"failed","text":"exit 3"}"#);
        assert_eq!(
            serde_json::from_str::<Verdict>(&text).expect("back"),
            failed
        );
    }
}
