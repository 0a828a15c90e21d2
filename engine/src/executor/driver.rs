//! Driving one run: replay its log, then loop — take agent messages, let the model decide,
//! checkpoint everything in one commit, and only then act on what was committed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use murmur_parser::{Agent, Dag, Flight};
use tokio::sync::{mpsc, oneshot};

use super::claude::ClaudePlan;
use super::codex::CodexPlan;
use super::launch::{self, Launch, Message, RuntimePlan};
use super::workspace::{PullRequestDraft, WorkspacePlan};
use super::{Committed, Error, Executor};
use crate::event::{Event, Stream};
use crate::model::RunModel;
use crate::run::{self, UpstreamResult};
use crate::state::{AgentState, RunStatus};
use crate::store::{self, AgentUpdate, Commit, RunRow};

pub(super) struct Driver<'e> {
    executor: &'e Executor,
    row: RunRow,
    flight: Flight,
    agents: Vec<Agent>,
    model: RunModel,
    version: i64,
    inputs: BTreeMap<String, String>,
    event: Option<serde_json::Value>,
    times: Vec<(Option<String>, Option<String>)>,
    stops: HashMap<usize, oneshot::Sender<()>>,
    observer: mpsc::UnboundedSender<Committed>,
    sender: mpsc::UnboundedSender<Message>,
    receiver: mpsc::UnboundedReceiver<Message>,
}

