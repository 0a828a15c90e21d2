//! Every legal agent transition, in one table. Anything not listed is a typed error.

use crate::event::Event;
use crate::state::AgentState::{self, *};

/// (from, event kind, to). The executor consults only this table.
pub const AGENT_TRANSITIONS: &[(AgentState, &str, AgentState)] = &[
    (Pending, "agent_queued", Queued),
    (Pending, "agent_skipped", Skipped),
    (Pending, "agent_canceled", Canceled),
    (Queued, "agent_started", Starting),
    (Starting, "agent_running", Running),
    (Starting, "agent_output", Starting),
    (Starting, "agent_session", Starting),
    (Starting, "agent_placed", Starting),
    (Starting, "agent_resurrected", Starting),
    // An attempt may end before it reports running: its start failed or was stopped, a
    // fan-out's items came from a value, or the log predates the `starting` phase.
    (Starting, "agent_succeeded", Completed),
    (Starting, "agent_failed", Failed),
    (Starting, "agent_interrupted", Queued),
    (Starting, "agent_retrying", Queued),
    (Starting, "agent_canceled", Canceled),
    (Starting, "agent_expanded", Running),
    (Starting, "agent_awaiting_gates", ChecksPending),
    (Starting, "agent_idle", Idle),
    (Starting, "follow_up_queued", Starting),
    (Queued, "agent_skipped", Skipped),
    (Queued, "agent_canceled", Canceled),
    (Running, "agent_output", Running),
    (Running, "agent_session", Running),
    (Running, "agent_placed", Running),
    (Running, "agent_succeeded", Completed),
    (Running, "agent_failed", Failed),
    (Running, "agent_interrupted", Queued),
    (Running, "agent_retrying", Queued),
    (Running, "agent_canceled", Canceled),
    (Queued, "agent_expanded", Running),
    (Running, "agent_expanded", Running),
    (Running, "agent_awaiting_gates", ChecksPending),
    (ChecksPending, "gate_opened", ChecksPending),
    (ChecksPending, "gate_interrupted", ChecksPending),
    (ChecksPending, "gate_passed", ChecksPending),
    (ChecksPending, "gate_failed", ChecksPending),
    (ChecksPending, "agent_follow_up", Queued),
    (ChecksPending, "agent_succeeded", Completed),
    (ChecksPending, "agent_failed", Failed),
    (ChecksPending, "agent_canceled", Canceled),
    (Completed, "agent_follow_up", Queued),
    (Pending, "follow_up_queued", Pending),
    (Queued, "follow_up_queued", Queued),
    (Running, "follow_up_queued", Running),
    (ChecksPending, "follow_up_queued", ChecksPending),
    (Completed, "follow_up_queued", Completed),
    (Running, "agent_idle", Idle),
    (ChecksPending, "agent_idle", Idle),
    (Idle, "agent_slept", Sleeping),
    (Sleeping, "agent_woke", Idle),
    (Idle, "agent_released", Completed),
    (Sleeping, "agent_released", Completed),
    (Idle, "agent_follow_up", Queued),
    (Sleeping, "agent_follow_up", Queued),
    (Idle, "follow_up_queued", Idle),
    (Sleeping, "follow_up_queued", Sleeping),
    (Idle, "sleep_requested", Idle),
    (Sleeping, "wake_requested", Sleeping),
    (Idle, "agent_canceled", Canceled),
    (Sleeping, "agent_canceled", Canceled),
    (Failed, "agent_retried", Pending),
    (Skipped, "agent_retried", Pending),
    (Canceled, "agent_retried", Pending),
];

