//! The machines a run's agents hold, pool by pool, counted across every process that shares
//! the store. Each checkpoint says which of the agents it touched hold a machine afterwards,
//! in which pool; the store refuses it when a pool has no room for the new ones
//! (`store::Error::PoolFull`, naming the pools). Then the driver decides again within what is
//! free in those pools, and waits for their machines to come free; the run's other pools go on.

use super::Driver;
use super::checkpoint::Batch;
use crate::event::{Event, GateKind};
use crate::executor::Error;
use crate::store::{FullPool, MachineUse, PoolUse};

impl Driver<'_> {
    /// Machines this run may start new work on now, per pool: the pool's size (or its tenant's
    /// cap) less what this run holds, and no more than what was free across processes and
    /// tenants when it last looked.
    pub(super) fn free_machines(&self, batch: &Batch) -> Vec<usize> {
        let mut free = self.model.machines_in_use_by_pool();
        for (pool, slot) in free.iter_mut().enumerate() {
            let held = *slot;
            *slot = self.pools.size(pool).saturating_sub(held);
            if let Some(budget) = self.machine_budget[pool] {
                let started = batch.new_work_in(|index| self.model.pool_of(index) == pool);
                *slot = (*slot).min(budget.saturating_sub(started));
            }
        }
        free
    }

    /// Which touched agents start or stop holding a machine with the batch, pool by pool.
    /// `None` when nothing changes, and for a process that only records an act.
    pub(super) fn machine_use(&self, batch: &Batch) -> Option<MachineUse> {
        self.lease.as_ref()?;
        let mut pools: Vec<PoolUse> = Vec::new();
        for &index in batch.touched() {
            let change = (
                self.holding.contains(&index),
                self.model.holds_machine(index),
            );
            if change.0 == change.1 {
                continue;
            }
            let pool = self.pool_use(&mut pools, self.model.pool_of(index));
            let agent = &self.model.agents()[index];
            match change {
                (false, true) => pool.hold.push((agent.slug.clone(), agent.attempt)),
                _ => pool.free.push(agent.slug.clone()),
            }
        }
        for pool in 0..self.pools.count() {
            // A run that waited for machines and wants none now lets younger runs go.
            if self.done_waiting(pool) {
                self.pool_use(&mut pools, pool).done_waiting = true;
            }
        }
        if pools.is_empty() {
            return None;
        }
        let leases = &self.executor.leases;
        Some(MachineUse {
            owner: leases.owner().id.clone(),
            holder: leases.owner().holder.clone(),
            expires_at: leases.expires_at(self.executor.clock.as_ref()),
            run_created_at: self.row.created_at.clone(),
            pools,
        })
    }

    /// The entry of pool `index` in `pools`, added when it is not there yet.
    fn pool_use<'p>(&self, pools: &'p mut Vec<PoolUse>, index: usize) -> &'p mut PoolUse {
        let name = &self.pools.names[index];
        let at = match pools.iter().position(|pool| &pool.pool == name) {
            Some(at) => at,
            None => {
                pools.push(PoolUse {
                    pool: name.clone(),
                    capacity: self.pools.capacity[index],
                    tenant_capacity: self.pools.tenant_capacity[index],
                    done_waiting: false,
                    hold: Vec::new(),
                    free: Vec::new(),
                });
                pools.len() - 1
            }
        };
        &mut pools[at]
    }

    /// Whether the run waits for machines of `pool` and wants none of them any more.
    fn done_waiting(&self, pool: usize) -> bool {
        self.waiting[pool] && self.model.startable_in(pool, &self.executor.clock.stamp()) == 0
    }

    /// Pools had fewer machines free than the batch started work on: the batch is staged
    /// again on the committed state without its starts, and the model decides within what
    /// each of those pools has free (the others as before).
    pub(super) async fn fit_to_pool(
        &mut self,
        batch: &mut Batch,
        full: &[FullPool],
    ) -> Result<(), Error> {
        for refused in full {
            let Some(pool) = self.pools.index_of(&refused.pool) else {
                continue;
            };
            tracing::debug!(run = %self.row.id, pool = %refused.pool, available = refused.available, "the pool is full: deciding again within what is free");
            self.machine_budget[pool] = Some(refused.available);
            // The store recorded the wait with the refusal: younger runs now let this one go.
            self.waiting[pool] = true;
        }
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
        for pool in 0..self.pools.count() {
            if self.done_waiting(pool) {
                self.waiting[pool] = false;
            }
        }
        for &index in batch.touched() {
            if self.model.holds_machine(index) {
                self.holding.insert(index);
            } else {
                self.holding.remove(&index);
            }
        }
    }

    /// While this run waits for machines other processes hold: how many are free now, in
    /// each pool it waits for.
    pub(super) async fn look_at_pool(&mut self) -> Result<(), Error> {
        for pool in 0..self.pools.count() {
            if self.machine_budget[pool].is_some() {
                self.machine_budget[pool] = self.budget_of(pool).await?;
            }
        }
        Ok(())
    }

    /// What the store says is free of `pool` for this run; `None` once only this run holds
    /// its machines (nothing else competes: it decides freely again).
    async fn budget_of(&self, pool: usize) -> Result<Option<usize>, Error> {
        let now = self.executor.clock.stamp();
        let store = &self.executor.store;
        let name = &self.pools.names[pool];
        let in_use = store.machines_in_use(name, &now).await?;
        let mine = self.model.machines_in_use_by_pool()[pool];
        let free = (in_use > mine).then(|| self.pools.capacity[pool].saturating_sub(in_use));
        let tenant = match self.pools.tenant_capacity[pool] {
            Some(cap) => {
                let held = store.tenant_machines_in_use(name, &now).await?;
                (held > mine).then(|| cap.saturating_sub(held))
            }
            None => None,
        };
        Ok(match (free, tenant) {
            (Some(free), Some(tenant)) => Some(free.min(tenant)),
            (free, tenant) => free.or(tenant),
        })
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
