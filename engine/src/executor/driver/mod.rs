//! Driving one run: replay its log, then loop — take agent messages, let the model decide,
//! checkpoint everything in one commit, and only then act on what was committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use murmur_parser::{Agent, Dag, Flight};
use tokio::sync::{mpsc, oneshot};

use super::launch::Message;
use super::{Committed, Error, Executor, RunLease};
use crate::event::Event;
use crate::model::{RunModel, RunPolicy};
use crate::run;
use crate::state::RunStatus;
use crate::store::RunRow;

mod checkpoint;
mod effects;
mod machines;
mod messages;
mod outside;
mod plans;
mod rest;

pub use outside::Verdict;

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
    /// Held while this driver drives the run; `None` for a process that only records an
    /// act on it (a cancel, an approval), whose commits are not fenced.
    lease: Option<RunLease>,
    /// The pools the run's agents use (the model numbers them alike).
    pools: crate::executor::RunPools,
    /// Per pool: machines free for this run across processes, once the pool was found full;
    /// `None` while nothing else competes for the pool.
    machine_budget: Vec<Option<usize>>,
    /// Agents whose machine rows this driver has committed.
    holding: HashSet<usize>,
    /// Per pool: whether the store records this run as waiting for its machines.
    waiting: Vec<bool>,
    /// Per pool: the run's place in the line for its machines, while it waits for them.
    pool_place: Vec<Option<crate::store::PoolPlace>>,
    /// This host's slots, once an attempt ran on them.
    local: Option<std::sync::Arc<dyn crate::executor::Placement>>,
    /// The workspace's agent environment, with this run's own secrets (`murmur spawn -e`).
    environment: crate::executor::environment::AgentEnvironment,
    /// Events that ride the next checkpoint instead of forcing one (`rides`), not yet
    /// applied to the model; committed at the latest by `ride_until`.
    riders: Vec<Event>,
    ride_until: Option<tokio::time::Instant>,
}

/// How long a run that ends waits for the agents it stopped to be gone.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long an attempt's `agent_placed` / `agent_running` may wait for a checkpoint that is
/// committed anyway (its first lines, its end) before it is committed on its own. A short
/// agent's end comes within it, so its phases cost no fsync of their own on the critical path,
/// and a reader still sees `running` this soon after the process started.
const RIDE_WINDOW: Duration = Duration::from_millis(10);

/// Why the loop woke up.
enum Wake {
    Messages(Vec<Message>),
    Cancel,
    Watch,
    /// Machines of the pool this run waits for may have come free.
    Pool,
    /// A retry delay is over.
    Timer,
    /// Riders waited their window: they are committed on their own.
    Ride,
    /// Another process took the run over: stop everything, commit nothing.
    LeaseLost,
}

/// What a new driver knows of its run's past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Whatever the store holds: its events are replayed, its agents' times read.
    Stored,
    /// None: the run was created by this process and no driver has ever held its lease
    /// (epoch 0 when this one took it), so nothing was ever committed to it but its row.
    Unwritten,
}

impl<'e> Driver<'e> {
    pub async fn load(
        executor: &'e Executor,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
    ) -> Result<Self, Error> {
        let row = executor.store.run(run_id).await?;
        Self::from_row(executor, row, observer, History::Stored).await
    }

    /// The driver of the run `row` was read of: its events since are replayed here, so a row
    /// read a moment ago (before its lease was taken) is as good as a fresh one.
    pub async fn from_row(
        executor: &'e Executor,
        row: crate::store::RunRow,
        observer: mpsc::UnboundedSender<Committed>,
        history: History,
    ) -> Result<Self, Error> {
        let store = &executor.store;
        let parsed = murmur_parser::parse(&row.source, &row.flight);
        let valid = parsed.diagnostics.iter().all(|d| !d.is_error());
        let mut flight = parsed
            .flight
            .filter(|_| valid)
            .ok_or_else(|| Error::StoredFlight(row.id.clone()))?;
        executor.workspace.apply(&mut flight);
        let agents = run::agents_of(&flight);
        let dag = Dag::build(&agents).map_err(|_| Error::StoredFlight(row.id.clone()))?;
        let rests = executor.pools.rests(&flight, &agents);
        let pools = executor.pools.of_run(&flight, &agents, executor.slots);
        let mut model = RunModel::new(&agents, &dag, RunPolicy::of(&flight.frontmatter))
            .with_rests(rests)
            .with_pools(pools.of_agent.clone());
        let pool_count = pools.count();
        let agents_len = agents.len();
        // The log may have moved on since the row was read: the model and the version the
        // next commit expects are both those of the events replayed.
        let mut version = row.version;
        let mut stored_times: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
        if history == History::Stored {
            for stored in store.events(&row.id, 0).await? {
                model.apply(&outside::decode(&row.id, stored.seq, &stored.data)?)?;
                version = stored.seq;
            }
            stored_times = store
                .agents(&row.id)
                .await?
                .into_iter()
                .map(|a| (a.slug, (a.started_at, a.finished_at)))
                .collect();
        }
        let times = model.agents()[..agents.len()]
            .iter()
            .map(|a| stored_times.remove(&a.slug).unwrap_or_default())
            .collect();
        let inputs = serde_json::from_str(&row.inputs).unwrap_or_default();
        let event = row
            .event
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let environment = executor
            .environment
            .with_secrets(&store.run_secrets(&row.id).await?);
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut driver = Self {
            executor,
            version,
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
            lease: None,
            pools,
            machine_budget: vec![None; pool_count],
            holding: HashSet::new(),
            waiting: vec![false; pool_count],
            pool_place: (0..pool_count).map(|_| None).collect(),
            local: None,
            environment,
            riders: Vec::new(),
            ride_until: None,
        };
        driver.sync_instances();
        for index in agents_len..driver.agents.len() {
            let slug = &driver.model.agents()[index].slug;
            driver.times[index] = stored_times.remove(slug).unwrap_or_default();
        }
        Ok(driver)
    }

