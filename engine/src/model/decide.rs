//! What happens next: `decide` chooses the events to commit (agents to start, fan-outs to
//! expand, gates to open, follow-ups to take, the run's end), `cancel`, `retry` and
//! `interrupted` the events of those acts. All pure: the executor commits, then acts.

use super::RunModel;
use crate::event::{Event, GateKind};
use crate::state::{AgentState, RunStatus};

impl RunModel {
    /// The earliest time the run waits for, when it does: a queued agent's retry delay, or an
    /// idle agent's time to sleep.
    pub fn next_timer_at(&self) -> Option<&str> {
        self.ready
            .iter()
            .filter_map(|&(_, index)| self.agents[index].not_before.as_deref())
            .chain(self.next_sleep_at())
            .min()
    }

    /// `runs retry`: everything that did not succeed runs again; succeeded work is kept.
    pub fn retry(&self) -> Vec<Event> {
        if !matches!(self.status, RunStatus::Failed | RunStatus::Canceled) {
            return Vec::new();
        }
        let mut events = vec![Event::RunRetried];
        events.extend(
            self.agents
                .iter()
                .filter(|agent| {
                    matches!(
                        agent.state,
                        AgentState::Failed | AgentState::Skipped | AgentState::Canceled
                    )
                })
                .map(|agent| Event::AgentRetried {
                    slug: agent.slug.clone(),
                }),
        );
        events
    }

    /// The events that should happen next, given `free_slots` machines in each of the run's
    /// pools. Applying them in order is always legal. Empty when the run must wait for an agent
    /// to finish. `now` is the injected time (RFC 3339, UTC): agents waiting out a retry delay
    /// stay queued.
    pub fn decide(&self, free_slots: usize, now: &str) -> Vec<Event> {
        self.decide_in(vec![free_slots; self.pool_count()], now)
    }

    /// As [`Self::decide`], with the machines free in each pool (indexed as `with_pools`).
    pub fn decide_in(&self, mut free: Vec<usize>, now: &str) -> Vec<Event> {
        match self.status {
            RunStatus::Queued => return vec![Event::RunStarted],
            RunStatus::Running => {}
            _ => return Vec::new(),
        }
        if let Some(failed) = self.first_failure {
            return self.wind_down(failed);
        }
        let mut events = Vec::new();
        for &(_, index) in &self.ready {
            let agent = &self.agents[index];
            if agent.state == AgentState::Pending {
                events.push(Event::AgentQueued {
                    slug: agent.slug.clone(),
                });
            }
            if let Some(items) = self.known_items(index) {
                events.push(Event::AgentExpanded {
                    slug: agent.slug.clone(),
                    items: items.to_vec(),
                });
                continue;
            }
            let waiting = agent.not_before.as_deref().is_some_and(|at| at > now);
            let pool = &mut free[self.pool_of(index)];
            if *pool > 0 && !waiting {
                *pool -= 1;
                events.push(Event::AgentStarted {
                    slug: agent.slug.clone(),
                    attempt: agent.attempt + 1,
                });
            }
        }
        for &index in &self.checking {
            let Some(step) = self.gate_step(index) else {
                continue;
            };
            // A check the engine runs (a `ci` command, a reviewer) holds a machine too.
            if needs_machine(&step) {
                let pool = &mut free[self.pool_of(index)];
                if *pool == 0 {
                    continue;
                }
                *pool -= 1;
            }
            events.push(self.rest_after_gates(index, step, now));
        }
        events.extend(self.fanned_out.iter().filter_map(|&i| self.fan_in(i)));
        events.extend(self.inboxes.iter().filter_map(|&i| self.take_follow_ups(i)));
        events.extend(self.rest_steps(now, &mut free));
        if events.is_empty() && self.only_resting() {
            return self.release_resting();
        }
        if events.is_empty() && self.terminal == self.agents.len() {
            events.push(Event::RunCompleted);
        }
        events
    }

    /// The last gate passed: the agent rests on its machine, or completes.
    fn rest_after_gates(&self, index: usize, step: Event, now: &str) -> Event {
        match step {
            Event::AgentSucceeded {
                slug,
                attempt,
                response,
                delivered,
            } => {
                let done = super::TurnDone {
                    slug,
                    attempt,
                    response,
                    delivered,
                };
                self.turn_done(index, done, now)
            }
            other => other,
        }
    }

