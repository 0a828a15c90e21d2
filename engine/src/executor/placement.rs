//! The seam between deciding and running an attempt. The driver hands a placement an
//! `AttemptSpec` and receives its updates; where it runs (a slot on this host, a `murmur worker`,
//! a cloud VM) is the placement's business, and so are process trees, folders and timeouts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use murmur_attempt::Machine;
use murmur_protocol::{AttemptSpec, AttemptUpdate};
use murmur_vault::{MachineKey, MachinePublicKey, SecretSet};
use tokio::sync::mpsc;

use crate::histogram::{Histogram, Snapshot};

/// Where the machines of a pool run.
pub trait Placement: Send + Sync {
    /// Starts the attempt on a machine of the pool. Its updates arrive in order on `updates`,
    /// ending with `AttemptUpdate::Ended`; a channel that closes without it means the
    /// machine was lost.
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError>;

    /// Starts an attempt that gets `secrets`: the placement seals them to the ephemeral key of
    /// the machine that runs it (`EnvironmentSpec::sealed_secrets`), never sending them open.
    /// A placement that cannot refuses the attempt.
    fn start_sealed(
        &self,
        spec: AttemptSpec,
        secrets: SecretSet,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let _ = (spec, secrets, updates);
        Err(PlacementError::NoSecrets)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("pool `{pool}` cannot take the attempt: {reason}")]
    Unavailable { pool: String, reason: String },
    #[error("the attempt's pool cannot take secrets to its machines yet; run it on the local pool")]
    NoSecrets,
    #[error("cannot seal the attempt's secrets to its machine: {0}")]
    Seal(String),
}

/// A started attempt: the machine it runs on, and how to stop it. Dropping the handle stops
/// the attempt too, since nobody would take its updates any more.
pub struct AttemptHandle {
    /// Known at once on the local placement; a placement that finds the machine later sends
    /// `AttemptUpdate::Placed` instead.
    pub machine: Option<String>,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl AttemptHandle {
    pub fn new(machine: Option<String>, stop: impl FnOnce() + Send + 'static) -> Self {
        Self {
            machine,
            stop: Some(Box::new(stop)),
        }
    }

    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl Drop for AttemptHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The pools whose machines are not slots on this host (a `workers` pool, a cloud pool),
/// registered by whoever serves them; every other pool runs on the local placement.
#[derive(Clone, Default)]
pub struct Placements {
    by_pool: Arc<RwLock<BTreeMap<String, Arc<dyn Placement>>>>,
    /// How long attempts of each pool waited for a machine, whichever placement it has.
    pub claims: ClaimLatency,
}

/// Claim latency per pool: from an attempt handed to its pool's placement until a machine of
/// the pool took it (`agent_placed`). Near zero on the local pool, whose slot the checkpoint
/// already counted; on a `workers` pool, until an idle worker's poll claimed its machine.
#[derive(Clone, Default)]
pub struct ClaimLatency {
    by_pool: Arc<Mutex<BTreeMap<String, Arc<Histogram>>>>,
}

impl ClaimLatency {
    /// The histogram of `pool`, made on first use.
    pub fn of(&self, pool: &str) -> Arc<Histogram> {
        let mut by_pool = self
            .by_pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_pool.entry(pool.to_owned()).or_default().clone()
    }

    /// Every pool's histogram as it is now, by pool name.
    pub fn snapshots(&self) -> Vec<(String, Snapshot)> {
        let by_pool = self
            .by_pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_pool
            .iter()
            .map(|(pool, histogram)| (pool.clone(), histogram.snapshot()))
            .collect()
    }
}

impl Placements {
    pub fn register(&self, pool: &str, placement: Arc<dyn Placement>) {
        self.by_pool
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pool.to_owned(), placement);
    }

    pub fn get(&self, pool: &str) -> Option<Arc<dyn Placement>> {
        self.by_pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(pool)
            .cloned()
    }
}

/// How the local placement's machine names begin (`local:HOST`).
const LOCAL_MACHINE: &str = "local:";

/// Whether `machine` is a slot on this server's host, which works in the server's mirror
/// itself, rather than a machine that keeps its own clone.
pub fn is_local_machine(machine: &str) -> bool {
    machine.starts_with(LOCAL_MACHINE)
}

/// Slots on this host: the attempt runs in-process, its runtime as a child process.
pub struct LocalPlacement {
    machine: Arc<Machine>,
    name: String,
    /// This host's ephemeral key, made in memory as a worker's is: secrets reach the local
    /// pool's attempts sealed too, through the same code as a worker's.
    key: Arc<MachineKey>,
}

impl LocalPlacement {
    pub fn new(machine: Machine) -> Self {
        Self {
            machine: Arc::new(machine),
            name: format!("{LOCAL_MACHINE}{}", crate::lease::host_name()),
            key: Arc::new(MachineKey::generate()),
        }
    }
}

impl Placement for LocalPlacement {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let key = Some(self.key.clone());
        let stop = murmur_attempt::start_keyed(self.machine.clone(), key, spec, updates);
        Ok(AttemptHandle::new(Some(self.name.clone()), move || {
            stop.stop()
        }))
    }

    fn start_sealed(
        &self,
        mut spec: AttemptSpec,
        secrets: SecretSet,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        seal_into(&mut spec, &secrets, &self.key.public())?;
        drop(secrets);
        self.start(spec, updates)
    }
}

/// Seals `secrets` into `spec` for the machine whose ephemeral public key is `public`: the
/// one way secrets leave the engine, for the local pool and for workers alike.
pub fn seal_into(
    spec: &mut AttemptSpec,
    secrets: &SecretSet,
    public: &MachinePublicKey,
) -> Result<(), PlacementError> {
    let sealed = murmur_attempt::secrets::seal(public, secrets, &spec.key)
        .map_err(|e| PlacementError::Seal(e.to_string()))?;
    spec.environment.sealed_secrets = Some(sealed);
    Ok(())
}
