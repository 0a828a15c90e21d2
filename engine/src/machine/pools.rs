//! Pools as people see them (`murmur pool status`, `GET /v1/pools`): each configured pool
//! with its machines counted by state and the agents waiting for one; and a pool's flush.

use std::collections::{BTreeMap, HashMap};

use murmur_parser::{Agent, Flight};
use serde::Serialize;

use super::{MachineEvent, MachineState};
use crate::store::machine_log::{self, MachineRow};
use crate::store::{self, MachineFilter, Store};

/// A pool as configured (`pools:` in `.murmur/murmur.yaml`, or the built-in `local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    /// `local`, `workers`, or a cloud placement's name.
    pub placement: String,
    pub max_vms: usize,
    /// Warm machines the pool keeps ready.
    pub min_idle: usize,
}

impl PoolSpec {
    /// The built-in pool: `slots` machines on this host, none kept warm.
    pub fn local(slots: usize) -> Self {
        Self {
            name: "local".to_owned(),
            placement: "local".to_owned(),
            max_vms: slots,
            min_idle: 0,
        }
    }
}

/// One pool's state, the object of `pool status --json` and `GET /v1/pools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    pub pool: String,
    pub placement: String,
    pub max_vms: usize,
    pub min_idle: usize,
    /// Machines by state, every state but `terminated` (those are no longer the pool's).
    pub machines: BTreeMap<&'static str, usize>,
    /// Agents of unfinished runs that are `queued`: ready, waiting for a machine of this pool.
    pub queued_agents: usize,
}

impl PoolStatus {
    /// A pool with no machines and nothing queued.
    pub fn empty(spec: &PoolSpec) -> Self {
        Self {
            pool: spec.name.clone(),
            placement: spec.placement.clone(),
            max_vms: spec.max_vms,
            min_idle: spec.min_idle,
            machines: MachineState::ALL
                .iter()
                .filter(|state| **state != MachineState::Terminated)
                .map(|state| (state.as_str(), 0))
                .collect(),
            queued_agents: 0,
        }
    }
}

/// The pool `agent` of `flight` runs on: its own `pool:`, else the flight's. The one place
/// this is decided: the driver's placements and machine claims, `sleep_after` and
/// `pool status` all ask here.
pub fn agent_pool<'f>(flight: &'f Flight, agent: &'f Agent) -> &'f str {
    agent_pool_or(agent, flight.frontmatter.pool())
}

/// The pool `agent` runs on when its flight's pool is `flight_pool`.
pub fn agent_pool_or<'f>(agent: &'f Agent, flight_pool: &'f str) -> &'f str {
    agent.pool.as_deref().unwrap_or(flight_pool)
}

/// The pool agent `slug` of `flight` runs on (see [`agent_pool`]). An instance of a fan-out
/// (`review-item`) runs where its agent does.
pub fn pool_of<'f>(flight: &'f Flight, slug: &str) -> &'f str {
    let exact = flight.agents.iter().find(|agent| agent.slug == slug);
    let agent = exact.or_else(|| {
        flight
            .agents
            .iter()
            .filter(|agent| {
                slug.strip_prefix(agent.slug.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|agent| agent.slug.len())
    });
    agent.map_or(flight.frontmatter.pool(), |agent| agent_pool(flight, agent))
}

/// Every pool of `specs`, in their order, with its machines and queued agents.
pub async fn pool_status(
    store: &Store,
    specs: &[PoolSpec],
) -> Result<Vec<PoolStatus>, store::Error> {
    let mut counts: HashMap<(String, &'static str), usize> = HashMap::new();
    for (pool, state, count) in store.machine_counts().await? {
        counts.insert((pool, state.as_str()), count);
    }
    let queued = queued_by_pool(store).await?;
    Ok(specs
        .iter()
        .map(|spec| {
            let mut status = PoolStatus::empty(spec);
            for (state, count) in &mut status.machines {
                let key = (spec.name.clone(), *state);
                *count = counts.get(&key).copied().unwrap_or(0);
            }
            status.queued_agents = queued.get(&spec.name).copied().unwrap_or(0);
            status
        })
        .collect())
}

/// Queued agents of unfinished runs, by the pool their flight puts them on.
async fn queued_by_pool(store: &Store) -> Result<HashMap<String, usize>, store::Error> {
    let queued = store.queued_agents().await?;
    let mut by_pool = HashMap::new();
    if queued.is_empty() {
        return Ok(by_pool);
    }
    let flights: HashMap<String, Option<Flight>> = store
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|run| {
            (
                run.id,
                murmur_parser::parse(&run.source, &run.flight).flight,
            )
        })
        .collect();
    for (run_id, slug) in queued {
        let pool = match flights.get(&run_id) {
            Some(Some(flight)) => pool_of(flight, &slug).to_owned(),
            // A run whose stored flight no longer parses cannot be driven; nor can it wait.
            _ => continue,
        };
        *by_pool.entry(pool).or_insert(0) += 1;
    }
    Ok(by_pool)
}

/// A machine a flush ended, and the state it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    pub was: MachineState,
    /// As it is now: `terminated`.
    pub machine: MachineRow,
}

/// Drains and terminates every idle and sleeping machine of `pool` (all pools when `None`),
/// in the store, and returns them. A machine claimed or woken meanwhile is left alone: the
/// compare-and-set refuses its drain.
pub async fn flush_pool(
    store: &Store,
    pool: Option<&str>,
    at: &str,
) -> Result<Vec<Flushed>, machine_log::Error> {
    let mut flushed = Vec::new();
    for state in [MachineState::Idle, MachineState::Sleeping] {
        let filter = MachineFilter {
            pool,
            state: Some(state),
        };
        for machine in store.machines(&filter).await? {
            let Some(draining) = drain(store, machine, at).await? else {
                continue;
            };
            let ended = store
                .apply_machine_event(
                    &draining.id,
                    draining.version,
                    &MachineEvent::Terminated,
                    at,
                )
                .await?;
            flushed.push(Flushed {
                was: state,
                machine: ended,
            });
        }
    }
    Ok(flushed)
}

/// Drains `machine` while it is still idle or sleeping. Another event on it meanwhile (its
/// worker registering or settling) only moves its version: the drain is tried again on the
/// machine as it is now, and given up only when it was claimed or woken.
async fn drain(
    store: &Store,
    mut machine: MachineRow,
    at: &str,
) -> Result<Option<MachineRow>, machine_log::Error> {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        if !matches!(machine.state, MachineState::Idle | MachineState::Sleeping) {
            return Ok(None);
        }
        match store
            .apply_machine_event(&machine.id, machine.version, &MachineEvent::Drain, at)
            .await
        {
            Ok(draining) => return Ok(Some(draining)),
            Err(machine_log::Error::Conflict { .. }) => {
                machine = store.machine(&machine.id).await?
            }
            Err(machine_log::Error::Refused { .. }) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}
