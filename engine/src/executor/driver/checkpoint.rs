//! Checkpoints: events are staged into a batch (applied to the model, refused when illegal),
//! committed in one transaction with the agents' new state, told to observers, and only then
//! acted on: attempts started, gate checks begun, idle worktrees released.

use super::Driver;
use crate::event::{Event, GateKind};
use crate::executor::{Committed, Error};
use crate::state::RunStatus;
use crate::store::{self, AgentUpdate, Commit};

/// Events applied to the model but not yet committed, with what they touched.
pub(super) struct Batch {
    pub at: String,
    pub events: Vec<Event>,
    touched: Vec<usize>,
    started: Vec<(usize, u32)>,
    /// Gates the engine checks itself, opened in this batch.
    pub checks: Vec<(usize, u32, GateKind)>,
    /// Agents that completed in this batch: `on_idle` may release their worktrees.
    completed: Vec<usize>,
}

impl Batch {
    /// The agents whose state the batch changes.
    pub fn touched(&self) -> &[usize] {
        &self.touched
    }

    /// Work the batch starts on machines of the agents `of` picks: attempts, and checks the
    /// engine runs.
    pub fn new_work_in(&self, of: impl Fn(usize) -> bool) -> usize {
        let started = self.started.iter().filter(|(index, _)| of(*index));
        let checks = self.checks.iter().filter(|(index, _, _)| of(*index));
        started.count() + checks.count()
    }
}

impl Driver<'_> {
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
            let free = self.free_machines(batch);
            let decided = self.model.decide_in(free, &self.executor.clock.stamp());
            if decided.is_empty() {
                return Ok(());
            }
            self.stage(batch, decided)?;
        }
    }

    /// Applies events to the model (refusing illegal ones) and adds them to the batch, after
    /// the riders, which happened before them.
    pub(super) fn stage(&mut self, batch: &mut Batch, events: Vec<Event>) -> Result<(), Error> {
        if !events.is_empty() {
            self.stage_riders(batch)?;
        }
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

    /// Stages the riders; one that the state no longer allows (its agent killed meanwhile) is
    /// dropped, as its message would have been.
    pub(super) fn stage_riders(&mut self, batch: &mut Batch) -> Result<(), Error> {
        self.ride_until = None;
        for rider in std::mem::take(&mut self.riders) {
            match self.stage(batch, vec![rider]) {
                Ok(()) | Err(Error::Replay(_)) => {}
                Err(other) => return Err(other),
            }
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
                    // An act goes after whatever lines the driver committed meanwhile, so
                    // its events are numbered back from the version it reached.
                    let first = version + 1 - batch.events.len() as i64;
                    self.version = version;
                    if self.lease.is_some() {
                        self.note_machines(&batch);
                    }
                    break first;
                }
                // Another process recorded an approval, a follow-up or a kill meanwhile:
                // take it in and commit this batch again on top of it.
                Err(conflict @ store::Error::Conflict { .. }) => {
                    if !self.take_in_outside(&mut batch).await? {
                        // A driver ends with the run's new status; a process recording an
                        // act catches up and tries again (`Executor::record_on`).
                        return Err(match self.fence() {
                            Some(_) => self.ended_elsewhere().await,
                            None => conflict.into(),
                        });
                    }
                }
                // Other processes hold the machines this batch would start work on.
                Err(store::Error::PoolFull { full }) => {
                    self.fit_to_pool(&mut batch, &full).await?;
                    if batch.events.is_empty() {
                        return self.perform(batch);
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

    /// Another process committed what this driver cannot take in (a cancel of the run): the
    /// run's stored status says how it ended.
    async fn ended_elsewhere(&self) -> Error {
        let run = self.row.id.clone();
        match self.executor.store.run(&run).await {
            Ok(row) => match RunStatus::parse(&row.status) {
                Some(status) => Error::EndedElsewhere { run, status },
                None => store::Error::Corrupt(format!("run status `{}`", row.status)).into(),
            },
            Err(error) => error.into(),
        }
    }

    async fn commit(&self, batch: &Batch) -> Result<i64, store::Error> {
        let updates: Vec<AgentUpdate> = batch.touched.iter().map(|&i| self.update_of(i)).collect();
        let status = self.model.status();
        let finished_at = status.is_terminal().then(|| batch.at.clone());
        let machines = self.machine_use(batch);
        let commit = Commit {
            run_id: &self.row.id,
            expected_version: self.version,
            at: &batch.at,
            events: &batch.events,
            agents: &updates,
            status,
            finished_at: finished_at.as_deref(),
            fence: self.fence(),
            machines: machines.as_ref(),
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
            machine: agent.machine.clone(),
            delivered: agent.delivered.clone(),
        }
    }
}
