//! The functional core of a run: `apply` folds committed events into state, `decide` says
//! which events should happen next. Neither performs IO; the executor commits what `decide`
//! returns before it acts on it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use murmur_parser::{Agent, Dag, DequeueStrategy};

use crate::event::{Delivered, Event, GateKind};
use crate::state::{AgentState, RunStatus};
use crate::transitions::next_state;

mod decide;
mod fanout;
mod follow_up;
mod gates;
mod pools;
mod rest;

pub use fanout::AgentKind;
pub use follow_up::RunPolicy;
pub use gates::GateProgress;
pub use rest::{Rest, TurnDone};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("event for unknown agent `{0}`")]
    UnknownAgent(String),
    #[error("agent `{slug}` cannot take `{event}` while {state}")]
    Illegal {
        slug: String,
        state: AgentState,
        event: &'static str,
    },
    #[error("agent `{slug}` is on attempt {current}; an event for attempt {got} is stale")]
    StaleAttempt {
        slug: String,
        current: u32,
        got: u32,
    },
    #[error("agent `{slug}` is not waiting on its `{gate}` gate")]
    GateNotOpen { slug: String, gate: GateKind },
    #[error("the run cannot take `{event}` while {status}")]
    IllegalRun {
        status: RunStatus,
        event: &'static str,
    },
}

/// What the run knows about one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModel {
    pub slug: String,
    pub state: AgentState,
    /// The current (or last) attempt; 0 before the first start.
    pub attempt: u32,
    pub response: Option<String>,
    pub error: Option<String>,
    /// The runtime's conversation, for `continues`, follow-ups and crash recovery.
    pub session_id: Option<String>,
    /// The machine of the latest attempt.
    pub machine: Option<String>,
    pub delivered: Delivered,
    /// A retried agent does not start before this time (RFC 3339, UTC; sorts as text).
    pub not_before: Option<String>,
    pub kind: AgentKind,
    pub gates: GateProgress,
    /// What the next attempt works on in the agent's own session, instead of its prompt.
    pub follow_up: Option<String>,
    /// Queued follow-ups (`murmur queue add`) not yet taken.
    pub inbox: Vec<String>,
    /// When an idle agent's machine sleeps; none: it stays idle.
    pub sleep_at: Option<String>,
    /// A person asked it to sleep (`murmur sleep`) or to wake (`murmur wake`).
    pub sleep_asked: bool,
    pub wake_asked: bool,
}

