//! What the driver needs to know of each pool's configuration (`pools:` in
//! `.murmur/murmur.yaml`): how many machines it has, how many of them one tenant's agents may
//! hold at once, and how long an agent whose turn is done stays idle on its machine.

use std::collections::BTreeMap;
use std::time::Duration;

use murmur_parser::{Agent, Flight, OnIdle};

use crate::machine::agent_pool;
use crate::model::Rest;

/// The pool this host's slots make up.
pub const LOCAL_POOL: &str = "local";

#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// `sleep_after` per pool; a pool without it lets an agent's machine go when its turn is
    /// done (the agent's workspace and session stay either way).
    pub sleep_after: BTreeMap<String, Duration>,
    /// `max_vms_per_tenant` per pool: a pool without it lets one tenant take all its machines.
    pub max_vms_per_tenant: BTreeMap<String, usize>,
    /// `max_vms` per pool but `local`, whose machines are the executor's `slots`. A pool not
    /// named here has as many machines as `local`.
    pub max_vms: BTreeMap<String, usize>,
}

impl Pools {
    /// How many machines of `pool` one tenant's agents may hold at once, if capped.
    pub fn tenant_capacity(&self, pool: &str) -> Option<usize> {
        self.max_vms_per_tenant.get(pool).copied()
    }

    /// How many machines `pool` has, across every tenant, with `slots` on this host.
    pub fn capacity(&self, pool: &str, slots: usize) -> usize {
        if pool == LOCAL_POOL {
            return slots;
        }
        self.max_vms.get(pool).copied().unwrap_or(slots)
    }

    /// How each of `agents` rests after its turn, by the flight's `on_idle` and its pool.
    pub fn rests(&self, flight: &Flight, agents: &[Agent]) -> Vec<Rest> {
        agents
            .iter()
            .map(|agent| self.rest(flight.frontmatter.on_idle, agent_pool(flight, agent)))
            .collect()
    }

    /// The pools `agents` of `flight` run on, with `slots` on this host.
    pub(crate) fn of_run(&self, flight: &Flight, agents: &[Agent], slots: usize) -> RunPools {
        let mut run = RunPools::default();
        for agent in agents {
            let index = run.add(self, agent_pool(flight, agent), slots);
            run.of_agent.push(index);
        }
        if run.names.is_empty() {
            run.add(self, flight.frontmatter.pool(), slots);
        }
        run
    }

    fn rest(&self, on_idle: OnIdle, pool: &str) -> Rest {
        match on_idle {
            OnIdle::KeepAlive => Rest::KeepAlive,
            OnIdle::Sleep => match self.sleep_after.get(pool) {
                Some(after) if !after.is_zero() => Rest::SleepAfter(after.as_secs().max(1)),
                _ => Rest::Release,
            },
            OnIdle::Terminate | OnIdle::TerminateWhenPrsResolved => Rest::Release,
        }
    }
}

/// The pools one run's agents use, resolved once when its driver loads it. Pools are numbered
/// in the order the flight first names them; the model counts machines by these numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunPools {
    pub names: Vec<String>,
    /// Per pool: its `max_vms`.
    pub capacity: Vec<usize>,
    /// Per pool: its `max_vms_per_tenant`.
    pub tenant_capacity: Vec<Option<usize>>,
    /// Per flight agent: the number of its pool (fan-out instances run on their template's).
    pub of_agent: Vec<usize>,
}

impl RunPools {
    /// The most machines of pool `index` the run may hold: its size, or its tenant's share.
    pub fn size(&self, index: usize) -> usize {
        match self.tenant_capacity[index] {
            Some(cap) => cap.min(self.capacity[index]),
            None => self.capacity[index],
        }
    }

    /// The number of `pool`, numbering it when it is new.
    fn add(&mut self, pools: &Pools, pool: &str, slots: usize) -> usize {
        if let Some(index) = self.index_of(pool) {
            return index;
        }
        self.names.push(pool.to_owned());
        self.capacity.push(pools.capacity(pool, slots));
        self.tenant_capacity.push(pools.tenant_capacity(pool));
        self.names.len() - 1
    }

    pub fn index_of(&self, pool: &str) -> Option<usize> {
        self.names.iter().position(|name| name == pool)
    }

    pub fn count(&self) -> usize {
        self.names.len()
    }
}
