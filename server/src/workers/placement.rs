//! The engine's side of a `workers` pool: an attempt waits here for an idle machine of the
//! pool, whose next poll takes it; stopping it tells that machine to stop it.

use murmur_engine::executor::{AttemptHandle, Placement, PlacementError};
use murmur_protocol::{AttemptSpec, AttemptUpdate};
use murmur_vault::SecretSet;
use tokio::sync::mpsc;

use super::Workers;
use super::dispatch::Queued;

pub struct WorkersPlacement {
    pool: String,
    workers: Workers,
}

impl WorkersPlacement {
    pub fn new(pool: &str, workers: Workers) -> Self {
        Self {
            pool: pool.to_owned(),
            workers,
        }
    }
}

impl Placement for WorkersPlacement {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        self.enqueue(spec, None, updates)
    }

    fn start_sealed(
        &self,
        spec: AttemptSpec,
        secrets: SecretSet,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        self.enqueue(spec, Some(secrets), updates)
    }
}

impl WorkersPlacement {
    fn enqueue(
        &self,
        spec: AttemptSpec,
        secrets: Option<SecretSet>,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let key = spec.key.clone();
        let queued = Queued {
            spec,
            updates,
            secrets,
        };
        self.workers.dispatch().enqueue(&self.pool, queued);
        self.workers.changed.notify_waiters();
        let (pool, workers) = (self.pool.clone(), self.workers.clone());
        // The machine is not known yet: the dispatch sends `Placed` when one takes it.
        Ok(AttemptHandle::new(None, move || {
            workers.dispatch().stop(&pool, &key);
            workers.changed.notify_waiters();
        }))
    }
}
