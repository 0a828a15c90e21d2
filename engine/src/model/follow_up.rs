//! Follow-ups sent to an agent (`murmur queue add`): queued while it works, taken when its
//! turn is over, as many at a time as the flight's `dequeue_strategy` says.

use murmur_parser::{DequeueStrategy, Frontmatter};

use super::RunModel;
use crate::event::Event;

/// The flight-wide settings the run model needs.
#[derive(Debug, Clone, Copy)]
pub struct RunPolicy {
    /// The flight's `retries`, for agents that do not set their own.
    pub retries: u32,
    pub dequeue: DequeueStrategy,
}

impl RunPolicy {
    pub fn of(frontmatter: &Frontmatter) -> Self {
        Self {
            retries: frontmatter.retries,
            dequeue: frontmatter.dequeue_strategy,
        }
    }
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            dequeue: DequeueStrategy::All,
        }
    }
}

impl RunModel {
    /// A finished agent with queued follow-ups works on them next, in its own session.
    pub(super) fn take_follow_ups(&self, index: usize) -> Option<Event> {
        let agent = &self.agents[index];
        if !agent.state.is_done() || agent.inbox.is_empty() {
            return None;
        }
        let messages = match self.dequeue {
            // `auto` leaves the batching to the engine: everything queued, like `all`.
            DequeueStrategy::All | DequeueStrategy::Auto => agent.inbox.len(),
            DequeueStrategy::One => 1,
            DequeueStrategy::Five => agent.inbox.len().min(5),
        };
        Some(Event::AgentFollowUp {
            slug: agent.slug.clone(),
            text: agent.inbox[..messages].join("\n\n"),
            messages,
        })
    }
}
