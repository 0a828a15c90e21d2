//! Machines of cloud pools: the VM behind each (its provider's instance id) and the one-time
//! bootstrap credential its boot script carries. A cloud machine is created here within the
//! pool's `max_vms`, counted in the store under the pool's lock, so several servers (and a
//! restarted one) never make more; its worker then registers with the bootstrap credential,
//! which this store exchanges once for the machine's own credential and never accepts again.

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};

use super::machine_log::{Error, MachineRow, NewMachine, RawMachine, machine_insert};
use super::schema::{Agents, Machines};
use super::{Store, token_hash};
use crate::machine::MachineState;

#[derive(Iden, Clone, Copy)]
enum CloudMachines {
    Table,
    Tenant,
    MachineId,
    Pool,
    InstanceId,
    Location,
    BootstrapHash,
    BootstrapExpiresAt,
    BootstrapUsedAt,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
enum CloudSettings {
    Table,
    Name,
    Value,
}

/// A cloud machine to record: `provisioning`, holding a bootstrap credential.
#[derive(Debug, Clone)]
pub struct NewCloudMachine<'a> {
    pub id: &'a str,
    pub pool: &'a str,
    /// The placement's name (`aws-east`), shown as the machine's placement.
    pub placement: &'a str,
    /// The pool's hard cap: no row is made when it has this many machines not terminated.
    pub max_vms: usize,
    /// Only its hash is kept.
    pub bootstrap: &'a str,
    pub bootstrap_expires_at: &'a str,
    pub at: &'a str,
}

/// A cloud machine: its row and its VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudMachine {
    pub machine: MachineRow,
    pub instance_id: Option<String>,
    pub location: Option<String>,
    /// Whether its worker registered (the bootstrap credential is spent).
    pub registered: bool,
}

#[derive(sqlx::FromRow)]
struct CloudRow {
    machine_id: String,
    instance_id: Option<String>,
    location: Option<String>,
    bootstrap_used_at: Option<String>,
}

const CLUSTER: &str = "cluster";