    /// How many agents would start now, were machines free.
    pub fn startable(&self, now: &str) -> usize {
        self.startable_where(now, |_| true)
    }

    /// How many agents of pool `pool` would start now, were its machines free.
    pub fn startable_in(&self, pool: usize, now: &str) -> usize {
        self.startable_where(now, |index| self.pool_of(index) == pool)
    }

    fn startable_where(&self, now: &str, of: impl Fn(usize) -> bool) -> usize {
        if self.status != RunStatus::Running || self.first_failure.is_some() {
            return 0;
        }
        self.ready
            .iter()
            .filter(|&&(_, index)| of(index) && self.known_items(index).is_none())
            .filter(|&&(_, index)| {
                let agent = &self.agents[index];
                agent.not_before.as_deref().is_none_or(|at| at <= now)
            })
            .count()
    }

    /// After a failure nothing new starts: everything not yet started is skipped, gates that
    /// are being checked finish (one waiting for a person is canceled), and the run fails once
    /// nothing is at work any more.
    fn wind_down(&self, failed: usize) -> Vec<Event> {
        let failed_slug = &self.agents[failed].slug;
        let mut events: Vec<Event> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, agent)| matches!(agent.state, AgentState::Pending | AgentState::Queued))
            .map(|(index, agent)| Event::AgentSkipped {
                slug: agent.slug.clone(),
                because: self.skip_reason(index, failed_slug),
            })
            .collect();
        for &index in &self.checking {
            let agent = &self.agents[index];
            if agent.gates.open && self.current_gate(index) == Some(GateKind::Approve) {
                events.push(Event::AgentCanceled {
                    slug: agent.slug.clone(),
                });
            } else if let Some(step) = self.gate_step(index) {
                events.push(step);
            }
        }
        events.extend(self.fanned_out.iter().filter_map(|&i| self.fan_in(i)));
        events.extend(self.release_resting());
        if events.is_empty() && self.running() == 0 && self.checking.is_empty() {
            events.push(Event::RunFailed {
                reason: format!("agent `{failed_slug}` {}", self.agents[failed].state),
            });
        }
        events
    }

    fn skip_reason(&self, index: usize, failed_slug: &str) -> String {
        let blocked_by = self.upstream[index]
            .iter()
            .map(|&up| &self.agents[up])
            .find(|up| matches!(up.state, AgentState::Failed | AgentState::Skipped));
        match blocked_by {
            Some(up) => format!("upstream `{}` {}", up.slug, up.state),
            None => format!(
                "not started because `{failed_slug}` {}",
                self.agents[self.first_failure.unwrap_or_default()].state
            ),
        }
    }

    /// Cancels everything not finished; running agents are stopped by the executor.
    pub fn cancel(&self) -> Vec<Event> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        let mut events: Vec<Event> = self
            .agents
            .iter()
            .filter(|agent| !agent.state.is_terminal())
            .map(|agent| Event::AgentCanceled {
                slug: agent.slug.clone(),
            })
            .collect();
        events.push(Event::RunCanceled { by: None });
        events
    }

    /// After a restart: attempts that were running when the engine stopped start over, and
    /// idle agents sleep (their machine's hold ended with the process that kept it).
    pub fn interrupted(&self) -> Vec<Event> {
        let attempts = self
            .agents
            .iter()
            .enumerate()
            .filter(|&(index, _)| self.holds_slot(index))
            .map(|(_, agent)| match agent.state {
                AgentState::Idle => Event::AgentSlept {
                    slug: agent.slug.clone(),
                },
                _ => Event::AgentInterrupted {
                    slug: agent.slug.clone(),
                    attempt: agent.attempt,
                },
            });
        // A check the engine ran opens again through `decide`, so that it waits for a machine
        // of the pool like the first time.
        let checks = self.open_checks().into_iter().map(|(index, gate)| {
            let agent = &self.agents[index];
            Event::GateInterrupted {
                slug: agent.slug.clone(),
                attempt: agent.attempt,
                gate,
            }
        });
        attempts.chain(checks).collect()
    }
}

/// Whether the event starts work that runs on a machine of the pool.
fn needs_machine(event: &Event) -> bool {
    matches!(event, Event::GateOpened { gate, .. } if *gate != GateKind::Approve)
}
