//! One cloud pool's manager: a loop of ticks, each reading the store and the provider and
//! acting on what it finds. Its only memory between ticks is what the store cannot know: when
//! an unknown instance was first seen, whether provisioning is backing off, and whether an
//! auth error stopped it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use murmur_engine::machine::{MachineEvent, MachineState};
use murmur_engine::store::cloud_machines::{CloudMachine, NewCloudMachine};
use murmur_engine::store::pool_events::{PoolEvent, PoolEventKind, stopped_reason};
use murmur_pool::{Error as CloudError, InstanceId, Provision, Provisioned, Tags};

use super::{CloudPool, Timing, boot};
use crate::AppState;

/// Reconcile with the provider every this many ticks (listing costs an API call).
const RECONCILE_EVERY: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const LONGEST_BACKOFF: Duration = Duration::from_secs(300);
/// How many of a pool's latest events decide whether its provisioning stopped.
const STORY: u64 = 50;

pub struct Manager {
    pub(super) state: AppState,
    pub(super) pool: CloudPool,
    pub(super) timing: Timing,
    /// The `murmur:cluster` of this store, read at the first tick.
    pub(super) cluster: Option<String>,
    /// Instances of this pool the store has no record of, and when they were first seen.
    pub(super) strangers: HashMap<InstanceId, DateTime<Utc>>,
    /// Provisioning waits until then after every location was out of capacity.
    backoff_until: Option<DateTime<Utc>>,
    backoff: Duration,
    /// Why provisioning stopped for good (denied, misconfigured), once said.
    stopped: Option<String>,
    ticks: u32,
}

