//! Reconciling a cloud pool with its provider: the store says which machines exist, the
//! provider which VMs do, and each side's extras are dealt with.

use std::collections::HashSet;

use murmur_engine::machine::{MachineEvent, MachineState};
use murmur_engine::store::cloud_machines::CloudMachine;
use murmur_engine::store::machine_log::Error;
use murmur_pool::{Instance, InstanceId, InstanceState};

use super::manager::Manager;

/// A VM younger than this may not be listed yet (the clouds' lists lag their creates).
const LIST_LAG: chrono::Duration = chrono::Duration::seconds(10);

impl Manager {
    /// Adopts the VMs the store knows, destroys those of terminated machines and, after the
    /// grace period, those it has no record of; machines whose VM is gone are lost (their
    /// attempts run again elsewhere) and terminated.
    pub(super) async fn reconcile(&mut self, cluster: &str) -> Result<(), Error> {
        let instances = match self.pool.provider.list(cluster).await {
            Ok(instances) => instances,
            Err(error) => {
                tracing::warn!(pool = %self.pool.spec.name, %error, "cannot list the pool's VMs; reconciling later");
                return Ok(());
            }
        };
        let tenant = self.state.store().tenant().to_owned();
        let ours: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.state != InstanceState::Gone)
            .filter(|i| {
                i.tags
                    .as_ref()
                    .is_some_and(|t| t.pool == self.pool.spec.name && t.tenant == tenant)
            })
            .collect();
        for instance in &ours {
            self.reconcile_instance(instance).await?;
        }
        let listed: HashSet<&InstanceId> = ours.iter().map(|i| &i.id).collect();
        self.strangers.retain(|id, _| listed.contains(id));
        for machine in self
            .state
            .store()
            .cloud_machines(&self.pool.spec.name)
            .await?
        {
            self.reconcile_machine(&machine, &listed).await?;
        }
        Ok(())
    }

    async fn reconcile_instance(&mut self, instance: &Instance) -> Result<(), Error> {
        let Some(tags) = &instance.tags else {
            return Ok(());
        };
        let store = self.state.store().clone();
        match store.cloud_machine(&tags.machine).await? {
            Some(known) if known.machine.state != MachineState::Terminated => {
                // Adopted. A server that died between creating the VM and noting it left the
                // instance id out: note it now.
                if known.instance_id.is_none() {
                    store
                        .set_cloud_instance(&known.machine.id, &instance.id.0, &instance.location)
                        .await?;
                }
                self.strangers.remove(&instance.id);
            }
            Some(_) => {
                tracing::info!(instance = %instance.id, machine = %tags.machine, "destroying the VM of a terminated machine");
                self.destroy_instance(&instance.id).await;
            }
            None => {
                let now = self.now();
                let first = *self.strangers.entry(instance.id.clone()).or_insert(now);
                let grace = chrono::Duration::from_std(self.timing.orphan_grace)
                    .unwrap_or(chrono::Duration::MAX);
                if now - first >= grace {
                    tracing::warn!(instance = %instance.id, machine = %tags.machine, "destroying a VM tagged for this pool that the store has no record of");
                    self.destroy_instance(&instance.id).await;
                    self.strangers.remove(&instance.id);
                }
            }
        }
        Ok(())
    }

    /// A machine whose VM is not listed any more is lost; a lost machine is given up on.
    async fn reconcile_machine(
        &self,
        machine: &CloudMachine,
        listed: &HashSet<&InstanceId>,
    ) -> Result<(), Error> {
        let row = &machine.machine;
        if row.state == MachineState::Lost {
            // Its attempts were retried elsewhere when it was lost. A worker that polls again
            // gets it back (a server restart, a network cut); one silent for a whole boot's
            // time is given up on, and its VM destroyed.
            let events = self.state.store().machine_events(&row.id).await?;
            let since = events
                .last()
                .and_then(|event| chrono::DateTime::parse_from_rfc3339(&event.at).ok());
            let patience =
                chrono::Duration::from_std(self.pool.boot_timeout).unwrap_or(chrono::Duration::MAX);
            if since.is_some_and(|at| self.now() - at.with_timezone(&chrono::Utc) >= patience) {
                return self.destroy(machine).await;
            }
            return Ok(());
        }
        let Some(instance) = &machine.instance_id else {
            return Ok(());
        };
        let created = chrono::DateTime::parse_from_rfc3339(&row.created_at)
            .map(|at| at.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| self.now());
        if listed.contains(&InstanceId(instance.clone())) || self.now() - created < LIST_LAG {
            return Ok(());
        }
        let reason = format!("its VM {instance} is gone");
        tracing::warn!(machine = %row.id, %instance, "machine lost: its VM is gone; its attempts run again elsewhere");
        let lost = self
            .state
            .store()
            .apply_machine_event(
                &row.id,
                row.version,
                &MachineEvent::Lost { reason },
                &self.stamp(),
            )
            .await;
        match lost {
            Ok(lost) => {
                self.state.workers().lose(&lost.id);
                let ended = MachineEvent::Terminated;
                self.state
                    .store()
                    .apply_machine_event(&lost.id, lost.version, &ended, &self.stamp())
                    .await?;
                Ok(())
            }
            Err(Error::Conflict { .. } | Error::Refused { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn destroy_instance(&self, id: &InstanceId) {
        if let Err(error) = self.pool.provider.destroy(id).await {
            tracing::warn!(instance = %id, %error, "cannot destroy the VM yet; trying again at the next reconcile");
        }
    }
}
