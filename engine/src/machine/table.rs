//! Every legal machine transition, in one `match`. Anything it does not list is refused with
//! [`Refused`], which names the state and the event.

use super::MachineState::{self, *};
use super::{AgentRef, MachineEvent, Release};

/// An event the machine's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a machine that is {state} cannot take `{event}`")]
pub struct Refused {
    pub state: MachineState,
    pub event: &'static str,
}

/// The state `event` leads to from `from`. The store consults only this function.
pub fn next_state(from: MachineState, event: &MachineEvent) -> Result<MachineState, Refused> {
    use MachineEvent as E;
    let to = match (from, event) {
        (Provisioning, E::Provisioned { .. }) => Idle,
        (Idle, E::Claimed { .. }) => Busy,
        (Busy, E::Released { how: Release::Keep }) => Idle,
        (
            Busy,
            E::Released {
                how: Release::Sleep,
            },
        ) => Sleeping,
        (
            Busy,
            E::Released {
                how: Release::Terminate,
            },
        ) => Draining,
        (Sleeping, E::WakeStarted) => Waking,
        (Waking, E::Woke) => Busy,
        // A busy or waking machine holds an agent that would be stranded: its agent lets it
        // go first (`released` with `terminate`).
        (Provisioning | Idle | Sleeping | Lost, E::Drain) => Draining,
        // A machine that never came up, or was lost and given up on, needs no draining.
        (Provisioning | Draining | Lost, E::Terminated) => Terminated,
        (Provisioning | Idle | Busy | Sleeping | Waking | Draining, E::Lost { .. }) => Lost,
        // The attempts it held were interrupted and retried elsewhere when it was lost, and
        // it is told to stop them: it holds nothing, so it is free again.
        (Lost, E::Returned) => Idle,
        _ => {
            return Err(Refused {
                state: from,
                event: event.kind(),
            });
        }
    };
    Ok(to)
}