impl Manager {
    pub fn new(state: AppState, pool: CloudPool, timing: Timing) -> Self {
        Self {
            state,
            pool,
            timing,
            cluster: None,
            strangers: HashMap::new(),
            backoff_until: None,
            backoff: FIRST_BACKOFF,
            stopped: None,
            ticks: 0,
        }
    }

    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.timing.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.tick().await {
                tracing::warn!(pool = %self.pool.spec.name, %error, "pool manager: trying again next tick");
            }
        }
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.state.executor().clock.now()
    }

    pub(super) fn stamp(&self) -> String {
        self.state.executor().clock.stamp()
    }

    async fn tick(&mut self) -> Result<(), murmur_engine::store::machine_log::Error> {
        let cluster = match &self.cluster {
            Some(cluster) => cluster.clone(),
            None => {
                let fresh = uuid::Uuid::now_v7().simple().to_string();
                let cluster = self.state.store().cloud_cluster(&fresh).await?;
                self.resume_if_stopped().await?;
                self.cluster = Some(cluster.clone());
                cluster
            }
        };
        if self.ticks.is_multiple_of(RECONCILE_EVERY) {
            self.reconcile(&cluster).await?;
        }
        self.ticks = self.ticks.wrapping_add(1);
        let machines = self
            .state
            .store()
            .cloud_machines(&self.pool.spec.name)
            .await?;
        self.time_out_boots(&machines).await?;
        self.follow_agents(&machines).await?;
        let warm = self.warm_target().await?;
        self.time_out_idle(&machines, warm).await?;
        let machines = self
            .state
            .store()
            .cloud_machines(&self.pool.spec.name)
            .await?;
        self.fill(&cluster, &machines, warm).await
    }

    /// How many warm machines the pool keeps: its own `min_idle`, or what the workspaces
    /// whose default pool it is keep for themselves together, whichever is more. Any idle
    /// machine takes any of their agents, so the pool's own count covers theirs.
    pub(super) async fn warm_target(&self) -> Result<usize, murmur_engine::store::Error> {
        let workspaces = self.state.store().workspaces().await?;
        let theirs: usize = workspaces
            .iter()
            .filter(|w| w.defaults.pool.as_deref() == Some(self.pool.spec.name.as_str()))
            .map(|w| usize::try_from(w.min_idle).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add);
        Ok(self.pool.spec.min_idle.max(theirs))
    }

    /// Provisions for `warm` idle machines plus the attempts waiting here, up to `max_vms`
    /// (which the store enforces).
    async fn fill(
        &mut self,
        cluster: &str,
        machines: &[CloudMachine],
        warm: usize,
    ) -> Result<(), murmur_engine::store::machine_log::Error> {
        if self.stopped.is_some() || self.backoff_until.is_some_and(|until| self.now() < until) {
            return Ok(());
        }
        let coming = machines
            .iter()
            .filter(|m| {
                matches!(
                    m.machine.state,
                    MachineState::Idle | MachineState::Provisioning | MachineState::Waking
                )
            })
            .count()
            + self.waking_soon(machines).await?;
        // A lost machine may come back (its worker polls again) until it is given up on: it
        // stands in for a warm one meanwhile, not for a waiting attempt.
        let lost = machines
            .iter()
            .filter(|m| m.machine.state == MachineState::Lost)
            .count();
        let waiting = self.state.workers().waiting(&self.pool.spec.name);
        let wanted = (waiting + warm).saturating_sub(coming + lost.min(warm));
        for _ in 0..wanted {
            if !self.provision_one(cluster).await? {
                break;
            }
        }
        Ok(())
    }

    /// Records a machine and creates its VM; false when the pool is full or the provider
    /// refused (then provisioning backs off, or stops for an auth or configuration error).
    async fn provision_one(
        &mut self,
        cluster: &str,
    ) -> Result<bool, murmur_engine::store::machine_log::Error> {
        let store = self.state.store().clone();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let bootstrap = boot::credential();
        let expires = self.now()
            + chrono::Duration::from_std(self.pool.boot_timeout).unwrap_or(chrono::Duration::MAX);
        let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let now = self.stamp();
        let new = NewCloudMachine {
            id: &id,
            pool: &self.pool.spec.name,
            placement: &self.pool.spec.placement,
            max_vms: self.pool.spec.max_vms,
            bootstrap: &bootstrap,
            bootstrap_expires_at: &expires,
            at: &now,
        };
        let Some(machine) = store.create_cloud_machine(&new).await? else {
            return Ok(false);
        };
        let request = Provision {
            tags: Tags {
                tenant: store.tenant().to_owned(),
                pool: self.pool.spec.name.clone(),
                machine: id.clone(),
                cluster: cluster.to_owned(),
            },
            shape: self.pool.shape.clone(),
            boot_script: boot::script(&self.pool.server_url, &bootstrap, &self.pool.spec.name),
        };
        match self.pool.provider.provision(&request).await {
            Ok(made) => {
                let instance = &made.instance;
                store
                    .set_cloud_instance(&id, &instance.id.0, &instance.location)
                    .await?;
                self.provisioned(&id, &made).await;
                self.backoff = FIRST_BACKOFF;
                Ok(true)
            }
            Err(error) => {
                let ended = MachineEvent::Terminated;
                let _ = store
                    .apply_machine_event(&id, machine.version, &ended, &self.stamp())
                    .await;
                self.refused(&error).await;
                Ok(false)
            }
        }
    }

    /// Says where the VM was made, and which locations were passed over on the way.
    async fn provisioned(&self, machine: &str, made: &Provisioned) {
        let pool = &self.pool.spec.name;
        let instance = &made.instance;
        for skipped in &made.skipped {
            tracing::warn!(%pool, location = %skipped.location, reason = %skipped.reason, "no capacity there; trying the placement's next location");
            let message = format!(
                "{}; tried the next location (the VM was made in {})",
                skipped.reason, instance.location
            );
            self.note(PoolEventKind::Capacity, Some(&skipped.location), message)
                .await;
        }
        tracing::info!(%pool, %machine, instance = %instance.id, location = %instance.location, "provisioned a VM; waiting for its worker to register");
        let message = format!("made VM {} for machine {machine}", instance.id);
        self.note(
            PoolEventKind::Provisioned,
            Some(&instance.location),
            message,
        )
        .await;
    }

    async fn refused(&mut self, error: &CloudError) {
        let pool = &self.pool.spec.name;
        if error.stops_pool() {
            tracing::error!(%pool, %error, "provisioning for this pool stops until the server restarts with this fixed");
            let message =
                format!("provisioning stopped until the server restarts with this fixed: {error}");
            self.stopped = Some(message.clone());
            self.note(PoolEventKind::Stopped, None, message).await;
            return;
        }
        let until = self.now() + chrono::Duration::from_std(self.backoff).unwrap_or_default();
        tracing::warn!(%pool, %error, backoff_secs = self.backoff.as_secs(), "cannot provision a VM; backing off");
        let location = match error {
            CloudError::Capacity { location, .. } => Some(location.clone()),
            _ => None,
        };
        let message = format!("{error}; trying again in {} s", self.backoff.as_secs());
        self.note(PoolEventKind::Backoff, location.as_deref(), message)
            .await;
        self.backoff_until = Some(until);
        self.backoff = (self.backoff * 2).min(LONGEST_BACKOFF);
    }

    /// Adds an event to the pool's story in the store (`murmur pool status` shows it).
    async fn note(&self, kind: PoolEventKind, location: Option<&str>, message: String) {
        let event = PoolEvent {
            at: self.stamp(),
            kind,
            location: location.map(str::to_owned),
            message,
        };
        let added = self
            .state
            .store()
            .add_pool_event(&self.pool.spec.name, &event)
            .await;
        if let Err(error) = added {
            tracing::warn!(pool = %self.pool.spec.name, %error, "cannot record the pool's event");
        }
    }

    /// A server starting on a pool whose provisioning had stopped tries again, and says so.
    async fn resume_if_stopped(&self) -> Result<(), murmur_engine::store::Error> {
        let events = self
            .state
            .store()
            .pool_events(&self.pool.spec.name, STORY)
            .await?;
        if stopped_reason(&events).is_some() {
            let message = "a server started on this pool: provisioning is tried again".into();
            self.note(PoolEventKind::Resumed, None, message).await;
        }
        Ok(())
    }

    /// Terminates a machine and destroys its VM, however far it got. An idle or sleeping
    /// machine is drained first, so a worker that claims it meanwhile keeps it (the
    /// compare-and-set refuses the drain, and this returns without touching the VM).
    pub(super) async fn destroy(
        &self,
        machine: &CloudMachine,
    ) -> Result<(), murmur_engine::store::machine_log::Error> {
        use murmur_engine::store::machine_log::Error;
        let store = self.state.store();
        let mut row = store.machine(&machine.machine.id).await?;
        if matches!(row.state, MachineState::Idle | MachineState::Sleeping) {
            match store
                .apply_machine_event(&row.id, row.version, &MachineEvent::Drain, &self.stamp())
                .await
            {
                Ok(drained) => row = drained,
                Err(Error::Conflict { .. } | Error::Refused { .. }) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        if let Some(instance) = &machine.instance_id
            && let Err(error) = self
                .pool
                .provider
                .destroy(&InstanceId(instance.clone()))
                .await
        {
            // The next reconcile destroys the instance of a terminated machine again.
            tracing::warn!(machine = %row.id, %error, "cannot destroy the VM yet");
        }
        if row.state != MachineState::Terminated {
            store
                .apply_machine_event(
                    &row.id,
                    row.version,
                    &MachineEvent::Terminated,
                    &self.stamp(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
