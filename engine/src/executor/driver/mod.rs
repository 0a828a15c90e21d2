//! Driving one run: replay its log, then loop — take agent messages, let the model decide,
//! checkpoint everything in one commit, and only then act on what was committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use murmur_parser::{Agent, Dag, Flight};
use tokio::sync::{mpsc, oneshot};

use super::gates::GateOutcome;
use super::launch::{Finished, Message};
use super::{Committed, Error, Executor};
use crate::event::{Event, GateKind, Stream};
use crate::model::{AgentKind, RunModel, RunPolicy};
use crate::run;
use crate::state::{AgentState, RunStatus};
use crate::store::{self, AgentUpdate, Commit, RunRow};

mod outside;

pub use outside::Verdict;
mod effects;
mod plans;

pub struct Driver<'e> {
    executor: &'e Executor,
    row: RunRow,
    flight: Flight,
    agents: Vec<Agent>,
    /// How many of `agents` the flight itself has; fan-out instances follow.
    flight_agents: usize,
    model: RunModel,
    version: i64,
    inputs: BTreeMap<String, String>,
    event: Option<serde_json::Value>,
    times: Vec<(Option<String>, Option<String>)>,
    stops: HashMap<usize, oneshot::Sender<()>>,
    /// Agents told to stop whose tasks have not reported their end yet.
    stopping: HashSet<usize>,
    observer: mpsc::UnboundedSender<Committed>,
    sender: mpsc::UnboundedSender<Message>,
    receiver: mpsc::UnboundedReceiver<Message>,
}

/// Events applied to the model but not yet committed, with what they touched.
pub(super) struct Batch {
    at: String,
    events: Vec<Event>,
    touched: Vec<usize>,
    started: Vec<(usize, u32)>,
    /// Gates the engine checks itself, opened in this batch.
    checks: Vec<(usize, u32, GateKind)>,
    /// Agents that completed in this batch: `on_idle` may release their worktrees.
    completed: Vec<usize>,
}

/// How long a run that ends waits for the agents it stopped to be gone.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the loop woke up.
enum Wake {
    Messages(Vec<Message>),
    Cancel,
    Watch,
    /// A retry delay is over.
    Timer,
}

impl<'e> Driver<'e> {
    pub async fn load(
        executor: &'e Executor,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
    ) -> Result<Self, Error> {
        let store = &executor.store;
        let row = store.run(run_id).await?;
        let parsed = murmur_parser::parse(&row.source, &row.flight);
        let valid = parsed.diagnostics.iter().all(|d| !d.is_error());
        let flight = parsed
            .flight
            .filter(|_| valid)
            .ok_or_else(|| Error::StoredFlight(row.id.clone()))?;
        let agents = run::agents_of(&flight);
        let dag = Dag::build(&agents).map_err(|_| Error::StoredFlight(row.id.clone()))?;
        let mut model = RunModel::new(&agents, &dag, RunPolicy::of(&flight.frontmatter));
        let agents_len = agents.len();
        for stored in store.events(&row.id, 0).await? {
            model.apply(&outside::decode(&row.id, stored.seq, &stored.data)?)?;
        }
        let mut stored_times: HashMap<String, (Option<String>, Option<String>)> = store
            .agents(&row.id)
            .await?
            .into_iter()
            .map(|a| (a.slug, (a.started_at, a.finished_at)))
            .collect();
        let times = model.agents()[..agents.len()]
            .iter()
            .map(|a| stored_times.remove(&a.slug).unwrap_or_default())
            .collect();
        let inputs = serde_json::from_str(&row.inputs).unwrap_or_default();
        let event = row
            .event
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut driver = Self {
            executor,
            version: row.version,
            row,
            flight,
            agents,
            flight_agents: agents_len,
            model,
            inputs,
            event,
            times,
            stops: HashMap::new(),
            stopping: HashSet::new(),
            observer,
            sender,
            receiver,
        };
        driver.sync_instances();
        for index in agents_len..driver.agents.len() {
            let slug = &driver.model.agents()[index].slug;
            driver.times[index] = stored_times.remove(slug).unwrap_or_default();
        }
        Ok(driver)
    }