impl Store {
    /// The id of this store's cluster, the `murmur:cluster` tag of its VMs: `fresh` if no
    /// server set one yet, else the one set first.
    pub async fn cloud_cluster(&self, fresh: &str) -> Result<String, Error> {
        let insert = Query::insert()
            .into_table(CloudSettings::Table)
            .columns([CloudSettings::Name, CloudSettings::Value])
            .values_panic([CLUSTER.into(), fresh.into()])
            .on_conflict(
                OnConflict::column(CloudSettings::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        self.execute(&insert).await?;
        let select = Query::select()
            .column(CloudSettings::Value)
            .from(CloudSettings::Table)
            .and_where(Expr::col(CloudSettings::Name).eq(CLUSTER))
            .to_owned();
        let rows: Vec<(String,)> = self.fetch(&select).await?;
        rows.into_iter()
            .next()
            .map(|(value,)| value)
            .ok_or_else(|| super::Error::Corrupt("no cloud cluster id".into()).into())
    }

    /// Records a new cloud machine unless its pool has `max_vms` machines that are not
    /// terminated, of every tenant (`None` then). Counted and inserted in one transaction
    /// under the pool's lock, so concurrent servers never exceed the cap.
    pub async fn create_cloud_machine(
        &self,
        new: &NewCloudMachine<'_>,
    ) -> Result<Option<MachineRow>, Error> {
        let fail = |e| Error::Store(self.fail(e));
        let mut tx = self.backend.begin_write().await.map_err(fail)?;
        super::machines::lock_pool(&mut tx, new.pool)
            .await
            .map_err(fail)?;
        // A pool's machines are shared by the tenants: `max_vms` counts them all.
        let count = Query::select()
            .expr(Expr::col(Machines::Id).count())
            .from(Machines::Table)
            .and_where(Expr::col(Machines::Pool).eq(new.pool))
            .and_where(Expr::col(Machines::State).ne(MachineState::Terminated.as_str()))
            .to_owned();
        let counted: Vec<(i64,)> = tx.fetch_all(&count).await.map_err(fail)?;
        let live = counted.first().map_or(0, |(n,)| *n);
        if usize::try_from(live).unwrap_or(usize::MAX) >= new.max_vms {
            return Ok(None);
        }
        let machine = machine_insert(
            &self.tenant,
            &NewMachine {
                id: new.id,
                pool: new.pool,
                placement: new.placement,
                public_key: None,
                credential: None,
                lease_expires_at: None,
                at: new.at,
            },
        );
        let cloud = Query::insert()
            .into_table(CloudMachines::Table)
            .columns([
                CloudMachines::Tenant,
                CloudMachines::MachineId,
                CloudMachines::Pool,
                CloudMachines::BootstrapHash,
                CloudMachines::BootstrapExpiresAt,
                CloudMachines::CreatedAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                new.id.into(),
                new.pool.into(),
                token_hash(new.bootstrap).into(),
                new.bootstrap_expires_at.into(),
                new.at.into(),
            ])
            .to_owned();
        tx.execute(&machine).await.map_err(fail)?;
        tx.execute(&cloud).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        self.machine(new.id).await.map(Some)
    }

    /// Notes the VM a cloud machine runs on, once the provider made it.
    pub async fn set_cloud_instance(
        &self,
        machine_id: &str,
        instance_id: &str,
        location: &str,
    ) -> Result<(), Error> {
        let update = Query::update()
            .table(CloudMachines::Table)
            .value(CloudMachines::InstanceId, instance_id)
            .value(CloudMachines::Location, location)
            .and_where(Expr::col(CloudMachines::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(CloudMachines::MachineId).eq(machine_id))
            .to_owned();
        self.execute(&update).await?;
        Ok(())
    }

    /// Spends a bootstrap credential: the cloud machine it was made for when it is unused and
    /// not expired at `now`, else `None`. Only one caller ever gets `Some` for a credential.
    pub async fn redeem_bootstrap(
        &self,
        credential: &str,
        now: &str,
    ) -> Result<Option<CloudMachine>, Error> {
        let hash = token_hash(credential);
        let spend = Query::update()
            .table(CloudMachines::Table)
            .value(CloudMachines::BootstrapUsedAt, now)
            .and_where(Expr::col(CloudMachines::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(CloudMachines::BootstrapHash).eq(hash.as_str()))
            .and_where(Expr::col(CloudMachines::BootstrapUsedAt).is_null())
            .and_where(Expr::col(CloudMachines::BootstrapExpiresAt).gt(now))
            .to_owned();
        if self.execute(&spend).await? == 0 {
            return Ok(None);
        }
        let rows = self
            .cloud_rows(Expr::col(CloudMachines::BootstrapHash).eq(hash.as_str()))
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        self.with_machine(row).await.map(Some)
    }

    /// Gives a registering cloud machine its worker's key, its own credential and its first
    /// lease. False when the machine is no longer `provisioning` (it timed out meanwhile).
    pub async fn register_cloud_machine(
        &self,
        id: &str,
        public_key: &str,
        credential: &str,
        lease_expires_at: &str,
        at: &str,
    ) -> Result<bool, Error> {
        let update = Query::update()
            .table(Machines::Table)
            .value(Machines::PublicKey, public_key)
            .value(Machines::CredentialHash, token_hash(credential))
            .value(Machines::LeaseExpiresAt, lease_expires_at)
            .value(Machines::LastSeenAt, at)
            .and_where(Expr::col(Machines::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Machines::Id).eq(id))
            .and_where(Expr::col(Machines::State).eq(MachineState::Provisioning.as_str()))
            .to_owned();
        Ok(self.execute(&update).await? == 1)
    }

    /// The cloud machines of `pool` that are not terminated, oldest first.
    pub async fn cloud_machines(&self, pool: &str) -> Result<Vec<CloudMachine>, Error> {
        let rows = self
            .cloud_rows(Expr::col(CloudMachines::Pool).eq(pool))
            .await?;
        let mut machines = Vec::new();
        for row in rows {
            let machine = self.with_machine(row).await?;
            if machine.machine.state != MachineState::Terminated {
                machines.push(machine);
            }
        }
        Ok(machines)
    }

    /// The cloud machine `id` (terminated ones too), if it is one.
    pub async fn cloud_machine(&self, id: &str) -> Result<Option<CloudMachine>, Error> {
        let rows = self
            .cloud_rows(Expr::col(CloudMachines::MachineId).eq(id))
            .await?;
        match rows.into_iter().next() {
            Some(row) => self.with_machine(row).await.map(Some),
            None => Ok(None),
        }
    }

    /// `(run_id, slug, state)` of the agents whose latest attempt ran on `machine`.
    pub async fn agents_on_machine(
        &self,
        machine: &str,
    ) -> Result<Vec<(String, String, String)>, Error> {
        let select = Query::select()
            .columns([Agents::RunId, Agents::Slug, Agents::State])
            .from(Agents::Table)
            .and_where(Expr::col(Agents::Machine).eq(machine))
            .to_owned();
        Ok(self.fetch(&select).await?)
    }

    async fn cloud_rows(&self, condition: sea_query::SimpleExpr) -> Result<Vec<CloudRow>, Error> {
        let select = Query::select()
            .columns([
                CloudMachines::MachineId,
                CloudMachines::InstanceId,
                CloudMachines::Location,
                CloudMachines::BootstrapUsedAt,
            ])
            .from(CloudMachines::Table)
            .and_where(Expr::col(CloudMachines::Tenant).eq(self.tenant.as_str()))
            .and_where(condition)
            .order_by(CloudMachines::CreatedAt, Order::Asc)
            .order_by(CloudMachines::MachineId, Order::Asc)
            .to_owned();
        Ok(self.fetch(&select).await?)
    }

    async fn with_machine(&self, row: CloudRow) -> Result<CloudMachine, Error> {
        let select = self
            .machine_select()
            .and_where(Expr::col(Machines::Id).eq(row.machine_id.as_str()))
            .to_owned();
        let raw: Vec<RawMachine> = self.fetch(&select).await?;
        let machine = raw
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoMachine(row.machine_id.clone()))?
            .decode()?;
        Ok(CloudMachine {
            machine,
            instance_id: row.instance_id,
            location: row.location,
            registered: row.bootstrap_used_at.is_some(),
        })
    }
}