    /// Drives the run under `lease` until it ends or another process takes over; agents it
    /// stopped are gone (their process trees killed and reaped) when it returns.
    pub async fn drive_with(
        &mut self,
        lease: RunLease,
        cancel: oneshot::Receiver<()>,
    ) -> Result<RunStatus, Error> {
        // The previous holder is gone, or it was this process, whose drive of the run ended
        // without letting the lease go (the lease is no longer in this process's registry).
        // A run never leased before (epoch 0) never started an agent: nothing can be left
        // behind, and looking would read every process's environment for each new run.
        let previous = &lease.previous;
        let left_behind = previous.epoch > 0
            && (previous.owner.as_deref() == Some(&self.executor.leases.owner().id)
                || previous
                    .holder
                    .as_ref()
                    .is_none_or(|holder| holder.is_gone_here()));
        self.lease = Some(lease);
        let ended = match self.drive_loop(cancel, left_behind).await {
            Err(Error::EndedElsewhere { status, .. }) => Ok(status),
            other => other,
        };
        if ended.is_err() {
            // Fenced, lost or failing: whoever drives the run next starts new attempts.
            self.stop_all();
        }
        self.wait_until_stopped().await;
        ended
    }

    /// The lease, unless it was lost: the caller releases it.
    pub fn take_lease(&mut self) -> Option<RunLease> {
        self.lease.take().filter(|lease| !lease.is_lost())
    }

    /// The epoch the driver's commits carry.
    pub(super) fn fence(&self) -> Option<i64> {
        self.lease.as_ref().map(|lease| lease.epoch)
    }

