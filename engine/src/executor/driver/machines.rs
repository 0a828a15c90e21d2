//! The machines a run's agents hold, counted across every process that shares the store.
//! Each checkpoint says which of the agents it touched hold a machine afterwards; the store
//! refuses it when the pool has no room for the new ones (`store::Error::PoolFull`). Then the
//! driver decides again within what is free, and waits for machines to come free.

use super::Driver;
use super::checkpoint::Batch;
use crate::event::{Event, GateKind};
use crate::executor::Error;
use crate::store::MachineUse;

/// The pool every agent runs on until pools are chosen per agent.
pub(super) const LOCAL_POOL: &str = "local";

impl Driver<'_> {
    /// Machines this run may start new work on now: the pool's size (or its tenant's cap)
    /// less what this run holds, and no more than what was free across processes and tenants
    /// when it last looked.
    pub(super) fn free_machines(&self, batch: &Batch) -> usize {
        let size = match self.executor.pools.tenant_capacity(LOCAL_POOL) {
            Some(cap) => cap.min(self.executor.slots),
            None => self.executor.slots,
        };
        let local = size.saturating_sub(self.model.machines_in_use());
        match self.machine_budget {
            Some(budget) => local.min(budget.saturating_sub(batch.new_work())),
            None => local,
        }
    }

    /// Which touched agents start or stop holding a machine with the batch. `None` when
    /// nothing changes, and for a process that only records an act.
    pub(super) fn machine_use(&self, batch: &Batch) -> Option<MachineUse> {
        self.lease.as_ref()?;
        let (mut hold, mut free) = (Vec::new(), Vec::new());
        for &index in batch.touched() {
            let agent = &self.model.agents()[index];
            match (
                self.holding.contains(&index),
                self.model.holds_machine(index),
            ) {
                (false, true) => hold.push((agent.slug.clone(), agent.attempt)),
                (true, false) => free.push(agent.slug.clone()),
                _ => {}
            }
        }
        // A run that waited for machines and wants none now lets younger runs go.
        let done_waiting = self.waiting && self.model.startable(&self.executor.clock.stamp()) == 0;
        if hold.is_empty() && free.is_empty() && !done_waiting {
            return None;
        }
        let leases = &self.executor.leases;
        Some(MachineUse {
            pool: LOCAL_POOL.to_owned(),
            capacity: self.executor.slots,
            tenant_capacity: self.executor.pools.tenant_capacity(LOCAL_POOL),
            owner: leases.owner().id.clone(),
            holder: leases.owner().holder.clone(),
            expires_at: leases.expires_at(self.executor.clock.as_ref()),
            run_created_at: self.row.created_at.clone(),
            done_waiting,
            hold,
            free,
        })
    }

    /// The pool had fewer machines free than the batch started work on: the batch is staged
    /// again on the committed state without its starts, and the model decides within
    /// `available`.
    pub(super) async fn fit_to_pool(
        &mut self,
        batch: &mut Batch,
        available: usize,
    ) -> Result<(), Error> {
        tracing::debug!(run = %self.row.id, available, "the pool is full: deciding again within what is free");
        self.machine_budget = Some(available);
        // The store recorded the wait with the refusal: younger runs now let this one go first.
        self.waiting = true;
        self.model = self.rebuilt_model().await?;
        self.sync_instances();
        self.restage(batch, |event| !starts_work(event)).await
    }

    /// The machine holding the agent's session and workspace: its own last attempt's, or, for
    /// a first attempt that `continues` another agent, that agent's. Follow-ups, gate
    /// feedback, wakes and retries go back there while it lives.
    pub(super) fn affinity_of(&self, index: usize) -> Option<String> {
        let own = &self.model.agents()[index];
        if own.machine.is_some() {
            return own.machine.clone();
        }
        let up = self.agents[index]
            .continues
            .as_deref()
            .and_then(|slug| self.model.index_of(slug))?;
        self.model.agents()[up].machine.clone()
    }

    /// After a commit: the agents that hold a machine now, as the store has them.
    pub(super) fn note_machines(&mut self, batch: &Batch) {
        // As `machine_use` decided for the commit: the model has not moved since.
        if self.waiting && self.model.startable(&self.executor.clock.stamp()) == 0 {
            self.waiting = false;
        }
        for &index in batch.touched() {
            if self.model.holds_machine(index) {
                self.holding.insert(index);
            } else {
                self.holding.remove(&index);
            }
        }
    }

    /// While this run waits for machines other processes hold: how many are free now.
    pub(super) async fn look_at_pool(&mut self) -> Result<(), Error> {
        if self.machine_budget.is_none() {
            return Ok(());
        }
        let now = self.executor.clock.stamp();
        let store = &self.executor.store;
        let in_use = store.machines_in_use(LOCAL_POOL, &now).await?;
        let mine = self.model.machines_in_use();
        // Once only this run holds machines, nothing else competes: decide freely again.
        let pool = (in_use > mine).then(|| self.executor.slots.saturating_sub(in_use));
        let tenant = match self.executor.pools.tenant_capacity(LOCAL_POOL) {
            Some(cap) => {
                let held = store.tenant_machines_in_use(LOCAL_POOL, &now).await?;
                (held > mine).then(|| cap.saturating_sub(held))
            }
            None => None,
        };
        self.machine_budget = match (pool, tenant) {
            (Some(pool), Some(tenant)) => Some(pool.min(tenant)),
            (pool, tenant) => pool.or(tenant),
        };
        Ok(())
    }
}

/// Whether the event starts work on a machine (an attempt, a check the engine runs).
fn starts_work(event: &Event) -> bool {
    match event {
        Event::AgentStarted { .. } => true,
        Event::GateOpened { gate, .. } => *gate != GateKind::Approve,
        _ => false,
    }
}
