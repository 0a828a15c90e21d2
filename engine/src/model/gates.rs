//! Gates: after its turn an agent waits in `checks-pending` while its gates are checked one
//! by one; a failed gate sends feedback back into the agent's session as a follow-up.

use super::{RunModel, TransitionError};
use crate::event::{Event, GateKind};

/// How far an agent is through its gates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateProgress {
    /// Gates passed since the agent's last turn; new work must pass them all again.
    pub passed: usize,
    /// The next gate is being checked, or waits for a person.
    pub open: bool,
    /// Follow-up rounds caused by `ci` and `review`, bounded by the agent's `retries`.
    pub rounds: u32,
    /// A gate that did not pass, with what goes back to the agent.
    pub feedback: Option<(GateKind, String)>,
}

impl GateProgress {
    pub(super) fn begin(&mut self) {
        self.passed = 0;
        self.open = false;
        self.feedback = None;
    }

    pub(super) fn record(&mut self, event: &Event) {
        match event {
            Event::GateOpened { .. } => self.open = true,
            Event::GateInterrupted { .. } => self.open = false,
            Event::GatePassed { .. } => {
                self.open = false;
                self.passed += 1;
            }
            Event::GateFailed { gate, feedback, .. } => {
                self.open = false;
                self.feedback = Some((*gate, feedback.clone()));
            }
            _ => {}
        }
    }

    pub(super) fn follow_up(&mut self) {
        if let Some((gate, _)) = self.feedback.take()
            && gate != GateKind::Approve
        {
            self.rounds += 1;
        }
        self.passed = 0;
    }
}

impl RunModel {
    pub fn has_gates(&self, index: usize) -> bool {
        !self.gate_lists[index].is_empty()
    }

    /// The gate an agent in `checks-pending` is at.
    pub fn current_gate(&self, index: usize) -> Option<GateKind> {
        let passed = self.agents[index].gates.passed;
        self.gate_lists[index].get(passed).copied()
    }

    /// A gate's result must answer the gate that is open.
    pub(super) fn check_gate(&self, index: usize, event: &Event) -> Result<(), TransitionError> {
        let gate = match event {
            Event::GatePassed { gate, .. }
            | Event::GateFailed { gate, .. }
            | Event::GateInterrupted { gate, .. } => *gate,
            _ => return Ok(()),
        };
        let agent = &self.agents[index];
        if agent.gates.open && self.current_gate(index) == Some(gate) {
            Ok(())
        } else {
            Err(TransitionError::GateNotOpen {
                slug: agent.slug.clone(),
                gate,
            })
        }
    }

    /// What an agent in `checks-pending` does next: open its next gate, work on feedback (or
    /// fail when its rounds are spent), or complete once every gate passed.
    pub(super) fn gate_step(&self, index: usize) -> Option<Event> {
        let agent = &self.agents[index];
        let progress = &agent.gates;
        if progress.open {
            return None;
        }
        let slug = agent.slug.clone();
        let attempt = agent.attempt;
        if let Some((gate, feedback)) = &progress.feedback {
            let budget = self.budgets[index];
            if *gate != GateKind::Approve && progress.rounds >= budget {
                return Some(Event::AgentFailed {
                    slug,
                    attempt,
                    error: format!(
                        "the `{gate}` gate did not pass after {} follow-up round(s) (the agent's `retries`): {feedback}",
                        progress.rounds
                    ),
                });
            }
            return Some(Event::AgentFollowUp {
                slug,
                text: feedback.clone(),
                messages: 0,
            });
        }
        Some(match self.current_gate(index) {
            Some(gate) => Event::GateOpened {
                slug,
                attempt,
                gate,
            },
            None => Event::AgentSucceeded {
                slug,
                attempt,
                response: agent.response.clone().unwrap_or_default(),
                delivered: agent.delivered.clone(),
            },
        })
    }

    /// Agents whose open gate is checked by the engine (not a person): after a restart these
    /// checks run again.
    pub fn open_checks(&self) -> Vec<(usize, GateKind)> {
        self.checking
            .iter()
            .filter(|&&i| self.agents[i].gates.open)
            .filter_map(|&i| Some((i, self.current_gate(i)?)))
            .filter(|(_, gate)| *gate != GateKind::Approve)
            .collect()
    }
}
