//! What other processes record about a run while this one drives it. A person's decision at
//! an `approve` gate (from `murmur runs approve` or the HTTP API) is taken in; anything else,
//! such as a cancel, means this process stops driving.

use super::Driver;
use crate::event::{Event, GateKind};
use crate::executor::{Committed, Error};
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
        let events = self
            .executor
            .store
            .events(&self.row.id, self.version)
            .await?;
        let mut decoded = Vec::with_capacity(events.len());
        for stored in &events {
            let event: Event = serde_json::from_str(&stored.data).map_err(|e| {
                store::Error::Corrupt(format!("event {} of run {}: {e}", stored.seq, row.id))
            })?;
            decoded.push((stored.seq, stored.at.clone(), event));
        }
        if !decoded.iter().all(|(_, _, event)| is_decision(event)) {
            let status = RunStatus::parse(&row.status)
                .ok_or_else(|| store::Error::Corrupt(format!("run status `{}`", row.status)))?;
            return Ok(Some(status));
        }
        for (seq, at, event) in decoded {
            self.model.apply(&event)?;
            let _ = self.observer.send(Committed { seq, at, event });
        }
        self.version = row.version;
        Ok(None)
    }

    /// Records a person's decision at the agent's `approve` gate (this process does not drive
    /// the run; the one that does takes the decision in).
    pub async fn decide_gate_now(&mut self, slug: &str, verdict: &Verdict) -> Result<(), Error> {
        let index = self
            .model
            .index_of(slug)
            .ok_or_else(|| Error::NoAgent(slug.to_owned()))?;
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
}

fn is_decision(event: &Event) -> bool {
    matches!(
        event,
        Event::GatePassed {
            gate: GateKind::Approve,
            ..
        } | Event::GateFailed {
            gate: GateKind::Approve,
            ..
        }
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