    async fn drive_loop(
        &mut self,
        mut cancel: oneshot::Receiver<()>,
        left_behind: bool,
    ) -> Result<RunStatus, Error> {
        if self.model.status().is_terminal() {
            return Ok(self.model.status());
        }
        // This process now drives the run. When the previous driver is proven gone, anything
        // still running under the run's id was left behind by it and must not race the
        // attempts that replace it: killed before the interruptions are committed, so that a
        // crash in between is covered too. A previous driver that still lives (paused past
        // its lease) stops its own agents when it notices the lease is lost.
        if left_behind {
            murmur_runtime::kill_marked("MURMUR_RUN_ID", &self.row.id);
        }
        let mut commits = self.executor.store.watch_run(&self.row.id);
        if self.model.status() == RunStatus::Queued
            && let Some(ended) = self.wait_for_turn(&mut cancel, &mut commits).await?
        {
            return Ok(ended);
        }
        let mut batch = self.batch();
        // Checks that were under way when the engine stopped are interrupted too and open
        // again through `decide` (they are repeatable), counted against the pool.
        let interrupted = self.model.interrupted();
        self.stage(&mut batch, interrupted)?;
        loop {
            self.decide_into(&mut batch)?;
            self.checkpoint(batch).await?;
            if self.model.status().is_terminal() {
                return Ok(self.model.status());
            }
            let wake = self.wake(&mut cancel, &mut commits).await;
            // Stamped now: the events below happen at this moment, not when the wait began.
            batch = self.batch();
            match wake {
                Wake::Messages(messages) => {
                    // Staged one by one: each message is judged against the state the
                    // messages before it left (an exit makes later lines of that attempt stale).
                    for message in messages {
                        if let Some(event) = self.event_for(message) {
                            if messages::rides(&event) && batch.events.is_empty() {
                                self.ride(event);
                            } else {
                                self.stage(&mut batch, vec![event])?;
                            }
                        }
                    }
                }
                Wake::Ride => self.stage_riders(&mut batch)?,
                Wake::Cancel => {
                    let events = self.model.cancel();
                    self.stage(&mut batch, events)?;
                }
                Wake::Pool => self.look_at_pool().await?,
                Wake::Watch => {
                    self.look_at_pool().await?;
                    if let Some(status) = self.changed_elsewhere().await? {
                        self.stop_all();
                        // Still going, and not by this driver's hand: another process drives it.
                        if !status.is_terminal() && self.lease.is_some() {
                            return Err(Error::LeaseLost(self.row.id.clone()));
                        }
                        return Ok(status);
                    }
                }
                Wake::Timer => {}
                Wake::LeaseLost => return Err(Error::LeaseLost(self.row.id.clone())),
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
    /// (running ones, then queued ones by age), first come first served; the store's waiting
    /// line tells it (`store::turns`), so a queued run costs nothing while it waits. Returns
    /// the status when the run ended while waiting (canceled here or elsewhere).
    async fn wait_for_turn(
        &mut self,
        cancel: &mut oneshot::Receiver<()>,
        commits: &mut tokio::sync::watch::Receiver<i64>,
    ) -> Result<Option<RunStatus>, Error> {
        let limit = self.flight.frontmatter.max_concurrent as usize;
        if limit == 0 {
            return Ok(None);
        }
        let store = self.executor.store.clone();
        let (flight, id, created) = (
            self.row.flight.clone(),
            self.row.id.clone(),
            self.row.created_at.clone(),
        );
        let turn = store.wait_for_turn(&flight, limit, &id, &created);
        tokio::pin!(turn);
        loop {
            tokio::select! {
                () = lease_lost(self.lease.as_mut()) => return Err(Error::LeaseLost(self.row.id.clone())),
                admitted = &mut turn => return admitted.map(|()| None).map_err(Error::from),
                Ok(()) = commits.changed() => {
                    if let Some(status) = self.changed_elsewhere().await? {
                        return Ok(Some(status));
                    }
                }
                Ok(()) = &mut *cancel => return self.cancel_now().await.map(Some),
            }
        }
    }

    /// Cancels now, without driving: for a run no process is driving (or from another
    /// process than its driver, which is then told who canceled it).
    pub async fn cancel_now(&mut self) -> Result<RunStatus, Error> {
        let mut batch = self.batch();
        let mut events = self.model.cancel();
        if self.lease.is_none() {
            let me = self.executor.leases.owner().holder.describe();
            for event in &mut events {
                if let Event::RunCanceled { by } = event {
                    *by = Some(me.clone());
                }
            }
        }
        self.stage(&mut batch, events)?;
        self.checkpoint(batch).await?;
        Ok(self.model.status())
    }

    async fn wake(
        &mut self,
        cancel: &mut oneshot::Receiver<()>,
        commits: &mut tokio::sync::watch::Receiver<i64>,
    ) -> Wake {
        // This driver's own commits are already in: only a newer one is someone else's.
        if *commits.borrow_and_update() > self.version {
            return Wake::Watch;
        }
        let retry_in = self.model.next_timer_at().map(|_| self.until_next_retry());
        self.keep_pool_place();
        let ride_until = self.ride_until;
        tokio::select! {
            biased;
            () = lease_lost(self.lease.as_mut()) => Wake::LeaseLost,
            // Before messages: a stream of riders alone must not hold the first back forever.
            () = tokio::time::sleep_until(ride_until.unwrap_or_else(tokio::time::Instant::now)), if ride_until.is_some() => Wake::Ride,
            message = self.receiver.recv() => {
                let mut messages: Vec<Message> = message.into_iter().collect();
                while let Ok(more) = self.receiver.try_recv() {
                    messages.push(more);
                }
                Wake::Messages(messages)
            }
            Ok(()) = &mut *cancel => Wake::Cancel,
            () = told(&self.pool_place) => Wake::Pool,
            Ok(()) = commits.changed() => Wake::Watch,
            () = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => Wake::Timer,
        }
    }

    /// While the run waits for machines of a pool, its place in the pool's line (oldest runs
    /// are told first when machines come free); none otherwise.
    fn keep_pool_place(&mut self) {
        for pool in 0..self.pools.count() {
            match (&self.machine_budget[pool], &self.pool_place[pool]) {
                (Some(_), None) => {
                    self.pool_place[pool] = Some(self.executor.store.wait_for_machines(
                        &self.pools.names[pool],
                        self.pools.capacity[pool],
                        &self.row.id,
                        &self.row.created_at,
                    ));
                }
                (None, Some(_)) => self.pool_place[pool] = None,
                _ => {}
            }
        }
    }

    /// How long until the earliest retry delay ends, by the injected clock.
    fn until_next_retry(&self) -> Duration {
        let Some(at) = self.model.next_timer_at() else {
            return Duration::ZERO;
        };
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) else {
            return Duration::ZERO;
        };
        (at.with_timezone(&chrono::Utc) - self.executor.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO)
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
}

/// Resolves when machines may have come free in a pool the run waits for; never otherwise.
async fn told(places: &[Option<crate::store::PoolPlace>]) {
    let mut waits: Vec<_> = places
        .iter()
        .flatten()
        .map(|place| Box::pin(place.told()))
        .collect();
    if let [only] = &mut waits[..] {
        return only.await;
    }
    std::future::poll_fn(|cx| {
        let told = waits
            .iter_mut()
            .any(|wait| wait.as_mut().poll(cx).is_ready());
        if told {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Resolves when the driver's lease is lost; never for a driver without one.
async fn lease_lost(lease: Option<&mut RunLease>) {
    match lease {
        Some(lease) => lease.lost().await,
        None => std::future::pending().await,
    }
}