pub fn next_state(from: AgentState, event: &Event) -> Option<AgentState> {
    let kind = event.kind();
    AGENT_TRANSITIONS
        .iter()
        .find(|(state, event_kind, _)| *state == from && *event_kind == kind)
        .map(|(_, _, to)| *to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{GateKind, Stream};

    fn sample(kind: &str) -> Event {
        let slug = "a".to_owned();
        match kind {
            "agent_queued" => Event::AgentQueued { slug },
            "agent_started" => Event::AgentStarted { slug, attempt: 1 },
            "agent_running" => Event::AgentRunning { slug, attempt: 1 },
            "agent_resurrected" => Event::AgentResurrected {
                slug,
                attempt: 1,
                from: String::new(),
                machine: String::new(),
            },
            "gate_interrupted" => Event::GateInterrupted {
                slug,
                attempt: 1,
                gate: GateKind::Ci,
            },
            "agent_output" => Event::AgentOutput {
                slug,
                attempt: 1,
                stream: Stream::Stdout,
                line: String::new(),
            },
            "agent_succeeded" => Event::AgentSucceeded {
                slug,
                attempt: 1,
                response: String::new(),
                delivered: Default::default(),
            },
            "agent_failed" => Event::AgentFailed {
                slug,
                attempt: 1,
                error: String::new(),
            },
            "agent_interrupted" => Event::AgentInterrupted { slug, attempt: 1 },
            "agent_idle" => Event::AgentIdle {
                slug,
                attempt: 1,
                response: String::new(),
                delivered: Default::default(),
                sleep_at: None,
            },
            "agent_slept" => Event::AgentSlept { slug },
            "agent_woke" => Event::AgentWoke {
                slug,
                sleep_at: None,
            },
            "agent_released" => Event::AgentReleased { slug },
            "sleep_requested" => Event::SleepRequested { slug },
            "wake_requested" => Event::WakeRequested { slug },
            "agent_placed" => Event::AgentPlaced {
                slug,
                attempt: 1,
                machine: String::new(),
            },
            "agent_session" => Event::AgentSession {
                slug,
                attempt: 1,
                session_id: String::new(),
            },
            "agent_skipped" => Event::AgentSkipped {
                slug,
                because: String::new(),
            },
            "agent_retried" => Event::AgentRetried { slug },
            "agent_retrying" => Event::AgentRetrying {
                slug,
                attempt: 1,
                error: String::new(),
                not_before: String::new(),
            },
            "agent_expanded" => Event::AgentExpanded {
                slug,
                items: Vec::new(),
            },
            "agent_awaiting_gates" => Event::AgentAwaitingGates {
                slug,
                attempt: 1,
                response: String::new(),
                delivered: Default::default(),
            },
            "gate_opened" => Event::GateOpened {
                slug,
                attempt: 1,
                gate: GateKind::Ci,
            },
            "gate_passed" => Event::GatePassed {
                slug,
                attempt: 1,
                gate: GateKind::Ci,
                note: String::new(),
            },
            "gate_failed" => Event::GateFailed {
                slug,
                attempt: 1,
                gate: GateKind::Ci,
                feedback: String::new(),
            },
            "agent_follow_up" => Event::AgentFollowUp {
                slug,
                text: String::new(),
                messages: 0,
            },
            "follow_up_queued" => Event::FollowUpQueued {
                slug,
                text: String::new(),
            },
            _ => Event::AgentCanceled { slug },
        }
    }

    const KINDS: [&str; 28] = [
        "agent_running",
        "agent_resurrected",
        "gate_interrupted",
        "agent_idle",
        "agent_slept",
        "agent_woke",
        "agent_released",
        "sleep_requested",
        "wake_requested",
        "agent_placed",
        "follow_up_queued",
        "agent_expanded",
        "agent_awaiting_gates",
        "gate_opened",
        "gate_passed",
        "gate_failed",
        "agent_follow_up",
        "agent_retrying",
        "agent_retried",
        "agent_session",
        "agent_queued",
        "agent_started",
        "agent_output",
        "agent_succeeded",
        "agent_failed",
        "agent_interrupted",
        "agent_skipped",
        "agent_canceled",
    ];

    /// An attempt's phases, written out by hand from the platform spec rather than read from
    /// the table: from `queued`, `starting` and `running`, exactly these events are legal.
    const ATTEMPT_PHASES: &[(AgentState, &str, AgentState)] = &[
        (Queued, "agent_started", Starting),
        (Queued, "agent_expanded", Running),
        (Queued, "agent_skipped", Skipped),
        (Queued, "agent_canceled", Canceled),
        (Queued, "follow_up_queued", Queued),
        (Starting, "agent_running", Running),
        (Starting, "agent_placed", Starting),
        (Starting, "agent_resurrected", Starting),
        (Starting, "agent_session", Starting),
        (Starting, "agent_output", Starting),
        (Starting, "follow_up_queued", Starting),
        (Starting, "agent_succeeded", Completed),
        (Starting, "agent_failed", Failed),
        (Starting, "agent_retrying", Queued),
        (Starting, "agent_interrupted", Queued),
        (Starting, "agent_canceled", Canceled),
        (Starting, "agent_expanded", Running),
        (Starting, "agent_awaiting_gates", ChecksPending),
        (Starting, "agent_idle", Idle),
        (Running, "agent_placed", Running),
        (Running, "agent_session", Running),
        (Running, "agent_output", Running),
        (Running, "follow_up_queued", Running),
        (Running, "agent_succeeded", Completed),
        (Running, "agent_failed", Failed),
        (Running, "agent_retrying", Queued),
        (Running, "agent_interrupted", Queued),
        (Running, "agent_canceled", Canceled),
        (Running, "agent_expanded", Running),
        (Running, "agent_awaiting_gates", ChecksPending),
        (Running, "agent_idle", Idle),
    ];

    #[test]
    fn attempt_phases_are_as_written_by_hand() {
        for from in [Queued, Starting, Running] {
            for kind in KINDS {
                let expected = ATTEMPT_PHASES
                    .iter()
                    .find(|(s, k, _)| *s == from && *k == kind)
                    .map(|t| t.2);
                assert_eq!(next_state(from, &sample(kind)), expected, "{from} + {kind}");
            }
        }
        // Nothing but a started attempt is ever `starting`, and only `agent_running` (or a
        // fan-out's items) makes an agent `running`.
        for state in AgentState::ALL {
            for kind in KINDS {
                match next_state(*state, &sample(kind)) {
                    Some(Starting) => assert!(
                        *state == Starting || (*state, kind) == (Queued, "agent_started"),
                        "{state} + {kind}"
                    ),
                    Some(Running) if *state != Running => assert!(
                        matches!(kind, "agent_running" | "agent_expanded"),
                        "{state} + {kind}"
                    ),
                    _ => {}
                }
            }
        }
    }

    /// Every (state, event) pair: the table's rows are accepted, everything else refused.
    #[test]
    fn only_the_table_is_legal() {
        let mut exercised = 0;
        for state in AgentState::ALL {
            for kind in KINDS {
                let expected = AGENT_TRANSITIONS
                    .iter()
                    .find(|(s, k, _)| s == state && *k == kind)
                    .map(|t| t.2);
                assert_eq!(
                    next_state(*state, &sample(kind)),
                    expected,
                    "{state} + {kind}"
                );
                exercised += usize::from(expected.is_some());
            }
        }
        assert_eq!(
            exercised,
            AGENT_TRANSITIONS.len(),
            "every row of the table was exercised"
        );
    }
}
