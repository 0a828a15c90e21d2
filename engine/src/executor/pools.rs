//! What the driver needs to know of each pool's configuration (`pools:` in
//! `.murmur/murmur.yaml`): how long an agent whose turn is done stays idle on its machine, and
//! how many machines of the pool one tenant's agents may hold at once.

use std::collections::BTreeMap;
use std::time::Duration;

use murmur_parser::{Agent, Flight, OnIdle};

use crate::model::Rest;

#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// `sleep_after` per pool; a pool without it lets an agent's machine go when its turn is
    /// done (the agent's workspace and session stay either way).
    pub sleep_after: BTreeMap<String, Duration>,
    /// `max_vms_per_tenant` per pool: a pool without it lets one tenant take all its machines.
    pub max_vms_per_tenant: BTreeMap<String, usize>,
}

impl Pools {
    /// How many machines of `pool` one tenant's agents may hold at once, if capped.
    pub fn tenant_capacity(&self, pool: &str) -> Option<usize> {
        self.max_vms_per_tenant.get(pool).copied()
    }

    /// How each of `agents` rests after its turn, by the flight's `on_idle` and its pool.
    pub fn rests(&self, flight: &Flight, agents: &[Agent]) -> Vec<Rest> {
        agents
            .iter()
            .map(|agent| {
                let pool = agent.pool.as_deref().unwrap_or(&flight.frontmatter.pool);
                self.rest(flight.frontmatter.on_idle, pool)
            })
            .collect()
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
