//! Machines and their event logs (issue 12). A machine's row is its current state; every
//! change is a [`MachineEvent`] checked by [`crate::machine::next_state`], applied with a
//! compare-and-set on the row's `version`, and appended to `machine_events` in the same
//! transaction. (`store/machines.rs` is something else: the pool-claims accounting of the
//! local pool.)
//!
//! Who calls what:
//! - a placement creates a machine ([`Store::create_machine`], in `provisioning`) and says
//!   when it is up ([`MachineEvent::Provisioned`] through [`Store::apply_machine_event`]);
//! - a driver takes a warm machine for an attempt ([`Store::claim_idle_machine`]) and
//!   releases it ([`MachineEvent::Released`]);
//! - a worker authenticates with its machine's credential, in whichever tenant the machine
//!   is ([`Store::machine_of_credential`]), and heartbeats ([`Store::renew_machine_lease`]);
//! - a watcher marks silent machines lost ([`Store::expire_machine_leases`]) and interrupts
//!   the attempts of the machines it returns. Leases, claims and counts are in
//!   `store/machine_lease.rs`.

use sea_query::{Expr, ExprTrait, InsertStatement, Order, Query};

use super::schema::{MachineEvents, Machines};
use super::{Store, token_hash};
use crate::machine::table::{Refused, agent_after};
use crate::machine::{AgentRef, MachineEvent, MachineState, next_state};

/// Why a machine operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] super::Error),
    #[error("no machine `{0}`; `murmur machines ls` lists them")]
    NoMachine(String),
    #[error("a machine `{0}` already exists")]
    Exists(String),
    #[error("machine {machine}: {refused}")]
    Refused {
        machine: String,
        #[source]
        refused: Refused,
    },
    /// Someone else changed the machine first: read it again and decide again.
    #[error("machine {machine} was changed by someone else (expected version {expected})")]
    Conflict { machine: String, expected: i64 },
    #[error("machine {0} is terminated")]
    Terminated(String),
}

/// A machine as it is first recorded: `provisioning`, version 0, no events.
#[derive(Debug, Clone)]
pub struct NewMachine<'a> {
    pub id: &'a str,
    pub pool: &'a str,
    pub placement: &'a str,
    /// A worker's ephemeral public key.
    pub public_key: Option<&'a str>,
    /// The machine's own credential; only its hash is kept.
    pub credential: Option<&'a str>,
    /// The first heartbeat lease; `None` for machines that do not heartbeat yet.
    pub lease_expires_at: Option<&'a str>,
    pub at: &'a str,
}

/// A machine's current state. The credential is never read back: only its hash is kept,
/// and [`Store::machine_by_credential`] finds a machine by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub id: String,
    pub pool: String,
    pub placement: String,
    pub provider_id: Option<String>,
    pub state: MachineState,
    /// The agent it holds (busy, sleeping, waking, and lost while it held one).
    pub agent: Option<AgentRef>,
    pub public_key: Option<String>,
    pub lease_expires_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    /// The number of events applied so far: what the next change must expect.
    pub version: i64,
}

/// One entry of a machine's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineEventRow {
    pub seq: i64,
    pub at: String,
    pub event: MachineEvent,
}

/// Which machines [`Store::machines`] lists; empty fields do not filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineFilter<'a> {
    pub pool: Option<&'a str>,
    pub state: Option<MachineState>,
}

#[derive(sqlx::FromRow)]
pub(super) struct RawMachine {
    id: String,
    pool: String,
    placement: String,
    provider_id: Option<String>,
    state: String,
    agent_run_id: Option<String>,
    agent_slug: Option<String>,
    public_key: Option<String>,
    lease_expires_at: Option<String>,
    last_seen_at: Option<String>,
    created_at: String,
    version: i64,
}

