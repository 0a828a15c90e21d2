//! What happens to many machines at once, or to a machine from the outside: claiming a warm
//! one, a worker's heartbeat lease, marking silent machines lost, finding a machine by its
//! credential, and counting machines per pool. Every state change goes through
//! [`Store::apply_machine_event`]'s compare-and-set, so two processes never both win one.

use sea_query::{Expr, ExprTrait, Order, Query};

use super::machine_log::{Error, MachineRow, RawMachine};
use super::schema::Machines;
use super::{Store, token_hash};
use crate::machine::{AgentRef, MachineEvent, MachineState};

/// Idle machines read per look: a claimer that loses them all to others looks again.
const CLAIM_CANDIDATES: u64 = 8;

impl Store {
    /// Takes an `idle` machine of `pool` (the oldest first) for the agent's attempt: it is
    /// `busy` and holds the agent when this returns `Some`. `None` when the pool has no
    /// idle machine. Concurrent claimers, in this process or others, never get the same one.
    pub async fn claim_idle_machine(
        &self,
        pool: &str,
        agent: &AgentRef,
        attempt: u32,
        at: &str,
    ) -> Result<Option<MachineRow>, Error> {
        let claimed = MachineEvent::Claimed {
            run_id: agent.run_id.clone(),
            slug: agent.slug.clone(),
            attempt,
        };
        loop {
            let select = self
                .machine_select()
                .and_where(Expr::col(Machines::Pool).eq(pool))
                .and_where(Expr::col(Machines::State).eq(MachineState::Idle.as_str()))
                .order_by(Machines::CreatedAt, Order::Asc)
                .order_by(Machines::Id, Order::Asc)
                .limit(CLAIM_CANDIDATES)
                .to_owned();
            let rows: Vec<RawMachine> = self.fetch(&select).await?;
            if rows.is_empty() {
                return Ok(None);
            }
            for row in rows {
                match self.apply_to(&row.decode()?, &claimed, at).await {
                    Ok(machine) => return Ok(Some(machine)),
                    // Another claimer (or a drain) got there first: try the next one.
                    Err(Error::Conflict { .. } | Error::Refused { .. }) => continue,
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// A heartbeat: the machine was seen at `at` and its lease runs until `expires_at`.
    /// Returns the machine as it is, so a worker whose machine was marked `lost` meanwhile
    /// learns it (the caller then applies [`MachineEvent::Returned`] and tells the worker to
    /// stop its attempts). A terminated machine is refused with [`Error::Terminated`].
    pub async fn renew_machine_lease(
        &self,
        id: &str,
        at: &str,
        expires_at: &str,
    ) -> Result<MachineRow, Error> {
        let renew = Query::update()
            .table(Machines::Table)
            .value(Machines::LeaseExpiresAt, expires_at)
            .value(Machines::LastSeenAt, at)
            .and_where(Expr::col(Machines::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Machines::Id).eq(id))
            .and_where(Expr::col(Machines::State).ne(MachineState::Terminated.as_str()))
            .to_owned();
        let touched = self.execute(&renew).await?;
        let machine = self.machine(id).await?;
        if touched == 0 && machine.state == MachineState::Terminated {
            return Err(Error::Terminated(id.to_owned()));
        }
        Ok(machine)
    }

    /// Marks `lost` every machine that should heartbeat and whose lease ended before `now`,
    /// and returns them as they are now (`lost`, with the agent they held, if any): the
    /// caller interrupts those agents' attempts. A machine that renewed its lease or changed
    /// meanwhile is left alone.
    pub async fn expire_machine_leases(&self, now: &str) -> Result<Vec<MachineRow>, Error> {
        let heartbeating = MachineState::ALL
            .iter()
            .filter(|state| state.heartbeats())
            .map(|state| state.as_str());
        let select = self
            .machine_select()
            .and_where(Expr::col(Machines::State).is_in(heartbeating))
            .and_where(Expr::col(Machines::LeaseExpiresAt).is_not_null())
            .and_where(Expr::col(Machines::LeaseExpiresAt).lt(now))
            .order_by(Machines::LeaseExpiresAt, Order::Asc)
            .to_owned();
        let rows: Vec<RawMachine> = self.fetch(&select).await?;
        let mut lost = Vec::new();
        for row in rows {
            let machine = row.decode()?;
            let reason = format!(
                "no heartbeat since {}; its lease ended at {}",
                machine.last_seen_at.as_deref().unwrap_or("it was created"),
                machine.lease_expires_at.as_deref().unwrap_or("?"),
            );
            match self
                .apply_to(&machine, &MachineEvent::Lost { reason }, now)
                .await
            {
                Ok(machine) => lost.push(machine),
                Err(Error::Conflict { .. } | Error::Refused { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(lost)
    }

    /// The machine whose credential this is, unless it was revoked (the machine was
    /// terminated) or never issued.
    pub async fn machine_by_credential(
        &self,
        credential: &str,
    ) -> Result<Option<MachineRow>, super::Error> {
        let select = self
            .machine_select()
            .and_where(Expr::col(Machines::CredentialHash).eq(token_hash(credential)))
            .to_owned();
        let rows: Vec<RawMachine> = self.fetch(&select).await?;
        rows.into_iter().next().map(RawMachine::decode).transpose()
    }

    /// The tenant and id of the machine whose credential this is, in whichever tenant it was
    /// registered (a worker proves who it is with the credential alone); `None` for a
    /// credential never issued. Everything else about the machine is read in its tenant.
    pub async fn machine_of_credential(
        &self,
        credential: &str,
    ) -> Result<Option<(String, String)>, super::Error> {
        let select = Query::select()
            .columns([Machines::Tenant, Machines::Id])
            .from(Machines::Table)
            .and_where(Expr::col(Machines::CredentialHash).eq(token_hash(credential)))
            .to_owned();
        let rows: Vec<(String, String)> = self.fetch(&select).await?;
        Ok(rows.into_iter().next())
    }

    /// Machines of `pool` that may still work (neither draining, terminated nor lost), of
    /// every tenant: what a pool's `max_vms` caps, since its machines are counted together.
    pub async fn working_machines(&self, pool: &str) -> Result<usize, super::Error> {
        let ended = [
            MachineState::Draining,
            MachineState::Terminated,
            MachineState::Lost,
        ];
        let select = Query::select()
            .expr(Expr::col(Machines::Id).count())
            .from(Machines::Table)
            .and_where(Expr::col(Machines::Pool).eq(pool))
            .and_where(Expr::col(Machines::State).is_not_in(ended.iter().map(|s| s.as_str())))
            .to_owned();
        let counted: Vec<(i64,)> = self.fetch(&select).await?;
        let count = counted.first().map_or(0, |(n,)| *n);
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// `(pool, state, machines)` for every pool and state that has machines.
    pub async fn machine_counts(&self) -> Result<Vec<(String, MachineState, usize)>, super::Error> {
        let select = Query::select()
            .column(Machines::Pool)
            .column(Machines::State)
            .expr(Expr::col(Machines::Id).count())
            .from(Machines::Table)
            .and_where(Expr::col(Machines::Tenant).eq(self.tenant.as_str()))
            .group_by_col(Machines::Pool)
            .group_by_col(Machines::State)
            .order_by(Machines::Pool, Order::Asc)
            .to_owned();
        let rows: Vec<(String, String, i64)> = self.fetch(&select).await?;
        rows.into_iter()
            .map(|(pool, state, count)| {
                let state = MachineState::parse(&state).ok_or_else(|| {
                    super::Error::Corrupt(format!("a machine of pool {pool} has state `{state}`"))
                })?;
                Ok((pool, state, usize::try_from(count).unwrap_or(0)))
            })
            .collect()
    }
}

impl Store {
    /// `(run, slug)` of every `queued` agent of an unfinished run: agents ready and waiting
    /// for a machine.
    pub async fn queued_agents(&self) -> Result<Vec<(String, String)>, super::Error> {
        use super::schema::{Agents, Runs};
        use crate::state::{AgentState, RunStatus};
        let select = Query::select()
            .column((Agents::Table, Agents::RunId))
            .column((Agents::Table, Agents::Slug))
            .from(Agents::Table)
            .inner_join(
                Runs::Table,
                Expr::col((Runs::Table, Runs::Id)).equals((Agents::Table, Agents::RunId)),
            )
            .and_where(Expr::col((Runs::Table, Runs::Tenant)).eq(self.tenant.as_str()))
            .and_where(
                Expr::col((Runs::Table, Runs::Status))
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .and_where(Expr::col((Agents::Table, Agents::State)).eq(AgentState::Queued.as_str()))
            .to_owned();
        self.fetch(&select).await
    }
}
