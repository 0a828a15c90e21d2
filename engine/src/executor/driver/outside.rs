//! What other processes record about a run while this one drives it. A person's decision at
//! an `approve` gate, a queued follow-up and a killed agent are taken in; anything else, such
//! as a cancel of the whole run, means this process stops driving.

use murmur_parser::Dag;

use super::Driver;
use super::checkpoint::Batch;
use crate::event::{Event, GateKind};
use crate::executor::{Committed, Error};
use crate::model::{RunModel, RunPolicy};
use crate::state::{AgentState, RunStatus};
use crate::store;

/// A person's answer at an `approve` gate.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub approve: bool,
    pub comment: Option<String>,
}

impl Driver<'_> {
    /// The run's status when another process committed something this driver cannot take in
    /// (a cancel), else `None`.
    pub(super) async fn changed_elsewhere(&mut self) -> Result<Option<RunStatus>, Error> {
        let row = self.executor.store.run(&self.row.id).await?;
        if row.version == self.version {
            return Ok(None);
        }
        let outside = self.outside_events().await?;
        if !outside.iter().all(|(_, _, event)| taken_in(event)) {
            let status = RunStatus::parse(&row.status)
                .ok_or_else(|| store::Error::Corrupt(format!("run status `{}`", row.status)))?;
            // Observers see what ended the run here (a cancel, and who made it).
            self.publish(outside);
            return Ok(Some(status));
        }
        for (_, _, event) in &outside {
            self.model.apply(event)?;
        }
        self.publish(outside);
        self.version = row.version;
        Ok(None)
    }

    /// After a commit lost the race to another process: when what that process recorded can
    /// be taken in, the model is rebuilt from the log, the batch's events that still apply are
    /// staged again on top, and the model decides again. False when the run must stop instead.
    pub(super) async fn take_in_outside(&mut self, batch: &mut Batch) -> Result<bool, Error> {
        let outside = self.outside_events().await?;
        if !outside.iter().all(|(_, _, event)| taken_in(event)) {
            self.publish(outside);
            return Ok(false);
        }
        let version = outside.last().map_or(self.version, |(seq, _, _)| *seq);
        self.model = self.rebuilt_model().await?;
        self.version = version;
        self.publish(outside);
        self.restage(batch, |_| true).await?;
        Ok(true)
    }

    /// The model as the committed log leaves it (what this driver staged but did not commit
    /// is not in it).
    pub(super) async fn rebuilt_model(&self) -> Result<RunModel, Error> {
        let flight_agents = &self.agents[..self.flight_agents];
        let dag =
            Dag::build(flight_agents).map_err(|_| Error::StoredFlight(self.row.id.clone()))?;
        let rests = self.executor.pools.rests(&self.flight, flight_agents);
        let mut model = RunModel::new(flight_agents, &dag, RunPolicy::of(&self.flight.frontmatter))
            .with_rests(rests)
            .with_pools(self.pools.of_agent.clone());
        for stored in self.executor.store.events(&self.row.id, 0).await? {
            model.apply(&decode(&self.row.id, stored.seq, &stored.data)?)?;
        }
        Ok(model)
    }

    /// After the model was rebuilt: stages the batch's events again (those `keep` accepts and
    /// the new state still allows), then lets the model decide again.
    pub(super) async fn restage(
        &mut self,
        batch: &mut Batch,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<(), Error> {
        let at = batch.at.clone();
        let pending = std::mem::replace(batch, self.batch());
        batch.at = at;
        for event in pending.events.into_iter().filter(|event| keep(event)) {
            // The run's own verdicts are decided again on the new state.
            if matches!(event, Event::RunCompleted | Event::RunFailed { .. }) {
                continue;
            }
            // An event the new state no longer allows (work for an agent killed meanwhile)
            // is dropped: `apply` refuses before it changes anything.
            match self.stage(batch, vec![event]) {
                Ok(()) | Err(Error::Replay(_)) => {}
                Err(other) => return Err(other),
            }
        }
        self.decide_into(batch)
    }

    /// For a process that records one act on a run (an approval, a follow-up, a kill): takes
    /// in what was committed since this driver loaded, so the act is judged on the latest state.
    pub async fn catch_up(&mut self) -> Result<(), Error> {
        for (seq, _, event) in self.outside_events().await? {
            self.model.apply(&event)?;
            self.version = seq;
        }
        self.sync_instances();
        Ok(())
    }

    /// Events committed by others since this driver's last commit.
    async fn outside_events(&self) -> Result<Vec<(i64, String, Event)>, Error> {
        let stored = self
            .executor
            .store
            .events(&self.row.id, self.version)
            .await?;
        stored
            .into_iter()
            .map(|row| Ok((row.seq, row.at, decode(&self.row.id, row.seq, &row.data)?)))
            .collect()
    }

    /// Tells observers, and stops the work of an agent that was killed.
    fn publish(&mut self, outside: Vec<(i64, String, Event)>) {
        for (seq, at, event) in outside {
            if let Event::AgentCanceled { slug } = &event
                && let Some(index) = self.model.index_of(slug)
            {
                self.stop(index);
            }
            let _ = self.observer.send(Committed { seq, at, event });
        }
    }

    /// Records a person's decision at the agent's `approve` gate (this process does not drive
    /// the run; the one that does takes the decision in).
    pub async fn decide_gate_now(&mut self, slug: &str, verdict: &Verdict) -> Result<(), Error> {
        let index = self.agent_index(slug)?;
        let agent = &self.model.agents()[index];
        let waiting = agent.state == AgentState::ChecksPending
            && agent.gates.open
            && self.model.current_gate(index) == Some(GateKind::Approve);
        if !waiting {
            return Err(Error::NotAwaitingApproval {
                slug: slug.to_owned(),
                state: agent.state,
            });
        }
        let (slug, attempt, gate) = (agent.slug.clone(), agent.attempt, GateKind::Approve);
        let comment = verdict.comment.clone().unwrap_or_default();
        let event = if verdict.approve {
            Event::GatePassed {
                slug,
                attempt,
                gate,
                note: comment,
            }
        } else {
            Event::GateFailed {
                slug,
                attempt,
                gate,
                feedback: rejection(&comment),
            }
        };
        let mut batch = self.batch();
        self.stage(&mut batch, vec![event])?;
        self.checkpoint(batch).await
    }

    /// `murmur queue add`: queues a message for the agent; a completed run is reopened so
    /// that the agent can take it. Returns whether the run was reopened (nobody drives it).
    pub async fn queue_follow_up_now(&mut self, slug: &str, text: &str) -> Result<bool, Error> {
        let index = self.agent_index(slug)?;
        let agent = &self.model.agents()[index];
        let status = self.model.status();
        if matches!(status, RunStatus::Failed | RunStatus::Canceled) {
            return Err(Error::RunEnded {
                run: self.row.id.clone(),
                status,
            });
        }
        if matches!(
            agent.state,
            AgentState::Failed | AgentState::Skipped | AgentState::Canceled
        ) {
            return Err(Error::CannotFollowUp {
                run: self.row.id.clone(),
                slug: slug.to_owned(),
                state: agent.state,
            });
        }
        let mut events = vec![Event::FollowUpQueued {
            slug: agent.slug.clone(),
            text: text.to_owned(),
        }];
        let reopen = status == RunStatus::Completed;
        if reopen {
            events.push(Event::RunReopened);
        }
        let mut batch = self.batch();
        self.stage(&mut batch, events)?;
        self.checkpoint(batch).await?;
        Ok(reopen)
    }

    /// `murmur kill`: cancels one agent (a fan-out template with its instances). The process
    /// driving the run stops its work; the run then ends as after a failure.
    pub async fn kill_now(&mut self, slug: &str) -> Result<(), Error> {
        let index = self.agent_index(slug)?;
        let agent = &self.model.agents()[index];
        if agent.state.is_terminal() {
            return Err(Error::AlreadyEnded {
                slug: slug.to_owned(),
                state: agent.state,
            });
        }
        let events: Vec<Event> = self
            .model
            .instances(index)
            .iter()
            .chain([&index])
            .map(|&i| &self.model.agents()[i])
            .filter(|agent| !agent.state.is_terminal())
            .map(|agent| Event::AgentCanceled {
                slug: agent.slug.clone(),
            })
            .collect();
        let mut batch = self.batch();
        self.stage(&mut batch, events)?;
        self.checkpoint(batch).await
    }

    fn agent_index(&self, slug: &str) -> Result<usize, Error> {
        self.model
            .index_of(slug)
            .ok_or_else(|| Error::NoAgent(slug.to_owned()))
    }
}

fn taken_in(event: &Event) -> bool {
    matches!(
        event,
        Event::GatePassed {
            gate: GateKind::Approve,
            ..
        } | Event::GateFailed {
            gate: GateKind::Approve,
            ..
        } | Event::FollowUpQueued { .. }
            | Event::AgentCanceled { .. }
            | Event::SleepRequested { .. }
            | Event::WakeRequested { .. }
    )
}

fn rejection(comment: &str) -> String {
    if comment.trim().is_empty() {
        "Your work was rejected at the `approve` gate, without a comment. Review it and improve it."
            .to_owned()
    } else {
        format!(
            "Your work was rejected at the `approve` gate. The reviewer's comment:\n\n{}\n\nAddress it and commit your changes.",
            comment.trim()
        )
    }
}

pub(super) fn decode(run_id: &str, seq: i64, data: &str) -> Result<Event, Error> {
    serde_json::from_str(data)
        .map_err(|e| store::Error::Corrupt(format!("event {seq} of run {run_id}: {e}")).into())
}