/// The agent the machine holds after `event` (which [`next_state`] allowed), given the one
/// it held before. A sleeping or waking machine keeps its agent: the agent wakes there. A
/// lost one keeps it too, so the caller knows which attempt to interrupt.
pub fn agent_after(event: &MachineEvent, held: Option<AgentRef>) -> Option<AgentRef> {
    match event {
        MachineEvent::Claimed { run_id, slug, .. } => Some(AgentRef {
            run_id: run_id.clone(),
            slug: slug.clone(),
        }),
        MachineEvent::Released {
            how: Release::Sleep,
        }
        | MachineEvent::WakeStarted
        | MachineEvent::Woke
        | MachineEvent::Lost { .. } => held,
        MachineEvent::Provisioned { .. }
        | MachineEvent::Released { .. }
        | MachineEvent::Drain
        | MachineEvent::Terminated
        | MachineEvent::Returned => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every legal transition, written out by hand from the platform spec rather than read
    /// from the `match`: (from, event, to). Events are named as in [`sample`].
    const EXPECTED: &[(MachineState, &str, MachineState)] = &[
        (Provisioning, "provisioned", Idle),
        (Provisioning, "drain", Draining),
        (Provisioning, "terminated", Terminated),
        (Provisioning, "lost", Lost),
        (Idle, "claimed", Busy),
        (Idle, "drain", Draining),
        (Idle, "lost", Lost),
        (Busy, "released:keep", Idle),
        (Busy, "released:sleep", Sleeping),
        (Busy, "released:terminate", Draining),
        (Busy, "lost", Lost),
        (Sleeping, "wake_started", Waking),
        (Sleeping, "drain", Draining),
        (Sleeping, "lost", Lost),
        (Waking, "woke", Busy),
        (Waking, "lost", Lost),
        (Draining, "terminated", Terminated),
        (Draining, "lost", Lost),
        (Lost, "returned", Idle),
        (Lost, "drain", Draining),
        (Lost, "terminated", Terminated),
    ];

    const EVENTS: [&str; 11] = [
        "provisioned",
        "claimed",
        "released:keep",
        "released:sleep",
        "released:terminate",
        "wake_started",
        "woke",
        "drain",
        "terminated",
        "lost",
        "returned",
    ];

    fn sample(name: &str) -> MachineEvent {
        let released = |how| MachineEvent::Released { how };
        match name {
            "provisioned" => MachineEvent::Provisioned {
                provider_id: "pid-1".to_owned(),
            },
            "claimed" => MachineEvent::Claimed {
                run_id: "r1".to_owned(),
                slug: "a".to_owned(),
                attempt: 1,
            },
            "released:keep" => released(Release::Keep),
            "released:sleep" => released(Release::Sleep),
            "released:terminate" => released(Release::Terminate),
            "wake_started" => MachineEvent::WakeStarted,
            "woke" => MachineEvent::Woke,
            "drain" => MachineEvent::Drain,
            "terminated" => MachineEvent::Terminated,
            "lost" => MachineEvent::Lost {
                reason: "silent".to_owned(),
            },
            "returned" => MachineEvent::Returned,
            other => panic!("no sample event named {other}"),
        }
    }

    /// Every (state, event) pair: the listed ones lead where the list says, every other one
    /// is refused with an error naming both.
    #[test]
    fn exactly_the_expected_transitions_are_legal() {
        let mut legal = 0;
        for &state in MachineState::ALL {
            for name in EVENTS {
                let event = sample(name);
                let expected = EXPECTED
                    .iter()
                    .find(|(from, event, _)| *from == state && *event == name)
                    .map(|(_, _, to)| *to);
                match (next_state(state, &event), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{state} + {name}");
                        legal += 1;
                    }
                    (Err(refused), None) => {
                        assert_eq!(refused.state, state);
                        assert_eq!(refused.event, event.kind());
                        let message = refused.to_string();
                        assert!(message.contains(state.as_str()), "{message}");
                    }
                    (got, want) => panic!("{state} + {name}: got {got:?}, expected {want:?}"),
                }
            }
        }
        assert_eq!(legal, EXPECTED.len(), "every expected transition was tried");
    }

    #[test]
    fn terminated_is_final() {
        for name in EVENTS {
            assert!(next_state(Terminated, &sample(name)).is_err(), "{name}");
        }
    }

    #[test]
    fn the_held_agent_follows_the_machine() {
        let agent = AgentRef {
            run_id: "r0".to_owned(),
            slug: "old".to_owned(),
        };
        let claimed = agent_after(&sample("claimed"), None).expect("claimed holds");
        assert_eq!(claimed.to_string(), "r1/a");
        for kept in ["released:sleep", "wake_started", "woke", "lost"] {
            assert_eq!(
                agent_after(&sample(kept), Some(agent.clone())).as_ref(),
                Some(&agent),
                "{kept} keeps the agent"
            );
        }
        for freed in [
            "released:keep",
            "released:terminate",
            "drain",
            "terminated",
            "returned",
        ] {
            assert_eq!(
                agent_after(&sample(freed), Some(agent.clone())),
                None,
                "{freed}"
            );
        }
    }

    /// The stored and shown names: renaming one is a schema change.
    #[test]
    fn names_are_pinned() {
        let names: Vec<&str> = MachineState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "provisioning",
                "idle",
                "busy",
                "sleeping",
                "waking",
                "draining",
                "terminated",
                "lost"
            ]
        );
        for &state in MachineState::ALL {
            assert_eq!(MachineState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).expect("json");
            assert_eq!(json, format!("\"{state}\""));
        }
        assert_eq!(MachineState::parse("asleep"), None);
        let json = serde_json::to_value(sample("released:sleep")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "released", "how": "sleep"})
        );
        let json = serde_json::to_value(sample("wake_started")).expect("json");
        assert_eq!(json, serde_json::json!({"kind": "wake_started"}));
        for name in EVENTS {
            let event = sample(name);
            let text = serde_json::to_string(&event).expect("json");
            assert!(
                text.contains(&format!("\"kind\":\"{}\"", event.kind())),
                "{text}"
            );
            assert_eq!(
                serde_json::from_str::<MachineEvent>(&text).expect("back"),
                event
            );
        }
    }
}
