//! The seam between deciding and running an attempt. The driver hands a placement an
//! `AttemptSpec` and receives its updates; where it runs (a slot on this host, a `murmur worker`,
//! a cloud VM) is the placement's business, and so are process trees, folders and timeouts.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use murmur_attempt::Machine;
use murmur_protocol::{AttemptSpec, AttemptUpdate};
use tokio::sync::mpsc;

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
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("pool `{pool}` cannot take the attempt: {reason}")]
    Unavailable { pool: String, reason: String },
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

/// Slots on this host: the attempt runs in-process, its runtime as a child process.
pub struct LocalPlacement {
    machine: Arc<Machine>,
    name: String,
}

impl LocalPlacement {
    pub fn new(machine: Machine) -> Self {
        Self {
            machine: Arc::new(machine),
            name: format!("local:{}", crate::lease::host_name()),
        }
    }
}

impl Placement for LocalPlacement {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let stop = murmur_attempt::start(self.machine.clone(), spec, updates);
        Ok(AttemptHandle::new(Some(self.name.clone()), move || {
            stop.stop()
        }))
    }
}