impl AgentModel {
    fn new(slug: String, kind: AgentKind) -> Self {
        Self {
            slug,
            state: AgentState::Pending,
            attempt: 0,
            response: None,
            error: None,
            session_id: None,
            machine: None,
            delivered: Delivered::default(),
            not_before: None,
            kind,
            gates: GateProgress::default(),
            follow_up: None,
            inbox: Vec::new(),
            sleep_at: None,
            sleep_asked: false,
            wake_asked: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunModel {
    status: RunStatus,
    agents: Vec<AgentModel>,
    by_slug: HashMap<String, usize>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    priority: Vec<usize>,
    /// Each agent's gates, in order, and how many gate feedback rounds its `retries` allow.
    gate_lists: Vec<Vec<GateKind>>,
    budgets: Vec<u32>,
    /// Agents in `checks-pending`, and fan-out templates whose instances are at work.
    checking: BTreeSet<usize>,
    fanned_out: BTreeSet<usize>,
    /// Agents with queued follow-ups.
    inboxes: BTreeSet<usize>,
    dequeue: DequeueStrategy,
    /// Upstreams of each agent that have not completed yet.
    waiting_on: Vec<usize>,
    /// Agents that may start: pending with every upstream done, or queued. Highest priority first.
    ready: BTreeSet<(Reverse<usize>, usize)>,
    terminal: usize,
    first_failure: Option<usize>,
    /// How each agent rests when its turn is done, and those idle or asleep now.
    rests: Vec<rest::Rest>,
    resting: BTreeSet<usize>,
    /// Each agent's pool, and the slots its running attempts hold in each.
    pools: Vec<usize>,
    running_in: Vec<usize>,
}

impl RunModel {
    pub fn new(agents: &[Agent], dag: &Dag, policy: RunPolicy) -> Self {
        let upstream: Vec<Vec<usize>> = (0..agents.len())
            .map(|i| dag.upstreams(i).into_iter().map(|(up, _)| up).collect())
            .collect();
        let downstream = (0..agents.len())
            .map(|i| {
                dag.downstreams(i)
                    .into_iter()
                    .map(|(down, _)| down)
                    .collect()
            })
            .collect();
        let priority = dag.remaining_path_lengths();
        let waiting_on: Vec<usize> = upstream.iter().map(Vec::len).collect();
        let ready = (0..agents.len())
            .filter(|&i| waiting_on[i] == 0)
            .map(|i| (Reverse(priority[i]), i))
            .collect();
        Self {
            status: RunStatus::Queued,
            agents: agents
                .iter()
                .map(|agent| AgentModel::new(agent.slug.clone(), AgentKind::of(agent)))
                .collect(),
            by_slug: agents
                .iter()
                .enumerate()
                .map(|(i, a)| (a.slug.clone(), i))
                .collect(),
            upstream,
            downstream,
            priority,
            gate_lists: agents
                .iter()
                .map(|agent| agent.gate.iter().map(|&g| g.into()).collect())
                .collect(),
            budgets: agents
                .iter()
                .map(|agent| agent.retries.unwrap_or(policy.retries))
                .collect(),
            checking: BTreeSet::new(),
            fanned_out: BTreeSet::new(),
            inboxes: BTreeSet::new(),
            dequeue: policy.dequeue,
            waiting_on,
            ready,
            terminal: 0,
            first_failure: None,
            rests: Vec::new(),
            resting: BTreeSet::new(),
            pools: Vec::new(),
            running_in: vec![0],
        }
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }

    pub fn agents(&self) -> &[AgentModel] {
        &self.agents
    }

    pub fn index_of(&self, slug: &str) -> Option<usize> {
        self.by_slug.get(slug).copied()
    }

    pub fn running(&self) -> usize {
        self.running_in.iter().sum()
    }

    /// Whether agent `index` holds a machine now: its attempt runs, or a check the engine
    /// runs on its work (`ci`, `review`) is open.
    pub fn holds_machine(&self, index: usize) -> bool {
        let agent = &self.agents[index];
        self.holds_slot(index)
            || (self.checking.contains(&index)
                && agent.gates.open
                && self
                    .current_gate(index)
                    .is_some_and(|gate| gate != GateKind::Approve))
    }

    /// Machines this run holds: running attempts and open checks.
    pub fn machines_in_use(&self) -> usize {
        let checks = self
            .checking
            .iter()
            .filter(|&&index| !self.holds_slot(index) && self.holds_machine(index))
            .count();
        self.running() + checks
    }

    /// Every agent `index` waits for, directly or further up, in no particular order.
    pub fn ancestors(&self, index: usize) -> Vec<usize> {
        let mut seen = vec![false; self.agents.len()];
        let mut stack = self.upstream[index].clone();
        let mut found = Vec::new();
        while let Some(up) = stack.pop() {
            if !std::mem::replace(&mut seen[up], true) {
                found.push(up);
                stack.extend(&self.upstream[up]);
            }
        }
        found
    }

    /// Folds one committed event into the state, refusing anything the tables do not allow.
    pub fn apply(&mut self, event: &Event) -> Result<(), TransitionError> {
        match event.slug() {
            Some(slug) => self.apply_to_agent(slug, event),
            None => self.apply_to_run(event),
        }
    }

    fn apply_to_run(&mut self, event: &Event) -> Result<(), TransitionError> {
        let next = match (self.status, event) {
            (RunStatus::Queued, Event::RunStarted) => RunStatus::Running,
            (RunStatus::Running, Event::RunCompleted) => RunStatus::Completed,
            (RunStatus::Running, Event::RunFailed { .. }) => RunStatus::Failed,
            (RunStatus::Queued | RunStatus::Running, Event::RunCanceled { .. }) => {
                RunStatus::Canceled
            }
            (RunStatus::Failed | RunStatus::Canceled, Event::RunRetried) => RunStatus::Running,
            (RunStatus::Completed, Event::RunReopened) => RunStatus::Running,
            (status, event) => {
                return Err(TransitionError::IllegalRun {
                    status,
                    event: event.kind(),
                });
            }
        };
        self.status = next;
        Ok(())
    }

    fn apply_to_agent(&mut self, slug: &str, event: &Event) -> Result<(), TransitionError> {
        let index = self
            .index_of(slug)
            .ok_or_else(|| TransitionError::UnknownAgent(slug.to_owned()))?;
        let agent = &self.agents[index];
        let from = agent.state;
        let to = next_state(from, event).ok_or_else(|| TransitionError::Illegal {
            slug: slug.to_owned(),
            state: from,
            event: event.kind(),
        })?;
        self.check_attempt(index, event)?;
        self.check_gate(index, event)?;
        let held = self.holds_slot(index);
        self.record(index, event);
        self.move_agent(index, from, to);
        self.expand(index, event);
        let holds = self.holds_slot(index);
        if held != holds {
            self.count_slot(index, holds);
        }
        Ok(())
    }

    /// Working on a machine: a running attempt, but not a template whose instances do the work.
    /// An idle agent keeps its machine for its next turn.
    fn holds_slot(&self, index: usize) -> bool {
        match self.agents[index].state {
            AgentState::Starting | AgentState::Running => !self.fanned_out.contains(&index),
            AgentState::Idle => true,
            _ => false,
        }
    }

    fn check_attempt(&self, index: usize, event: &Event) -> Result<(), TransitionError> {
        let agent = &self.agents[index];
        let (expected, got) = match event {
            Event::AgentStarted { attempt, .. } => (agent.attempt + 1, *attempt),
            Event::AgentOutput { attempt, .. }
            | Event::AgentSucceeded { attempt, .. }
            | Event::AgentSession { attempt, .. }
            | Event::AgentPlaced { attempt, .. }
            | Event::AgentRunning { attempt, .. }
            | Event::AgentResurrected { attempt, .. }
            | Event::GateInterrupted { attempt, .. }
            | Event::AgentIdle { attempt, .. }
            | Event::AgentFailed { attempt, .. }
            | Event::AgentRetrying { attempt, .. }
            | Event::AgentInterrupted { attempt, .. }
            | Event::AgentAwaitingGates { attempt, .. }
            | Event::GateOpened { attempt, .. }
            | Event::GatePassed { attempt, .. }
            | Event::GateFailed { attempt, .. } => (agent.attempt, *attempt),
            _ => return Ok(()),
        };
        if expected == got {
            Ok(())
        } else {
            Err(TransitionError::StaleAttempt {
                slug: agent.slug.clone(),
                current: agent.attempt,
                got,
            })
        }
    }

    fn record(&mut self, index: usize, event: &Event) {
        let agent = &mut self.agents[index];
        match event {
            Event::AgentStarted { attempt, .. } => {
                agent.attempt = *attempt;
                agent.error = None;
                agent.not_before = None;
            }
            Event::AgentSucceeded {
                response,
                delivered,
                ..
            }
            | Event::AgentAwaitingGates {
                response,
                delivered,
                ..
            } => {
                agent.response = Some(response.clone());
                agent.delivered = delivered.clone();
                agent.follow_up = None;
                agent.gates.begin();
            }
            Event::AgentSession { session_id, .. } => agent.session_id = Some(session_id.clone()),
            Event::AgentPlaced { machine, .. } | Event::AgentResurrected { machine, .. } => {
                agent.machine = Some(machine.clone())
            }
            Event::AgentIdle {
                response,
                delivered,
                sleep_at,
                ..
            } => {
                agent.response = Some(response.clone());
                agent.delivered = delivered.clone();
                agent.follow_up = None;
                agent.gates.begin();
                agent.sleep_at = sleep_at.clone();
                agent.sleep_asked = false;
            }
            Event::AgentWoke { sleep_at, .. } => {
                agent.sleep_at = sleep_at.clone();
                agent.wake_asked = false;
            }
            Event::AgentSlept { .. } => {
                agent.sleep_at = None;
                agent.sleep_asked = false;
            }
            Event::SleepRequested { .. } => agent.sleep_asked = true,
            Event::WakeRequested { .. } => agent.wake_asked = true,
            Event::AgentFailed { error, .. } => {
                agent.error = Some(error.clone());
                agent.follow_up = None;
            }
            Event::AgentRetried { .. } => {
                agent.follow_up = None;
                agent.gates = GateProgress::default();
                self.fanned_out.remove(&index);
            }
            Event::AgentExpanded { .. } => {
                self.fanned_out.insert(index);
            }
            Event::GateOpened { .. }
            | Event::GateInterrupted { .. }
            | Event::GatePassed { .. }
            | Event::GateFailed { .. } => {
                agent.gates.record(event);
            }
            Event::AgentFollowUp { text, messages, .. } => {
                agent.follow_up = Some(text.clone());
                agent.sleep_asked = false;
                agent.wake_asked = false;
                agent.gates.follow_up();
                agent.inbox.drain(..(*messages).min(agent.inbox.len()));
                if agent.inbox.is_empty() {
                    self.inboxes.remove(&index);
                }
            }
            Event::FollowUpQueued { text, .. } => {
                agent.inbox.push(text.clone());
                self.inboxes.insert(index);
            }
            Event::AgentRetrying {
                error, not_before, ..
            } => {
                agent.error = Some(error.clone());
                agent.not_before = Some(not_before.clone());
            }
            Event::AgentSkipped { because, .. } => agent.error = Some(because.clone()),
            _ => {}
        }
    }

    fn move_agent(&mut self, index: usize, from: AgentState, to: AgentState) {
        self.agents[index].state = to;
        if from == to {
            return;
        }
        let key = (Reverse(self.priority[index]), index);
        if from == AgentState::ChecksPending {
            self.checking.remove(&index);
        }
        match to {
            AgentState::Starting | AgentState::Running => {
                self.ready.remove(&key);
            }
            AgentState::ChecksPending => {
                self.checking.insert(index);
            }
            AgentState::Queued => {
                self.ready.insert(key);
            }
            _ => {}
        }
        if to.is_terminal() {
            self.terminal += 1;
            self.ready.remove(&key);
            self.fanned_out.remove(&index);
        }
        if from.is_terminal() && to == AgentState::Pending {
            self.reopen(index);
        } else if from.is_terminal() && !to.is_terminal() {
            self.terminal -= 1;
        }
        if from.is_done() && !to.is_done() {
            self.unfinish(index);
        }
        if matches!(to, AgentState::Idle | AgentState::Sleeping) {
            self.resting.insert(index);
        } else {
            self.resting.remove(&index);
        }
        if stops_the_run(to) && self.first_failure.is_none() {
            self.first_failure = Some(index);
        }
        if to.is_done() && !from.is_done() {
            for i in 0..self.downstream[index].len() {
                let down = self.downstream[index][i];
                self.waiting_on[down] -= 1;
                if self.waiting_on[down] == 0 && self.agents[down].state == AgentState::Pending {
                    self.ready.insert((Reverse(self.priority[down]), down));
                }
            }
        }
    }

    /// A retried agent waits again for its upstreams that have not completed.
    fn reopen(&mut self, index: usize) {
        self.terminal -= 1;
        let agents = &self.agents;
        self.waiting_on[index] = self.upstream[index]
            .iter()
            .filter(|&&up| !agents[up].state.is_done())
            .count();
        if self.waiting_on[index] == 0 {
            self.ready.insert((Reverse(self.priority[index]), index));
        }
        if self.first_failure == Some(index) {
            self.first_failure = self.agents.iter().position(|a| stops_the_run(a.state));
        }
    }

    /// A completed agent works again (a follow-up): its downstreams wait for it again, and
    /// those not yet started are no longer ready.
    fn unfinish(&mut self, index: usize) {
        for i in 0..self.downstream[index].len() {
            let down = self.downstream[index][i];
            self.waiting_on[down] += 1;
            if self.agents[down].state == AgentState::Pending {
                self.ready.remove(&(Reverse(self.priority[down]), down));
            }
        }
    }
}

/// A failed agent, or one killed on its own (`murmur kill`), ends the run the same way.
pub(super) fn stops_the_run(state: AgentState) -> bool {
    matches!(state, AgentState::Failed | AgentState::Canceled)
}
