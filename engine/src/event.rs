//! The event log: every fact about a run, appended in order and never changed.

use serde::{Deserialize, Serialize};

/// One fact. Agent events name the agent and, where it matters, the attempt they belong to,
/// so that a late message from an old attempt can never be mistaken for the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted,
    /// Ready: its upstreams succeeded; it waits for a machine.
    AgentQueued {
        slug: String,
    },
    /// The attempt begins: the agent is `starting` while its machine is claimed and its
    /// workspace prepared.
    AgentStarted {
        slug: String,
        attempt: u32,
    },
    /// The attempt's machine is ready and its workspace prepared: the agent's runtime runs.
    AgentRunning {
        slug: String,
        attempt: u32,
    },
    AgentOutput {
        slug: String,
        attempt: u32,
        stream: Stream,
        line: String,
    },
    AgentSucceeded {
        slug: String,
        attempt: u32,
        response: String,
        /// What the agent left behind besides its answer.
        #[serde(default, skip_serializing_if = "Delivered::is_empty")]
        delivered: Delivered,
    },
    /// The agent's conversation is known: checkpointed at once, so a crash resumes it.
    AgentSession {
        slug: String,
        attempt: u32,
        session_id: String,
    },
    AgentFailed {
        slug: String,
        attempt: u32,
        error: String,
    },
    /// The turn is done and the agent stays on its machine, idle, until `sleep_at` (never, for
    /// `on_idle: keep-alive`): downstream agents may use its work already.
    AgentIdle {
        slug: String,
        attempt: u32,
        response: String,
        #[serde(default, skip_serializing_if = "Delivered::is_empty")]
        delivered: Delivered,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sleep_at: Option<String>,
    },
    /// Its machine sleeps: the agent's process is gone, its workspace and session stay, and
    /// the machine is free for others until the agent wakes.
    AgentSlept {
        slug: String,
    },
    /// Woken on its machine: idle again, holding it, until `sleep_at`.
    AgentWoke {
        slug: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sleep_at: Option<String>,
    },
    /// The run has nothing left to do: an idle or sleeping agent lets its machine go for good.
    AgentReleased {
        slug: String,
    },
    /// `murmur sleep` / `murmur wake` from a person, for the driver to carry out.
    SleepRequested {
        slug: String,
    },
    WakeRequested {
        slug: String,
    },
    /// The attempt's placement put it on a machine.
    AgentPlaced {
        slug: String,
        attempt: u32,
        machine: String,
    },
    /// The machine holding the agent's session and workspace (`from`) is gone: the attempt
    /// runs on `machine` instead, resumed from the agent's branch.
    AgentResurrected {
        slug: String,
        attempt: u32,
        from: String,
        machine: String,
    },
    /// The attempt failed within the agent's `retries`: it runs again, not before the time
    /// given (RFC 3339, UTC).
    AgentRetrying {
        slug: String,
        attempt: u32,
        error: String,
        not_before: String,
    },
    /// The engine stopped while this attempt ran; it will be retried as a new attempt.
    AgentInterrupted {
        slug: String,
        attempt: u32,
    },
    AgentSkipped {
        slug: String,
        because: String,
    },
    AgentCanceled {
        slug: String,
    },
    /// `runs retry`: a failed, skipped or canceled agent waits to run again.
    AgentRetried {
        slug: String,
    },
    /// Fan-out: the template's item list, resolved once; its instances `<slug>-<item>` exist
    /// from now on and the template completes when they all have.
    AgentExpanded {
        slug: String,
        items: Vec<String>,
    },
    /// The agent's turn is done and its gates begin; it holds no machine while they run.
    AgentAwaitingGates {
        slug: String,
        attempt: u32,
        response: String,
        #[serde(default, skip_serializing_if = "Delivered::is_empty")]
        delivered: Delivered,
    },
    /// The check of an open gate the engine runs itself (`ci`, `review`, `merge`) stopped with
    /// the process that ran it: the gate opens again when a machine is free for it.
    GateInterrupted {
        slug: String,
        attempt: u32,
        gate: GateKind,
    },
    /// The agent's next gate is being checked (or, for `approve`, waits for a person).
    GateOpened {
        slug: String,
        attempt: u32,
        gate: GateKind,
    },
    GatePassed {
        slug: String,
        attempt: u32,
        gate: GateKind,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// The gate did not pass; `feedback` goes back to the agent as a follow-up.
    GateFailed {
        slug: String,
        attempt: u32,
        gate: GateKind,
        feedback: String,
    },
    /// The agent works again in its own session on `text`: gate feedback, or the first
    /// `messages` queued follow-ups (as many as the flight's `dequeue_strategy` takes).
    AgentFollowUp {
        slug: String,
        text: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        messages: usize,
    },
    /// `murmur queue add`: a message for the agent, taken when its current turn is over.
    FollowUpQueued {
        slug: String,
        text: String,
    },
    RunCompleted,
    RunFailed {
        reason: String,
    },
    RunCanceled {
        /// Who canceled it, when another process did (`murmur runs cancel (pid 7 on vm)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// `runs retry`: a failed or canceled run runs again, keeping what succeeded.
    RunRetried,
    /// A completed run runs again because one of its agents was sent a follow-up.
    RunReopened,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An agent's deliverables: its branch and commits, pull requests, and what the model cost
/// (the protocol's type: attempts report it, events record it).
pub use murmur_protocol::Delivered;

/// A gate's name in the event log (the parser's `Gate`, kept stable here as stored text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    Ci,
    Review,
    Approve,
    Merge,
}

impl From<murmur_parser::Gate> for GateKind {
    fn from(gate: murmur_parser::Gate) -> Self {
        match gate {
            murmur_parser::Gate::Ci => GateKind::Ci,
            murmur_parser::Gate::Review => GateKind::Review,
            murmur_parser::Gate::Approve => GateKind::Approve,
            murmur_parser::Gate::Merge => GateKind::Merge,
        }
    }
}

impl std::fmt::Display for GateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GateKind::Ci => "ci",
            GateKind::Review => "review",
            GateKind::Approve => "approve",
            GateKind::Merge => "merge",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Event {
    /// The stored `kind` column: the serde tag, kept in one place.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted => "run_started",
            Event::AgentQueued { .. } => "agent_queued",
            Event::AgentStarted { .. } => "agent_started",
            Event::AgentRunning { .. } => "agent_running",
            Event::AgentOutput { .. } => "agent_output",
            Event::AgentSucceeded { .. } => "agent_succeeded",
            Event::AgentSession { .. } => "agent_session",
            Event::AgentPlaced { .. } => "agent_placed",
            Event::AgentResurrected { .. } => "agent_resurrected",
            Event::AgentIdle { .. } => "agent_idle",
            Event::AgentSlept { .. } => "agent_slept",
            Event::AgentWoke { .. } => "agent_woke",
            Event::AgentReleased { .. } => "agent_released",
            Event::SleepRequested { .. } => "sleep_requested",
            Event::WakeRequested { .. } => "wake_requested",
            Event::AgentFailed { .. } => "agent_failed",
            Event::AgentRetrying { .. } => "agent_retrying",
            Event::AgentInterrupted { .. } => "agent_interrupted",
            Event::AgentSkipped { .. } => "agent_skipped",
            Event::AgentCanceled { .. } => "agent_canceled",
            Event::AgentRetried { .. } => "agent_retried",
            Event::AgentExpanded { .. } => "agent_expanded",
            Event::AgentAwaitingGates { .. } => "agent_awaiting_gates",
            Event::GateInterrupted { .. } => "gate_interrupted",
            Event::GateOpened { .. } => "gate_opened",
            Event::GatePassed { .. } => "gate_passed",
            Event::GateFailed { .. } => "gate_failed",
            Event::AgentFollowUp { .. } => "agent_follow_up",
            Event::FollowUpQueued { .. } => "follow_up_queued",
            Event::RunReopened => "run_reopened",
            Event::RunCompleted => "run_completed",
            Event::RunFailed { .. } => "run_failed",
            Event::RunCanceled { .. } => "run_canceled",
            Event::RunRetried => "run_retried",
        }
    }

    pub fn slug(&self) -> Option<&str> {
        match self {
            Event::AgentQueued { slug }
            | Event::AgentStarted { slug, .. }
            | Event::AgentRunning { slug, .. }
            | Event::AgentResurrected { slug, .. }
            | Event::GateInterrupted { slug, .. }
            | Event::AgentOutput { slug, .. }
            | Event::AgentSucceeded { slug, .. }
            | Event::AgentSession { slug, .. }
            | Event::AgentPlaced { slug, .. }
            | Event::AgentIdle { slug, .. }
            | Event::AgentSlept { slug }
            | Event::AgentWoke { slug, .. }
            | Event::AgentReleased { slug }
            | Event::SleepRequested { slug }
            | Event::WakeRequested { slug }
            | Event::AgentFailed { slug, .. }
            | Event::AgentRetrying { slug, .. }
            | Event::AgentInterrupted { slug, .. }
            | Event::AgentSkipped { slug, .. }
            | Event::AgentCanceled { slug }
            | Event::AgentRetried { slug }
            | Event::AgentExpanded { slug, .. }
            | Event::AgentAwaitingGates { slug, .. }
            | Event::GateOpened { slug, .. }
            | Event::GatePassed { slug, .. }
            | Event::GateFailed { slug, .. }
            | Event::AgentFollowUp { slug, .. }
            | Event::FollowUpQueued { slug, .. } => Some(slug),
            Event::RunStarted
            | Event::RunCompleted
            | Event::RunFailed { .. }
            | Event::RunCanceled { .. }
            | Event::RunRetried
            | Event::RunReopened => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_matches_the_serde_tag() {
        let events = [
            Event::RunStarted,
            Event::AgentQueued { slug: "a".into() },
            Event::AgentStarted {
                slug: "a".into(),
                attempt: 1,
            },
            Event::AgentRunning {
                slug: "a".into(),
                attempt: 1,
            },
            Event::AgentResurrected {
                slug: "a".into(),
                attempt: 2,
                from: "m1".into(),
                machine: "m2".into(),
            },
            Event::GateInterrupted {
                slug: "a".into(),
                attempt: 1,
                gate: GateKind::Ci,
            },
            Event::AgentOutput {
                slug: "a".into(),
                attempt: 1,
                stream: Stream::Stdout,
                line: "x".into(),
            },
            Event::AgentSucceeded {
                slug: "a".into(),
                attempt: 1,
                response: "ok".into(),
                delivered: Default::default(),
            },
            Event::AgentFailed {
                slug: "a".into(),
                attempt: 1,
                error: "no".into(),
            },
            Event::AgentInterrupted {
                slug: "a".into(),
                attempt: 1,
            },
            Event::AgentSkipped {
                slug: "a".into(),
                because: "b".into(),
            },
            Event::AgentCanceled { slug: "a".into() },
            Event::RunCompleted,
            Event::RunFailed { reason: "x".into() },
            Event::RunCanceled { by: None },
        ];
        for event in events {
            let json = serde_json::to_value(&event).expect("serialises");
            assert_eq!(json["type"], event.kind());
        }
    }
}