    /// Drives the run until it ends or another process takes over; agents it stopped are
    /// gone (their process trees killed and reaped) when it returns.
    pub async fn run(&mut self, cancel: oneshot::Receiver<()>) -> Result<RunStatus, Error> {
        let ended = self.drive_loop(cancel).await;
        self.wait_until_stopped().await;
        ended
    }

    async fn drive_loop(&mut self, mut cancel: oneshot::Receiver<()>) -> Result<RunStatus, Error> {
        if self.model.status().is_terminal() {
            return Ok(self.model.status());
        }
        // This process now drives the run: anything still running under its id was left
        // behind by an engine that died, and must not race the attempts that replace it.
        // Before the interruptions are committed, so that a crash in between is covered too.
        murmur_runtime::kill_marked("MURMUR_RUN_ID", &self.row.id);
        let mut watch = tokio::time::interval(Duration::from_millis(500));
        if self.model.status() == RunStatus::Queued
            && let Some(ended) = self.wait_for_turn(&mut cancel, &mut watch).await?
        {
            return Ok(ended);
        }
        let mut batch = self.batch();
        let interrupted = self.model.interrupted();
        self.stage(&mut batch, interrupted)?;
        // Checks that were under way when the engine stopped run again (they are repeatable).
        for (index, gate) in self.model.open_checks() {
            let attempt = self.model.agents()[index].attempt;
            batch.checks.push((index, attempt, gate));
        }
        loop {
            self.decide_into(&mut batch)?;
            self.checkpoint(batch).await?;
            if self.model.status().is_terminal() {
                return Ok(self.model.status());
            }
            let wake = self.wake(&mut cancel, &mut watch).await;
            // Stamped now: the events below happen at this moment, not when the wait began.
            batch = self.batch();
            match wake {
                Wake::Messages(messages) => {
                    // Staged one by one: each message is judged against the state the
                    // messages before it left (an exit makes later lines of that attempt stale).
                    for message in messages {
                        if let Some(event) = self.event_for(message) {
                            self.stage(&mut batch, vec![event])?;
                        }
                    }
                }
                Wake::Cancel => {
                    let events = self.model.cancel();
                    self.stage(&mut batch, events)?;
                }
                Wake::Watch => {
                    if let Some(status) = self.changed_elsewhere().await? {
                        self.stop_all();
                        return Ok(status);
                    }
                }
                Wake::Timer => {}
            }
        }
    }

    /// Records `runs retry` (see [`RunModel::retry`]).
    pub async fn retry_now(&mut self) -> Result<(), Error> {
        let events = self.model.retry();
        if events.is_empty() {
            return Err(Error::NothingToRetry(self.row.id.clone()));
        }
        let mut batch = self.batch();
        self.stage(&mut batch, events)?;
        self.checkpoint(batch).await
    }

    /// `max_concurrent`: a queued run waits until it is among the first runs of its flight
    /// (running ones, then queued ones by age). Returns the status when the run ended while
    /// waiting (canceled here or elsewhere).
    async fn wait_for_turn(
        &mut self,
        cancel: &mut oneshot::Receiver<()>,
        watch: &mut tokio::time::Interval,
    ) -> Result<Option<RunStatus>, Error> {
        loop {
            if self.admitted().await? {
                return Ok(None);
            }
            tokio::select! {
                _ = watch.tick() => {
                    if let Some(status) = self.changed_elsewhere().await? {
                        return Ok(Some(status));
                    }
                }
                Ok(()) = &mut *cancel => return self.cancel_now().await.map(Some),
            }
        }
    }

    /// Whether the flight's `max_concurrent` leaves room for this run, first come first served.
    /// Counting older queued runs too keeps two drivers from taking the same slot.
    async fn admitted(&self) -> Result<bool, Error> {
        let limit = self.flight.frontmatter.max_concurrent as usize;
        if limit == 0 {
            return Ok(true);
        }
        let me = (&self.row.created_at, &self.row.id);
        let ahead = self
            .executor
            .store
            .unfinished_runs()
            .await?
            .iter()
            .filter(|run| run.flight == self.row.flight && run.id != self.row.id)
            .filter(|run| {
                run.status == RunStatus::Running.as_str() || (&run.created_at, &run.id) < me
            })
            .count();
        Ok(ahead < limit)
    }

