//! Run leases in the store: taken with a compare-and-set on the epoch, renewed for all of an
//! owner's runs in one statement, released when the owner stops driving. The epoch is what
//! fences commits (see `writer::write_one`).

use std::collections::HashMap;

use sea_query::{Expr, ExprTrait, Query};

use super::schema::Runs;
use super::{Error, Store};
use crate::lease::{Holder, Lease, Owner};
use crate::state::RunStatus;

/// The outcome of trying to take a run's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This owner drives the run now, under `epoch`. `previous` is the lease it replaced
    /// (an expired or released one), so the caller can judge what that holder left behind.
    Taken { epoch: i64, previous: Lease },
    /// Someone else holds a live lease.
    Held(Lease),
}

#[derive(sqlx::FromRow)]
struct LeaseColumns {
    id: String,
    lease_owner: Option<String>,
    lease_holder: Option<String>,
    lease_epoch: i64,
    lease_acquired_at: Option<String>,
    lease_expires_at: Option<String>,
}

impl From<LeaseColumns> for Lease {
    fn from(row: LeaseColumns) -> Self {
        Lease {
            owner: row.lease_owner,
            holder: row
                .lease_holder
                .and_then(|text| serde_json::from_str(&text).ok()),
            epoch: row.lease_epoch,
            acquired_at: row.lease_acquired_at,
            expires_at: row.lease_expires_at,
        }
    }
}

const LEASE_COLUMNS: [Runs; 6] = [
    Runs::Id,
    Runs::LeaseOwner,
    Runs::LeaseHolder,
    Runs::LeaseEpoch,
    Runs::LeaseAcquiredAt,
    Runs::LeaseExpiresAt,
];

impl Store {
    /// The lease of one run (by exact id).
    pub async fn lease(&self, run_id: &str) -> Result<Lease, Error> {
        self.leases(&[run_id.to_owned()])
            .await?
            .remove(run_id)
            .ok_or_else(|| Error::NoRun(run_id.to_owned()))
    }

    /// The leases of these runs, by run id.
    pub async fn leases(&self, run_ids: &[String]) -> Result<HashMap<String, Lease>, Error> {
        let mut found = HashMap::new();
        for chunk in run_ids.chunks(500) {
            let select = Query::select()
                .columns(LEASE_COLUMNS)
                .from(Runs::Table)
                .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
                .and_where(Expr::col(Runs::Id).is_in(chunk.iter().map(String::as_str)))
                .to_owned();
            let rows: Vec<LeaseColumns> = self.fetch(&select).await?;
            found.extend(
                rows.into_iter()
                    .map(|row| (row.id.clone(), Lease::from(row))),
            );
        }
        Ok(found)
    }

    /// Takes the run's lease for `owner` until `expires_at`, unless another owner holds it
    /// (live at `now`, and not proven gone). Taking it bumps the epoch, which fences the
    /// previous holder.
    pub async fn acquire_lease(
        &self,
        run_id: &str,
        owner: &Owner,
        now: &str,
        expires_at: &str,
    ) -> Result<Acquired, Error> {
        let current = self.lease(run_id).await?;
        let mine = current.owner.as_deref() == Some(owner.id.as_str());
        if current.is_held(now) && !mine {
            return Ok(Acquired::Held(current));
        }
        let holder = serde_json::to_string(&owner.holder).unwrap_or_default();
        let epoch = current.epoch + 1;
        let take = Query::update()
            .table(Runs::Table)
            .value(Runs::LeaseOwner, owner.id.as_str())
            .value(Runs::LeaseHolder, holder)
            .value(Runs::LeaseEpoch, epoch)
            .value(Runs::LeaseAcquiredAt, now)
            .value(Runs::LeaseExpiresAt, expires_at)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Runs::Id).eq(run_id))
            .and_where(Expr::col(Runs::LeaseEpoch).eq(current.epoch))
            .to_owned();
        if self.execute(&take).await? == 1 {
            return Ok(Acquired::Taken {
                epoch,
                previous: current,
            });
        }
        // Another process took it between the read and the write: it holds it now.
        Ok(Acquired::Held(self.lease(run_id).await?))
    }

    /// Extends every lease `owner_id` holds to `expires_at`, in one statement, and returns
    /// the runs (with their epochs) it still holds: a run missing from the answer was taken
    /// over by another process.
    pub async fn renew_leases(
        &self,
        owner_id: &str,
        expires_at: &str,
    ) -> Result<HashMap<String, i64>, Error> {
        let renew = Query::update()
            .table(Runs::Table)
            .value(Runs::LeaseExpiresAt, expires_at)
            .and_where(Expr::col(Runs::LeaseOwner).eq(owner_id))
            .to_owned();
        self.execute(&renew).await?;
        self.renew_machines(owner_id, expires_at).await?;
        self.renew_waiters(owner_id, expires_at).await?;
        let select = Query::select()
            .columns(LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::LeaseOwner).eq(owner_id))
            .to_owned();
        let rows: Vec<LeaseColumns> = self.fetch(&select).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.id, row.lease_epoch))
            .collect())
    }

    /// Lets the lease go (the run ended, or this process stops driving it). A lease taken
    /// over meanwhile is left alone.
    pub async fn release_lease(
        &self,
        run_id: &str,
        owner_id: &str,
        epoch: i64,
    ) -> Result<(), Error> {
        let release = Query::update()
            .table(Runs::Table)
            .value(Runs::LeaseOwner, None::<String>)
            .value(Runs::LeaseExpiresAt, None::<String>)
            .and_where(Expr::col(Runs::Id).eq(run_id))
            .and_where(Expr::col(Runs::LeaseOwner).eq(owner_id))
            .and_where(Expr::col(Runs::LeaseEpoch).eq(epoch))
            .to_owned();
        self.execute(&release).await.map(drop)
    }

    /// Unfinished runs that nobody drives at `now`: never picked up, released without
    /// ending, whose driver's lease expired, or whose driver is proven gone. Oldest first.
    pub async fn runs_without_driver(&self, now: &str) -> Result<Vec<String>, Error> {
        let select = Query::select()
            .columns(LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(
                Expr::col(Runs::Status)
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .order_by(Runs::CreatedAt, sea_query::Order::Asc)
            .to_owned();
        let rows: Vec<LeaseColumns> = self.fetch(&select).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let id = row.id.clone();
                (!Lease::from(row).is_held(now)).then_some(id)
            })
            .collect())
    }
}

impl Lease {
    /// Who holds it, for messages: `murmur serve (pid 41 on vm-3)`.
    pub fn holder_text(&self) -> String {
        self.holder
            .as_ref()
            .map_or_else(|| "another process".to_owned(), Holder::describe)
    }
}

/// The runs whose lease `owner_id` holds, for the rows renewed with its leases.
pub(super) fn runs_leased_by(owner_id: &str) -> sea_query::SelectStatement {
    Query::select()
        .column(Runs::Id)
        .from(Runs::Table)
        .and_where(Expr::col(Runs::LeaseOwner).eq(owner_id))
        .to_owned()
}