/// Events applied to the model but not yet committed, with what they touched.
struct Batch {
    at: String,
    events: Vec<Event>,
    touched: Vec<usize>,
    started: Vec<(usize, u32)>,
}

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
        let mut model = RunModel::new(&agents, &dag);
        for stored in store.events(&row.id, 0).await? {
            let event: Event = serde_json::from_str(&stored.data).map_err(|e| {
                store::Error::Corrupt(format!("event {} of run {}: {e}", stored.seq, row.id))
            })?;
            model.apply(&event)?;
        }
        let times = store
            .agents(&row.id)
            .await?
            .into_iter()
            .map(|a| (a.started_at, a.finished_at))
            .collect();
        let inputs = serde_json::from_str(&row.inputs).unwrap_or_default();
        let event = row
            .event
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let (sender, receiver) = mpsc::unbounded_channel();
        Ok(Self {
            executor,
            version: row.version,
            row,
            flight,
            agents,
            model,
            inputs,
            event,
            times,
            stops: HashMap::new(),
            observer,
            sender,
            receiver,
        })
    }

    pub async fn run(&mut self, mut cancel: oneshot::Receiver<()>) -> Result<RunStatus, Error> {
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
        loop {
            self.decide_into(&mut batch)?;
            self.checkpoint(batch).await?;
            if self.model.status().is_terminal() {
                return Ok(self.model.status());
            }
            batch = self.batch();
            match self.wake(&mut cancel, &mut watch).await {
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

    /// The run's status when another process committed to it (a cancel), else `None`.
    async fn changed_elsewhere(&self) -> Result<Option<RunStatus>, Error> {
        let row = self.executor.store.run(&self.row.id).await?;
        if row.version == self.version {
            return Ok(None);
        }
        let status = RunStatus::parse(&row.status)
            .ok_or_else(|| store::Error::Corrupt(format!("run status `{}`", row.status)))?;
        Ok(Some(status))
    }

    fn stop_all(&mut self) {
        for (_, stop) in self.stops.drain() {
            let _ = stop.send(());
        }
    }

    fn batch(&self) -> Batch {
        Batch {
            at: self.executor.clock.stamp(),
            events: Vec::new(),
            touched: Vec::new(),
            started: Vec::new(),
        }
    }

    /// Lets the model decide until it has nothing more to say for now.
    fn decide_into(&mut self, batch: &mut Batch) -> Result<(), Error> {
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
    fn stage(&mut self, batch: &mut Batch, events: Vec<Event>) -> Result<(), Error> {
        for event in events {
            self.model.apply(&event)?;
            if let Some(index) = event.slug().and_then(|slug| self.model.index_of(slug)) {
                self.stamp_times(index, &event, &batch.at);
                if batch.touched.last() != Some(&index) {
                    batch.touched.push(index);
                }
                if let Event::AgentStarted { attempt, .. } = event {
                    batch.started.push((index, attempt));
                }
            }
            batch.events.push(event);
        }
        Ok(())
    }

    /// Commits the batch, tells observers, then performs its effects: starting agents, or
    /// stopping them when the run was canceled.
    async fn checkpoint(&mut self, mut batch: Batch) -> Result<(), Error> {
        if batch.events.is_empty() {
            return Ok(());
        }
        batch.touched.sort_unstable();
        batch.touched.dedup();
        let updates: Vec<AgentUpdate> = batch.touched.iter().map(|&i| self.update_of(i)).collect();
        let status = self.model.status();
        let finished_at = status.is_terminal().then(|| batch.at.clone());
        let first_seq = self.version + 1;
        let commit = Commit {
            run_id: &self.row.id,
            expected_version: self.version,
            at: &batch.at,
            events: &batch.events,
            agents: &updates,
            status,
            finished_at: finished_at.as_deref(),
        };
        self.version = self.executor.store.commit(&commit).await?;
        for (offset, event) in batch.events.into_iter().enumerate() {
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
        for (index, attempt) in batch.started {
            self.start(index, attempt)?;
        }
        Ok(())
    }

    fn event_for(&mut self, message: Message) -> Option<Event> {
        let (index, attempt) = match &message {
            Message::Line { index, attempt, .. }
            | Message::Session { index, attempt, .. }
            | Message::Exited { index, attempt, .. } => (*index, *attempt),
        };
        let agent = &self.model.agents()[index];
        if agent.attempt != attempt || agent.state != AgentState::Running {
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
                    Ok(finished) => Event::AgentSucceeded {
                        slug,
                        attempt,
                        response: finished.response,
                        delivered: finished.delivered,
                    },
                    Err(error) => self.failure(index, slug, attempt, error),
                }
            }
        })
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

    /// The effect of a committed `AgentStarted`.
    fn start(&mut self, index: usize, attempt: u32) -> Result<(), Error> {
        let (workspace, runtime) = self.plans(index, attempt)?;
        let request = Launch {
            index,
            attempt,
            agent: &self.agents[index],
            flight: &self.flight,
            run_id: &self.row.id,
            flight_name: &self.row.flight,
            inputs: &self.inputs,
            event: self.event.as_ref(),
            upstream: self.upstream_results(index),
            work_root: &self.executor.work_root,
            repository: &self.executor.repository,
            workspace,
            runtime,
        };
        let stop = launch::launch(request, self.sender.clone())?;
        self.stops.insert(index, stop);
        Ok(())
    }

    /// Every agent upstream of `index`, not just its direct `needs`: references may reach
    /// further up, and the prompt's results block picks the direct ones.
    fn upstream_results(&self, index: usize) -> Vec<UpstreamResult> {
        let agents = self.model.agents();
        self.model
            .ancestors(index)
            .into_iter()
            .map(|up| &agents[up])
            .filter(|up| up.state == AgentState::Completed)
            .map(|up| UpstreamResult {
                slug: up.slug.clone(),
                response: up.response.clone().unwrap_or_default(),
                branch: up.delivered.branch.clone(),
                commits: up.delivered.commits,
                prs: up.delivered.prs.clone(),
            })
            .collect()
    }

    /// How attempt `attempt` of agent `index` runs: its runtime, persona and the session to
    /// continue (coding agents), and its git workspace.
    fn plans(&self, index: usize, attempt: u32) -> Result<(WorkspacePlan, RuntimePlan), Error> {
        let agent = &self.agents[index];
        let persona = run::persona_of(&self.flight, agent, &self.executor.repository)?;
        let runtime = run::runtime_of(&self.flight, agent, &persona);
        let coding = runtime != murmur_parser::Runtime::Exec;
        let own = &self.model.agents()[index];
        let continued = agent
            .continues
            .as_deref()
            .and_then(|up| self.model.index_of(up));
        let (tree_slug, branch, merge, resume) = match continued {
            Some(up) => {
                let upstream = &self.model.agents()[up];
                let branch = upstream
                    .delivered
                    .branch
                    .clone()
                    .unwrap_or_else(|| self.branch_name(&self.agents[up]));
                let resume = own
                    .session_id
                    .clone()
                    .filter(|_| attempt > 1)
                    .or_else(|| upstream.session_id.clone());
                (upstream.slug.clone(), branch, Vec::new(), resume)
            }
            None => {
                let resume = own.session_id.clone().filter(|_| attempt > 1);
                (
                    agent.slug.clone(),
                    self.branch_name(agent),
                    self.upstream_branches(index),
                    resume,
                )
            }
        };
        let front = &self.flight.frontmatter;
        let workspace = WorkspacePlan {
            repository: self.executor.repository.clone(),
            base: None,
            worktree: self.executor.work_root.join(&self.row.id).join(tree_slug),
            branch,
            merge,
            out: agent.out.clone().or_else(|| front.out.clone()),
            pull_request: PullRequestDraft {
                id: format!(
                    "{}-{}",
                    self.row.id.get(..12).unwrap_or(&self.row.id),
                    agent.slug
                ),
                run_id: self.row.id.clone(),
                slug: agent.slug.clone(),
                title: format!("{}: {}", self.flight.title, agent.slug),
            },
            store: self.executor.store.clone(),
            clock: self.executor.clock.clone(),
            required: coding,
            github: self.executor.github.clone(),
        };
        let idle_timeout = agent.idle_timeout.unwrap_or(front.idle_timeout).as_std();
        let model = agent.model.clone().or_else(|| front.model.clone());
        let runtime = match runtime {
            murmur_parser::Runtime::Exec => return Ok((workspace, RuntimePlan::Exec)),
            murmur_parser::Runtime::Codex => RuntimePlan::Codex(Box::new(CodexPlan {
                binary: self.executor.codex.binary.clone(),
                config: self.executor.codex.config.clone(),
                persona,
                model,
                resume,
                idle_timeout,
            })),
            murmur_parser::Runtime::Claude => RuntimePlan::Claude(Box::new(ClaudePlan {
                binary: self.executor.claude.binary.clone(),
                overload_backoff: self.executor.claude.overload_backoff,
                model,
                persona,
                resume,
                idle_timeout,
            })),
        };
        Ok((workspace, runtime))
    }

    /// `murmur/<flight>/<run>/<slug>`, or the agent's `branch` directive.
    fn branch_name(&self, agent: &Agent) -> String {
        match &agent.branch {
            Some(branch) => {
                let context = run::Context {
                    event: self.event.as_ref(),
                    run_id: &self.row.id,
                    flight_name: &self.row.flight,
                    inputs: &self.inputs,
                    upstream: &[],
                };
                context.render(branch)
            }
            None => format!("murmur/{}/{}/{}", self.row.flight, self.row.id, agent.slug),
        }
    }

    /// The branches of this agent's `needs` that produced commits, in `needs` order.
    fn upstream_branches(&self, index: usize) -> Vec<String> {
        self.agents[index]
            .needs
            .iter()
            .filter_map(|slug| self.model.index_of(slug))
            .map(|up| &self.model.agents()[up].delivered)
            .filter(|delivered| delivered.commits > 0)
            .filter_map(|delivered| delivered.branch.clone())
            .collect()
    }
}