    /// Cancels now, without driving: for a run no process is driving.
    pub async fn cancel_now(&mut self) -> Result<RunStatus, Error> {
        let mut batch = self.batch();
        let events = self.model.cancel();
        self.stage(&mut batch, events)?;
        self.checkpoint(batch).await?;
        Ok(self.model.status())
    }

    async fn wake(
        &mut self,
        cancel: &mut oneshot::Receiver<()>,
        watch: &mut tokio::time::Interval,
    ) -> Wake {
        let retry_in = self.model.next_retry_at().map(|_| self.until_next_retry());
        tokio::select! {
            message = self.receiver.recv() => {
                let mut messages: Vec<Message> = message.into_iter().collect();
                while let Ok(more) = self.receiver.try_recv() {
                    messages.push(more);
                }
                Wake::Messages(messages)
            }
            Ok(()) = &mut *cancel => Wake::Cancel,
            _ = watch.tick() => Wake::Watch,
            () = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => Wake::Timer,
        }
    }

    /// How long until the earliest retry delay ends, by the injected clock.
    fn until_next_retry(&self) -> Duration {
        let Some(at) = self.model.next_retry_at() else {
            return Duration::ZERO;
        };
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) else {
            return Duration::ZERO;
        };
        (at.with_timezone(&chrono::Utc) - self.executor.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// A failed attempt: retried after a backoff while the agent's `retries` last, else final.
    fn failure(&self, index: usize, slug: String, attempt: u32, error: String) -> Event {
        let agent = &self.agents[index];
        let budget = agent.retries.unwrap_or(self.flight.frontmatter.retries);
        if attempt > budget {
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

    fn stop_all(&mut self) {
        let running: Vec<usize> = self.stops.keys().copied().collect();
        for index in running {
            self.stop(index);
        }
    }

    /// Stops one agent's attempt or gate check; [`Self::run`] waits for it before returning.
    pub(super) fn stop(&mut self, index: usize) {
        if let Some(stop) = self.stops.remove(&index) {
            let _ = stop.send(());
            self.stopping.insert(index);
        }
    }

    /// Waits (a bounded time) until every stopped task has reported its end.
    async fn wait_until_stopped(&mut self) {
        let deadline = tokio::time::sleep(STOP_GRACE);
        tokio::pin!(deadline);
        while !self.stopping.is_empty() {
            tokio::select! {
                message = self.receiver.recv() => match message {
                    Some(Message::Exited { index, .. } | Message::Gate { index, .. }) => {
                        self.stopping.remove(&index);
                    }
                    Some(_) => {}
                    None => return,
                },
                () = &mut deadline => return,
            }
        }
    }

    pub(super) fn batch(&self) -> Batch {
        Batch {
            at: self.executor.clock.stamp(),
            events: Vec::new(),
            touched: Vec::new(),
            started: Vec::new(),
            checks: Vec::new(),
            completed: Vec::new(),
        }
    }

    /// Lets the model decide until it has nothing more to say for now.
    pub(super) fn decide_into(&mut self, batch: &mut Batch) -> Result<(), Error> {
        loop {
            let free = self.executor.slots.saturating_sub(self.model.running());
            let decided = self.model.decide(free, &self.executor.clock.stamp());
            if decided.is_empty() {
                return Ok(());
            }
            self.stage(batch, decided)?;
        }
    }

    /// Applies events to the model (refusing illegal ones) and adds them to the batch.
    pub(super) fn stage(&mut self, batch: &mut Batch, events: Vec<Event>) -> Result<(), Error> {
        for event in events {
            self.model.apply(&event)?;
            if let Some(index) = event.slug().and_then(|slug| self.model.index_of(slug)) {
                self.stamp_times(index, &event, &batch.at);
                if batch.touched.last() != Some(&index) {
                    batch.touched.push(index);
                }
                match &event {
                    Event::AgentStarted { attempt, .. } => batch.started.push((index, *attempt)),
                    Event::GateOpened { attempt, gate, .. } if *gate != GateKind::Approve => {
                        batch.checks.push((index, *attempt, *gate));
                    }
                    Event::AgentSucceeded { .. } => batch.completed.push(index),
                    Event::AgentExpanded { .. } => {
                        let known = self.agents.len();
                        self.sync_instances();
                        batch.touched.extend(known..self.agents.len());
                    }
                    _ => {}
                }
            }
            batch.events.push(event);
        }
        Ok(())
    }

    /// Commits the batch, tells observers, then performs its effects: starting agents, or
    /// stopping them when the run was canceled.
    pub(super) async fn checkpoint(&mut self, mut batch: Batch) -> Result<(), Error> {
        if batch.events.is_empty() {
            return self.perform(batch);
        }
        let first_seq = loop {
            batch.touched.sort_unstable();
            batch.touched.dedup();
            match self.commit(&batch).await {
                Ok(version) => {
                    let first = self.version + 1;
                    self.version = version;
                    break first;
                }
                // Another process recorded an approval, a follow-up or a kill meanwhile:
                // take it in and commit this batch again on top of it.
                Err(conflict @ store::Error::Conflict { .. }) => {
                    if !self.take_in_outside(&mut batch).await? {
                        return Err(conflict.into());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        };
        let status = self.model.status();
        for (offset, event) in std::mem::take(&mut batch.events).into_iter().enumerate() {
            let committed = Committed {
                seq: first_seq + offset as i64,
                at: batch.at.clone(),
                event,
            };
            let _ = self.observer.send(committed);
        }
        if status == RunStatus::Canceled {
            self.stop_all();
        }
        for &index in &batch.completed {
            self.release_when_idle(index).await;
        }
        self.perform(batch)
    }

    async fn commit(&self, batch: &Batch) -> Result<i64, store::Error> {
        let updates: Vec<AgentUpdate> = batch.touched.iter().map(|&i| self.update_of(i)).collect();
        let status = self.model.status();
        let finished_at = status.is_terminal().then(|| batch.at.clone());
        let commit = Commit {
            run_id: &self.row.id,
            expected_version: self.version,
            at: &batch.at,
            events: &batch.events,
            agents: &updates,
            status,
            finished_at: finished_at.as_deref(),
        };
        self.executor.store.commit(&commit).await
    }

    /// Starts the attempts and gate checks of a committed batch.
    fn perform(&mut self, batch: Batch) -> Result<(), Error> {
        for (index, attempt) in batch.started {
            self.start(index, attempt)?;
        }
        for (index, attempt, gate) in batch.checks {
            self.start_check(index, attempt, gate);
        }
        Ok(())
    }

    fn event_for(&mut self, message: Message) -> Option<Event> {
        if let Message::Exited { index, .. } | Message::Gate { index, .. } = &message {
            self.stopping.remove(index);
        }
        let (index, attempt, expected) = match &message {
            Message::Line { index, attempt, .. }
            | Message::Session { index, attempt, .. }
            | Message::Exited { index, attempt, .. } => (*index, *attempt, AgentState::Running),
            Message::Gate { index, attempt, .. } => (*index, *attempt, AgentState::ChecksPending),
        };
        let agent = &self.model.agents()[index];
        if agent.attempt != attempt || agent.state != expected {
            return None;
        }
        let slug = agent.slug.clone();
        Some(match message {
            Message::Line { line, .. } => {
                let stream = match line.stream {
                    murmur_runtime::Stream::Stdout => Stream::Stdout,
                    murmur_runtime::Stream::Stderr => Stream::Stderr,
                };
                Event::AgentOutput {
                    slug,
                    attempt,
                    stream,
                    line: line.text,
                }
            }
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
        Event::AgentSucceeded {
            slug,
            attempt,
            response: done.response,
            delivered: done.delivered,
        }
    }

    fn stamp_times(&mut self, index: usize, event: &Event, at: &str) {
        let times = &mut self.times[index];
        if matches!(event, Event::AgentStarted { .. }) {
            *times = (Some(at.to_owned()), None);
        } else if self.model.agents()[index].state.is_terminal() {
            times.1 = Some(at.to_owned());
        }
    }

    fn update_of(&self, index: usize) -> AgentUpdate {
        let agent = &self.model.agents()[index];
        AgentUpdate {
            slug: agent.slug.clone(),
            position: index,
            state: agent.state,
            attempts: agent.attempt,
            response: agent.response.clone(),
            error: agent.error.clone(),
            started_at: self.times[index].0.clone(),
            finished_at: self.times[index].1.clone(),
            session_id: agent.session_id.clone(),
            delivered: agent.delivered.clone(),
        }
    }
}