impl RawMachine {
    pub(super) fn decode(self) -> Result<MachineRow, super::Error> {
        let state = MachineState::parse(&self.state).ok_or_else(|| {
            super::Error::Corrupt(format!("machine {} has state `{}`", self.id, self.state))
        })?;
        let agent = match (self.agent_run_id, self.agent_slug) {
            (Some(run_id), Some(slug)) => Some(AgentRef { run_id, slug }),
            _ => None,
        };
        Ok(MachineRow {
            id: self.id,
            pool: self.pool,
            placement: self.placement,
            provider_id: self.provider_id,
            state,
            agent,
            public_key: self.public_key,
            lease_expires_at: self.lease_expires_at,
            last_seen_at: self.last_seen_at,
            created_at: self.created_at,
            version: self.version,
        })
    }
}

pub(super) const MACHINE_COLUMNS: [Machines; 12] = [
    Machines::Id,
    Machines::Pool,
    Machines::Placement,
    Machines::ProviderId,
    Machines::State,
    Machines::AgentRunId,
    Machines::AgentSlug,
    Machines::PublicKey,
    Machines::LeaseExpiresAt,
    Machines::LastSeenAt,
    Machines::CreatedAt,
    Machines::Version,
];

/// The insert of `new`'s row, in `provisioning` at version 0: the one way a machine row is
/// made (`create_machine` here, cloud machines in `store/cloud_machines`).
pub(super) fn machine_insert(tenant: &str, new: &NewMachine<'_>) -> InsertStatement {
    Query::insert()
        .into_table(Machines::Table)
        .columns([
            Machines::Tenant,
            Machines::Id,
            Machines::Pool,
            Machines::Placement,
            Machines::State,
            Machines::PublicKey,
            Machines::CredentialHash,
            Machines::LeaseExpiresAt,
            Machines::CreatedAt,
            Machines::Version,
        ])
        .values_panic([
            tenant.into(),
            new.id.into(),
            new.pool.into(),
            new.placement.into(),
            MachineState::Provisioning.as_str().into(),
            new.public_key.into(),
            new.credential.map(token_hash).into(),
            new.lease_expires_at.into(),
            new.at.into(),
            0i64.into(),
        ])
        .to_owned()
}

impl Store {
    /// Records a new machine in `provisioning`. Refused with [`Error::Exists`] when the id
    /// is taken.
    pub async fn create_machine(&self, new: &NewMachine<'_>) -> Result<MachineRow, Error> {
        if self.find_machine(new.id).await?.is_some() {
            return Err(Error::Exists(new.id.to_owned()));
        }
        let insert = machine_insert(&self.tenant, new);
        // Two creators racing for one id: the primary key refuses the second.
        if let Err(error) = self.execute(&insert).await {
            return match self.find_machine(new.id).await? {
                Some(_) => Err(Error::Exists(new.id.to_owned())),
                None => Err(error.into()),
            };
        }
        self.machine(new.id).await
    }

    /// The machine `id`.
    pub async fn machine(&self, id: &str) -> Result<MachineRow, Error> {
        self.find_machine(id)
            .await?
            .ok_or_else(|| Error::NoMachine(id.to_owned()))
    }

    async fn find_machine(&self, id: &str) -> Result<Option<MachineRow>, super::Error> {
        let select = self
            .machine_select()
            .and_where(Expr::col(Machines::Id).eq(id))
            .to_owned();
        let rows: Vec<RawMachine> = self.fetch(&select).await?;
        rows.into_iter().next().map(RawMachine::decode).transpose()
    }

    /// Machines by pool, then oldest first.
    pub async fn machines(
        &self,
        filter: &MachineFilter<'_>,
    ) -> Result<Vec<MachineRow>, super::Error> {
        let mut select = self.machine_select();
        if let Some(pool) = filter.pool {
            select.and_where(Expr::col(Machines::Pool).eq(pool));
        }
        if let Some(state) = filter.state {
            select.and_where(Expr::col(Machines::State).eq(state.as_str()));
        }
        select
            .order_by(Machines::Pool, Order::Asc)
            .order_by(Machines::CreatedAt, Order::Asc)
            .order_by(Machines::Id, Order::Asc);
        let rows: Vec<RawMachine> = self.fetch(&select).await?;
        rows.into_iter().map(RawMachine::decode).collect()
    }

