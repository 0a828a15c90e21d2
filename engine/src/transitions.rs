//! Every legal agent transition, in one table. Anything not listed is a typed error.

use crate::event::Event;
use crate::state::AgentState::{self, *};

/// (from, event kind, to). The executor consults only this table.
pub const AGENT_TRANSITIONS: &[(AgentState, &str, AgentState)] = &[
    (Pending, "agent_queued", Queued),
    (Pending, "agent_skipped", Skipped),
    (Pending, "agent_canceled", Canceled),
    (Queued, "agent_started", Running),
    (Queued, "agent_skipped", Skipped),
    (Queued, "agent_canceled", Canceled),
    (Running, "agent_output", Running),
    (Running, "agent_succeeded", Completed),
    (Running, "agent_failed", Failed),
    (Running, "agent_interrupted", Queued),
    (Running, "agent_canceled", Canceled),
];

pub fn next_state(from: AgentState, event: &Event) -> Option<AgentState> {
    let kind = event.kind();
    AGENT_TRANSITIONS
        .iter()
        .find(|(state, event_kind, _)| *state == from && *event_kind == kind)
        .map(|(_, _, to)| *to)
}
