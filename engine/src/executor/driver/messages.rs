//! What running agents and gate checks report, turned into events: output lines, sessions,
//! and ends (a success, a gated turn, a fan-out's items, a failure to retry or to record).

use super::Driver;
use crate::event::{Event, Stream};
use crate::executor::gates::GateOutcome;
use crate::executor::launch::Message;
use crate::model::AgentKind;
use crate::state::AgentState;
use murmur_protocol::{AttemptFailure, FailureKind, Finished};

/// How many attempts of an agent beyond its `retries` may end with their machine lost.
const LOST_MACHINES_TOLERATED: u32 = 3;

/// An attempt's phases that need no checkpoint of their own: they ride the next one (see
/// `RIDE_WINDOW`). Losing one in a crash loses nothing: the attempt is interrupted either way.
pub(super) fn rides(event: &Event) -> bool {
    matches!(
        event,
        Event::AgentRunning { .. } | Event::AgentPlaced { .. }
    )
}

impl Driver<'_> {
    /// Holds a rider until the next checkpoint, or its window ends.
    pub(super) fn ride(&mut self, event: Event) {
        self.ride_until
            .get_or_insert_with(|| tokio::time::Instant::now() + super::RIDE_WINDOW);
        self.riders.push(event);
    }

    /// A failed attempt: retried after a backoff while the agent's `retries` last, else final.
    /// A failure that cannot go better another time (a refused script) is final at once.
    fn failure(&self, index: usize, slug: String, attempt: u32, failure: AttemptFailure) -> Event {
        let agent = &self.agents[index];
        let mut budget = agent.retries.unwrap_or(self.flight.frontmatter.retries);
        if failure.kind == FailureKind::Lost {
            // A machine that died is not the agent's failure: its attempt is retried on
            // another (a follow-up turn too, which has used its attempts), a few times over.
            budget += LOST_MACHINES_TOLERATED;
        }
        let error = failure.message.clone();
        if attempt > budget || !failure.is_retryable() {
            return Event::AgentFailed {
                slug,
                attempt,
                error,
            };
        }
        let seed = format!("{}/{slug}/{attempt}", self.row.id);
        let delay = crate::retry::backoff(self.executor.retry_backoff, attempt, &seed);
        let not_before =
            self.executor.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let not_before = not_before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Event::AgentRetrying {
            slug,
            attempt,
            error,
            not_before,
        }
    }

    pub(super) fn event_for(&mut self, message: Message) -> Option<Event> {
        if let Message::Exited { index, .. } | Message::Gate { index, .. } = &message {
            self.stopping.remove(index);
        }
        const AT_WORK: &[AgentState] = &[AgentState::Starting, AgentState::Running];
        let (index, attempt, expected): (usize, u32, &[AgentState]) = match &message {
            Message::Line { index, attempt, .. }
            | Message::Session { index, attempt, .. }
            | Message::Exited { index, attempt, .. } => (*index, *attempt, AT_WORK),
            Message::Placed {
                index,
                attempt,
                instead_of,
                ..
            } => match instead_of {
                Some(_) => (*index, *attempt, &[AgentState::Starting]),
                None => (*index, *attempt, AT_WORK),
            },
            Message::Running { index, attempt } => (*index, *attempt, &[AgentState::Starting]),
            Message::Gate { index, attempt, .. } => {
                (*index, *attempt, &[AgentState::ChecksPending])
            }
        };
        let agent = &self.model.agents()[index];
        if agent.attempt != attempt || !expected.contains(&agent.state) {
            return None;
        }
        let slug = agent.slug.clone();
        Some(match message {
            Message::Line { stream, text, .. } => Event::AgentOutput {
                slug,
                attempt,
                stream: match stream {
                    murmur_protocol::Stream::Stdout => Stream::Stdout,
                    murmur_protocol::Stream::Stderr => Stream::Stderr,
                },
                line: text,
            },
            Message::Placed {
                machine,
                instead_of: None,
                ..
            } => Event::AgentPlaced {
                slug,
                attempt,
                machine,
            },
            Message::Placed {
                machine,
                instead_of: Some(from),
                ..
            } => Event::AgentResurrected {
                slug,
                attempt,
                from,
                machine,
            },
            Message::Running { .. } => Event::AgentRunning { slug, attempt },
            Message::Session { session_id, .. } => Event::AgentSession {
                slug,
                attempt,
                session_id,
            },
            Message::Exited { result, .. } => {
                self.stops.remove(&index);
                match result {
                    Ok(finished) => self.finished(index, slug, attempt, finished),
                    Err(error) => self.failure(index, slug, attempt, error),
                }
            }
            Message::Gate { gate, outcome, .. } => {
                self.stops.remove(&index);
                match outcome {
                    GateOutcome::Passed(note) => Event::GatePassed {
                        slug,
                        attempt,
                        gate,
                        note,
                    },
                    GateOutcome::Failed(feedback) => Event::GateFailed {
                        slug,
                        attempt,
                        gate,
                        feedback,
                    },
                    GateOutcome::Broken(error) => Event::AgentFailed {
                        slug,
                        attempt,
                        error: format!("the `{gate}` gate: {error}"),
                    },
                }
            }
        })
    }

    /// A turn that ended well: a fan-out template has its items, a gated agent goes to its
    /// gates, any other agent has succeeded.
    fn finished(&self, index: usize, slug: String, attempt: u32, done: Finished) -> Event {
        if let AgentKind::Template { .. } = self.model.agents()[index].kind {
            return Event::AgentExpanded {
                slug,
                items: murmur_parser::items_from_text(&done.response),
            };
        }
        if self.model.has_gates(index) {
            return Event::AgentAwaitingGates {
                slug,
                attempt,
                response: done.response,
                delivered: done.delivered,
            };
        }
        let done = crate::model::TurnDone {
            slug,
            attempt,
            response: done.response,
            delivered: done.delivered,
        };
        self.model
            .turn_done(index, done, &self.executor.clock.stamp())
    }
}
