//! Idle, sleep and wake. An agent whose turn is done may stay on its machine, idle, so that a
//! follow-up starts at once: until its pool's `sleep_after`, or for good with `on_idle:
//! keep-alive`. Then it sleeps: its process is gone, its workspace and session stay, and its
//! machine is free. A follow-up (or `murmur wake`) wakes it; when the run has nothing left to do,
//! resting agents let their machines go and complete.

use chrono::{DateTime, Utc};

use super::RunModel;
use crate::event::{Delivered, Event};
use crate::state::AgentState;

/// What an agent does with its machine when its turn is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rest {
    /// Let it go at once: the agent completes.
    #[default]
    Release,
    /// Stay idle on it for this many seconds, then sleep.
    SleepAfter(u64),
    /// Stay idle until the run ends (`on_idle: keep-alive`).
    KeepAlive,
}

/// A finished turn's answer, as the event that records it.
pub struct TurnDone {
    pub slug: String,
    pub attempt: u32,
    pub response: String,
    pub delivered: Delivered,
}

impl RunModel {
    /// How each flight agent rests (fan-out instances rest like their template).
    pub fn with_rests(mut self, rests: Vec<Rest>) -> Self {
        self.rests = rests;
        self
    }

    pub(super) fn rest_of(&self, index: usize) -> Rest {
        self.rests.get(index).copied().unwrap_or_default()
    }

    /// The event of a turn that ended well (gates passed, if any): idle on its machine, or done.
    pub fn turn_done(&self, index: usize, done: TurnDone, now: &str) -> Event {
        let TurnDone {
            slug,
            attempt,
            response,
            delivered,
        } = done;
        let sleep_at = match self.rest_of(index) {
            Rest::Release => {
                return Event::AgentSucceeded {
                    slug,
                    attempt,
                    response,
                    delivered,
                };
            }
            Rest::SleepAfter(seconds) => Some(later(now, seconds)),
            Rest::KeepAlive => None,
        };
        Event::AgentIdle {
            slug,
            attempt,
            response,
            delivered,
            sleep_at,
        }
    }

    /// Resting agents that sleep now (their time is up, or a person asked), and sleeping ones
    /// a person asked to wake, while `free` machines of their pool last.
    pub(super) fn rest_steps(&self, now: &str, free: &mut [usize]) -> Vec<Event> {
        let mut events = Vec::new();
        for &index in &self.resting {
            let agent = &self.agents[index];
            let slug = agent.slug.clone();
            match agent.state {
                AgentState::Idle if agent.sleep_asked || is_due(agent.sleep_at.as_deref(), now) => {
                    events.push(Event::AgentSlept { slug });
                }
                AgentState::Sleeping
                    if agent.wake_asked
                        && agent.inbox.is_empty()
                        && free[self.pool_of(index)] > 0 =>
                {
                    free[self.pool_of(index)] -= 1;
                    let sleep_at = match self.rest_of(index) {
                        Rest::SleepAfter(seconds) => Some(later(now, seconds)),
                        Rest::Release | Rest::KeepAlive => None,
                    };
                    events.push(Event::AgentWoke { slug, sleep_at });
                }
                _ => {}
            }
        }
        events
    }

    /// Whether only resting agents are left and none of them has work coming.
    pub(super) fn only_resting(&self) -> bool {
        !self.resting.is_empty()
            && self.terminal + self.resting.len() == self.agents.len()
            && self.resting.iter().all(|&i| {
                let agent = &self.agents[i];
                agent.inbox.is_empty() && !agent.wake_asked
            })
    }

    /// Every resting agent lets its machine go and completes.
    pub(super) fn release_resting(&self) -> Vec<Event> {
        self.resting
            .iter()
            .map(|&i| Event::AgentReleased {
                slug: self.agents[i].slug.clone(),
            })
            .collect()
    }

    /// The earliest time an idle agent is due to sleep.
    pub fn next_sleep_at(&self) -> Option<&str> {
        self.resting
            .iter()
            .map(|&i| &self.agents[i])
            .filter(|agent| agent.state == AgentState::Idle)
            .filter_map(|agent| agent.sleep_at.as_deref())
            .min()
    }
}

fn is_due(sleep_at: Option<&str>, now: &str) -> bool {
    sleep_at.is_some_and(|at| at <= now)
}

/// `now` plus `seconds`, in the same RFC 3339 form (UTC, milliseconds) that sorts as text.
fn later(now: &str, seconds: u64) -> String {
    // A stamp that does not parse (none does: they come from the clock) sleeps at once.
    let Ok(start) = DateTime::parse_from_rfc3339(now).map(|t| t.with_timezone(&Utc)) else {
        return now.to_owned();
    };
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX / 1000);
    (start + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
