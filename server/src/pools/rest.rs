//! What a cloud pool's machines do between agents: a boot that never registers is given up
//! on; a VM whose agent went to sleep sleeps with it (the agent's workspace and session stay
//! on its disk) and wakes when the agent wakes; idle machines beyond `min_idle` are destroyed
//! after `idle_timeout`.

use chrono::{DateTime, Utc};
use murmur_engine::machine::{AgentRef, MachineEvent, MachineState, Release};
use murmur_engine::store::cloud_machines::CloudMachine;
use murmur_engine::store::machine_log::Error;
use murmur_pool::InstanceId;

use super::manager::Manager;

/// An agent whose latest attempt ran on a machine: `(run_id, slug, state)`.
type AgentOn = (String, String, String);

const SLEEPING: &str = "sleeping";
/// Agent states after which no attempt of the agent comes again.
const FINISHED: [&str; 4] = ["completed", "failed", "canceled", "skipped"];

fn parse(stamp: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

impl Manager {
    /// Terminates the machines whose worker did not register within `boot_timeout`; the
    /// pool then provisions again.
    pub(super) async fn time_out_boots(&self, machines: &[CloudMachine]) -> Result<(), Error> {
        let timeout =
            chrono::Duration::from_std(self.pool.boot_timeout).unwrap_or(chrono::Duration::MAX);
        for machine in machines {
            let row = &machine.machine;
            let started = parse(&row.created_at);
            if row.state != MachineState::Provisioning
                || started.is_none_or(|at| self.now() - at < timeout)
            {
                continue;
            }
            tracing::warn!(pool = %self.pool.spec.name, machine = %row.id, instance = ?machine.instance_id, timeout_secs = self.pool.boot_timeout.as_secs(), "the VM's worker never registered; terminating it and provisioning again");
            self.destroy(machine).await?;
        }
        Ok(())
    }

    /// Sleeps the VM of an agent that went to sleep; wakes it when that agent wakes, or
    /// destroys it when the agent will never run again (or runs elsewhere now).
    pub(super) async fn follow_agents(&self, machines: &[CloudMachine]) -> Result<(), Error> {
        for machine in machines {
            let row = &machine.machine;
            if !matches!(row.state, MachineState::Idle | MachineState::Sleeping) {
                continue;
            }
            let agents = self.state.store().agents_on_machine(&row.id).await?;
            match (&row.state, &row.agent) {
                (MachineState::Idle, _) => {
                    if let Some(agent) = agents.iter().find(|(_, _, state)| state == SLEEPING) {
                        self.sleep(machine, agent).await?;
                    }
                }
                (MachineState::Sleeping, Some(held)) => {
                    let state = agents
                        .iter()
                        .find(|(run, slug, _)| *run == held.run_id && *slug == held.slug)
                        .map(|(_, _, state)| state.as_str());
                    match state {
                        Some(SLEEPING) => {}
                        Some(state) if !FINISHED.contains(&state) => self.wake(machine).await?,
                        _ => self.destroy(machine).await?,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// How many sleeping machines are wanted back by their agent (a follow-up came) but not
    /// woken yet: the attempt waiting for one is the next tick's wake, not a new VM.
    pub(super) async fn waking_soon(&self, machines: &[CloudMachine]) -> Result<usize, Error> {
        let mut soon = 0;
        for machine in machines {
            let row = &machine.machine;
            let (MachineState::Sleeping, Some(held)) = (&row.state, &row.agent) else {
                continue;
            };
            let agents = self.state.store().agents_on_machine(&row.id).await?;
            let wanted = agents.iter().any(|(run, slug, state)| {
                *run == held.run_id
                    && *slug == held.slug
                    && state != SLEEPING
                    && !FINISHED.contains(&state.as_str())
            });
            soon += usize::from(wanted);
        }
        Ok(soon)
    }

    /// The machine is the sleeping agent's (claimed for it, released to sleep with it), then
    /// its VM is put to sleep. The store goes first, so no worker claims it meanwhile.
    async fn sleep(&self, machine: &CloudMachine, agent: &AgentOn) -> Result<(), Error> {
        let store = self.state.store();
        let row = &machine.machine;
        let (run_id, slug, _) = agent;
        let claimed = MachineEvent::Claimed {
            run_id: run_id.clone(),
            slug: slug.clone(),
            attempt: 0,
        };
        let slept = match store
            .apply_machine_event(&row.id, row.version, &claimed, &self.stamp())
            .await
        {
            Ok(busy) => {
                let sleep = MachineEvent::Released {
                    how: Release::Sleep,
                };
                store
                    .apply_machine_event(&busy.id, busy.version, &sleep, &self.stamp())
                    .await
            }
            Err(error) => Err(error),
        };
        let slept = match slept {
            Ok(slept) => slept,
            // A worker took it (or settled it) meanwhile: looked at again next tick.
            Err(Error::Conflict { .. } | Error::Refused { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        let Some(instance) = &machine.instance_id else {
            return Ok(());
        };
        let agent = AgentRef {
            run_id: run_id.clone(),
            slug: slug.clone(),
        };
        match self
            .pool
            .provider
            .sleep(&InstanceId(instance.clone()))
            .await
        {
            Ok(()) => {
                tracing::info!(machine = %slept.id, %instance, %agent, "the agent sleeps: its VM sleeps with its workspace and session");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(machine = %slept.id, %instance, %error, "cannot sleep the VM; it stays awake");
                self.awake(&slept.id).await
            }
        }
    }

    /// Wakes the VM for its agent; the worker on it polls again and takes the agent's attempt.
    async fn wake(&self, machine: &CloudMachine) -> Result<(), Error> {
        let store = self.state.store();
        let row = &machine.machine;
        // A VM takes a while to resume: its lease covers a whole boot.
        let boot = chrono::Duration::from_std(self.pool.boot_timeout).unwrap_or_default();
        let until = (self.now() + boot).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        store
            .renew_machine_lease(&row.id, &self.stamp(), &until)
            .await?;
        let row = store.machine(&row.id).await?;
        match store
            .apply_machine_event(
                &row.id,
                row.version,
                &MachineEvent::WakeStarted,
                &self.stamp(),
            )
            .await
        {
            Ok(_) => {}
            Err(Error::Conflict { .. } | Error::Refused { .. }) => return Ok(()),
            Err(error) => return Err(error),
        }
        if let Some(instance) = &machine.instance_id {
            if let Err(error) = self.pool.provider.wake(&InstanceId(instance.clone())).await {
                // Left waking: without a heartbeat within its lease it is lost, and then
                // given up on; the agent runs elsewhere from its branch.
                tracing::warn!(machine = %row.id, %instance, %error, "cannot wake the VM");
                return Ok(());
            }
            tracing::info!(machine = %row.id, %instance, "woke the VM for its agent");
        }
        // Awake, then free for the agent's attempt (which waits for this machine): idle, so
        // the pool counts it ready and makes no other VM for that attempt.
        let keep = MachineEvent::Released { how: Release::Keep };
        for event in [MachineEvent::Woke, keep] {
            let row = store.machine(&row.id).await?;
            store
                .apply_machine_event(&row.id, row.version, &event, &self.stamp())
                .await?;
        }
        Ok(())
    }

    /// A sleep that failed: the machine runs again (busy with nothing, which the worker's next
    /// poll settles to idle).
    async fn awake(&self, id: &str) -> Result<(), Error> {
        let store = self.state.store();
        for event in [MachineEvent::WakeStarted, MachineEvent::Woke] {
            let row = store.machine(id).await?;
            store
                .apply_machine_event(id, row.version, &event, &self.stamp())
                .await?;
        }
        Ok(())
    }

    /// Destroys the idle machines beyond the `warm` ones the pool keeps that have been idle
    /// for `idle_timeout`, the longest idle first.
    pub(super) async fn time_out_idle(
        &self,
        machines: &[CloudMachine],
        warm: usize,
    ) -> Result<(), Error> {
        let Some(timeout) = self.pool.idle_timeout else {
            return Ok(());
        };
        let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let mut idle = Vec::new();
        for machine in machines {
            if machine.machine.state != MachineState::Idle {
                continue;
            }
            let events = self
                .state
                .store()
                .machine_events(&machine.machine.id)
                .await?;
            let since = events.last().and_then(|event| parse(&event.at));
            idle.push((since, machine));
        }
        let extra = idle.len().saturating_sub(warm);
        idle.sort_by_key(|(since, _)| *since);
        for (since, machine) in idle.into_iter().take(extra) {
            if since.is_some_and(|at| self.now() - at >= timeout) {
                tracing::info!(pool = %self.pool.spec.name, machine = %machine.machine.id, "idle past idle_timeout beyond min_idle: destroying it");
                self.destroy(machine).await?;
            }
        }
        Ok(())
    }
}
