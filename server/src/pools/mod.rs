//! The pool manager: the cloud pools' VMs, driven through their [`Provider`]. A cloud pool is a
//! `workers` pool whose machines a provider creates: each VM boots a script that starts
//! `murmur worker` against `server.url` with a one-time bootstrap credential, and from its
//! registration on it is a worker machine like any other (`crate::workers`).
//!
//! One task per pool looks at the pool every tick and, in order: reconciles with the provider
//! (adopts the instances the store knows, marks machines whose instance vanished lost, destroys
//! instances of terminated machines and, after a grace period, tagged instances the store has
//! no record of), terminates boots that never registered within `boot_timeout`, sleeps the VM
//! of an agent that went to sleep and wakes it when the agent wakes, destroys idle machines
//! beyond its warm count after `idle_timeout`, and provisions up to `max_vms` for that many
//! warm machines plus the attempts waiting. The warm count is the pool's `min_idle`, or the sum
//! of the `min_idle` of the workspaces whose default pool it is, whichever is more. Every
//! decision reads the store, so a restarted server (or a second one) carries on from what is
//! recorded; `max_vms` is counted in the store.

mod boot;
pub use boot::script as boot_script;
mod manager;
mod reconcile;
mod rest;

use std::sync::Arc;
use std::time::Duration;

use murmur_engine::machine::PoolSpec;
use murmur_pool::{Provider, Shape};

/// `MURMUR_POOL_TICK_MS`: how often each cloud pool is looked at.
const TICK_VARIABLE: &str = "MURMUR_POOL_TICK_MS";
const DEFAULT_TICK: Duration = Duration::from_secs(2);
/// `MURMUR_POOL_ORPHAN_GRACE_SECS`: how long a tagged instance the store does not know may live
/// (it may be one another server is creating right now).
const GRACE_VARIABLE: &str = "MURMUR_POOL_ORPHAN_GRACE_SECS";
const DEFAULT_GRACE: Duration = Duration::from_secs(300);
/// A boot that does not register within this is terminated and made again.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// A pool whose machines are VMs of a cloud placement.
pub struct CloudPool {
    /// Its name, `max_vms` and `min_idle`; `placement` is the placement's name.
    pub spec: PoolSpec,
    pub provider: Arc<dyn Provider>,
    /// The machine shape of the pool's environment for this provider.
    pub shape: Shape,
    /// `server.url`: what the VMs' workers connect back to.
    pub server_url: String,
    /// Idle machines beyond `min_idle` are destroyed after this; kept when `None`.
    pub idle_timeout: Option<Duration>,
    pub boot_timeout: Duration,
}

/// How often the managers look, and how long they spare unknown instances.
#[derive(Debug, Clone, Copy)]
struct Timing {
    tick: Duration,
    orphan_grace: Duration,
}

impl Timing {
    fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
        };
        Self {
            tick: read(TICK_VARIABLE)
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_TICK, Duration::from_millis),
            orphan_grace: read(GRACE_VARIABLE).map_or(DEFAULT_GRACE, Duration::from_secs),
        }
    }
}

/// Starts one manager per cloud pool.
pub fn start(state: &crate::AppState, pools: Vec<CloudPool>) {
    let timing = Timing::from_env();
    for pool in pools {
        let manager = manager::Manager::new(state.clone(), pool, timing);
        tokio::spawn(manager.run());
    }
}
