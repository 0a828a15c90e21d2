//! The `workers` placement: machines that are `murmur worker` processes connecting out to this
//! server. A worker registers its machine with a worker token (`register`), then polls for
//! work, which renews its machine's lease, and sends its attempts' numbered updates
//! (`routes`). Attempts of a `workers` pool (agents' turns, and the `ci` and `review` checks of
//! their gates, which are attempts whose runtime is the check) wait here until an idle machine
//! of the pool polls; that machine is claimed in the store (idle → busy) and gets the attempt.
//! A machine silent past its lease is marked lost by [`expire`]: its attempts end without
//! `Ended`, which their drivers retry elsewhere, and whatever it sends for them later is
//! refused.
//!
//! What is assigned lives in this process only: a worker whose server restarts is told to stop
//! what it runs, and the restarted server's drivers run those attempts again.

mod dispatch;
mod placement;
pub(crate) mod register;
pub(crate) mod routes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use murmur_engine::Clock;
use murmur_engine::machine::PoolSpec;

pub use routes::routes;

/// `MURMUR_MACHINE_LEASE_TTL`: seconds a worker may stay silent before its machine is lost.
const LEASE_VARIABLE: &str = "MURMUR_MACHINE_LEASE_TTL";
const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// A long poll answers within this even when there is nothing to do.
const LONGEST_WAIT: Duration = Duration::from_secs(20);

/// What the placement and the worker routes share.
#[derive(Clone)]
pub struct Workers {
    dispatch: Arc<Mutex<dispatch::Dispatch>>,
    /// Woken on every change a polling worker may care about: new work, a stop, a release.
    changed: Arc<tokio::sync::Notify>,
    /// The `workers` pools this server serves, by name.
    pools: Arc<Mutex<BTreeMap<String, PoolSpec>>>,
    lease: Duration,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            dispatch: Arc::default(),
            changed: Arc::default(),
            pools: Arc::default(),
            lease: lease_from_env(),
        }
    }
}

fn lease_from_env() -> Duration {
    std::env::var(LEASE_VARIABLE)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(DEFAULT_LEASE, Duration::from_secs)
}

impl Workers {
    fn dispatch(&self) -> MutexGuard<'_, dispatch::Dispatch> {
        self.dispatch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool(&self, name: &str) -> Option<PoolSpec> {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.get(name).cloned()
    }

    fn pool_names(&self) -> Vec<String> {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.keys().cloned().collect()
    }

    /// Attempts waiting here for a machine of `pool`.
    pub(crate) fn waiting(&self, pool: &str) -> usize {
        self.dispatch().waiting(pool)
    }

    /// A machine is gone (its VM vanished): its attempts end here, and their drivers retry
    /// them elsewhere.
    pub(crate) fn lose(&self, machine: &str) {
        let ended = self.dispatch().lose(machine);
        if !ended.is_empty() {
            self.changed.notify_waiters();
        }
    }

    /// `(now, now + lease)` as stored timestamps.
    fn lease_window(&self, clock: &dyn Clock) -> (String, String) {
        let now = clock.now();
        let ttl = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        let stamp = |at: chrono::DateTime<chrono::Utc>| {
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        (stamp(now), stamp(now + ttl))
    }
}

/// Serves the `workers` pools of `pools`: their attempts go to this server's workers, and a
/// task marks silent machines lost.
pub fn start(state: &super::AppState, pools: &[PoolSpec]) {
    let workers = state.workers().clone();
    let mut served = Vec::new();
    // A cloud pool (any placement but `local`) is a workers pool whose machines a provider makes.
    for spec in pools.iter().filter(|spec| spec.placement != "local") {
        let placement = placement::WorkersPlacement::new(&spec.name, workers.clone());
        state
            .executor()
            .placements
            .register(&spec.name, Arc::new(placement));
        served.push((spec.name.clone(), spec.clone()));
    }
    if served.is_empty() {
        return;
    }
    workers
        .pools
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(served);
    tokio::spawn(expire(workers, state.clone()));
}

/// Marks machines lost once their lease is over, a few times per lease, and ends the
/// attempts they ran here: the machines of every tenant, each in its tenant.
async fn expire(workers: Workers, state: super::AppState) {
    let every = (workers.lease / 4).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let tenants = match state.store().tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "cannot look for lost machines; trying again");
                continue;
            }
        };
        for tenant in tenants {
            match state.for_tenant(&tenant.name).await {
                Ok(scoped) => expire_in(&workers, &scoped).await,
                Err(error) => {
                    tracing::warn!(tenant = %tenant.name, ?error, "cannot look for lost machines of a tenant")
                }
            }
        }
    }
}

/// Marks the lost machines of `state`'s tenant.
async fn expire_in(workers: &Workers, state: &super::AppState) {
    let clock = &state.executor().clock;
    let lost = match state.store().expire_machine_leases(&clock.stamp()).await {
        Ok(lost) => lost,
        Err(error) => {
            tracing::warn!(%error, "cannot look for lost machines; trying again");
            return;
        }
    };
    for machine in lost.iter().filter(|m| m.placement != "local") {
        let ended = workers.dispatch().lose(&machine.id);
        tracing::warn!(
            machine = %machine.id,
            attempts = ended.len(),
            "machine lost: no heartbeat within its lease; its attempts run again elsewhere"
        );
    }
    if !lost.is_empty() {
        workers.changed.notify_waiters();
    }
}