    pub(super) fn machine_select(&self) -> sea_query::SelectStatement {
        Query::select()
            .columns(MACHINE_COLUMNS)
            .from(Machines::Table)
            .and_where(Expr::col(Machines::Tenant).eq(self.tenant.as_str()))
            .to_owned()
    }

    /// The machine's log, oldest first.
    pub async fn machine_events(&self, id: &str) -> Result<Vec<MachineEventRow>, Error> {
        self.machine(id).await?;
        let select = Query::select()
            .columns([MachineEvents::Seq, MachineEvents::At, MachineEvents::Event])
            .from(MachineEvents::Table)
            .and_where(Expr::col(MachineEvents::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(MachineEvents::MachineId).eq(id))
            .order_by(MachineEvents::Seq, Order::Asc)
            .to_owned();
        let rows: Vec<(i64, String, String)> = self.fetch(&select).await?;
        rows.into_iter()
            .map(|(seq, at, text)| {
                let event = serde_json::from_str(&text).map_err(|error| {
                    super::Error::Corrupt(format!("machine {id} event {seq}: {error}"))
                })?;
                Ok(MachineEventRow { seq, at, event })
            })
            .collect()
    }

    /// Applies `event` to machine `id` if it is still at `expected_version` and its state
    /// allows the event. [`Error::Conflict`] when someone changed it first,
    /// [`Error::Refused`] when the transition is illegal. `Terminated` revokes the
    /// machine's credential in the same transaction.
    pub async fn apply_machine_event(
        &self,
        id: &str,
        expected_version: i64,
        event: &MachineEvent,
        at: &str,
    ) -> Result<MachineRow, Error> {
        let current = self.machine(id).await?;
        if current.version != expected_version {
            return Err(Error::Conflict {
                machine: id.to_owned(),
                expected: expected_version,
            });
        }
        self.apply_to(&current, event, at).await
    }

    /// Applies `event` to the machine as `current` shows it (checked against its version).
    pub(super) async fn apply_to(
        &self,
        current: &MachineRow,
        event: &MachineEvent,
        at: &str,
    ) -> Result<MachineRow, Error> {
        let refused = |refused| Error::Refused {
            machine: current.id.clone(),
            refused,
        };
        let state = next_state(current.state, event).map_err(refused)?;
        let agent = agent_after(event, current.agent.clone());
        let version = current.version + 1;
        let mut update = Query::update()
            .table(Machines::Table)
            .value(Machines::State, state.as_str())
            .value(
                Machines::AgentRunId,
                agent.as_ref().map(|a| a.run_id.as_str()),
            )
            .value(Machines::AgentSlug, agent.as_ref().map(|a| a.slug.as_str()))
            .value(Machines::Version, version)
            .and_where(Expr::col(Machines::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Machines::Id).eq(current.id.as_str()))
            .and_where(Expr::col(Machines::Version).eq(current.version))
            .to_owned();
        if let MachineEvent::Provisioned { provider_id } = event {
            update.value(Machines::ProviderId, provider_id.as_str());
        }
        if state == MachineState::Terminated {
            update.value(Machines::CredentialHash, Option::<String>::None);
        }
        let text =
            serde_json::to_string(event).map_err(|e| super::Error::Corrupt(e.to_string()))?;
        let append = Query::insert()
            .into_table(MachineEvents::Table)
            .columns([
                MachineEvents::Tenant,
                MachineEvents::MachineId,
                MachineEvents::Seq,
                MachineEvents::At,
                MachineEvents::Event,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                current.id.as_str().into(),
                version.into(),
                at.into(),
                text.into(),
            ])
            .to_owned();
        let mut tx = self.backend.begin().await.map_err(|e| self.fail(e))?;
        let touched = tx.execute(&update).await.map_err(|e| self.fail(e))?;
        if touched == 0 {
            return Err(Error::Conflict {
                machine: current.id.clone(),
                expected: current.version,
            });
        }
        tx.execute(&append).await.map_err(|e| self.fail(e))?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(MachineRow {
            state,
            agent,
            version,
            provider_id: match event {
                MachineEvent::Provisioned { provider_id } => Some(provider_id.clone()),
                _ => current.provider_id.clone(),
            },
            ..current.clone()
        })
    }
}
