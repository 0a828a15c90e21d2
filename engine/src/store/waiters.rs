//! Runs waiting for machines of a full pool. A run refused for want of machines records how
//! many it wants; from then on no younger run takes a machine while it waits, whichever server
//! drives either. So machines go to the oldest waiting run first, and no run starves.

use sea_query::{Cond, Expr, ExprTrait, OnConflict, Query};

use super::backend::Tx;
use super::machines::{MachineUse, PoolUse};
use super::schema::PoolWaiters;
use super::{Error, Store};
use crate::lease::Holder;

#[derive(sqlx::FromRow)]
struct WaiterRow {
    wants: i64,
    holder: String,
}

/// Machines that runs older than `run_id` wait for (live waiters only), counted up to the
/// pool's capacity: past it nothing is free anyway. Older, unexpired waiters are found in SQL,
/// oldest first, a page at a time, so a checkpoint reads only the waiters ahead of it that
/// can matter rather than every run waiting for the pool.
pub(super) async fn wanted_before(
    tx: &mut Tx,
    tenant: &str,
    run_id: &str,
    at: &str,
    machines: &MachineUse,
    pool: &PoolUse,
) -> sqlx::Result<usize> {
    let page = pool.capacity.max(1) as u64;
    let (mut wanted, mut offset) = (0, 0);
    loop {
        let older = Older {
            tenant,
            run_id,
            run_created_at: &machines.run_created_at,
            pool: &pool.pool,
        };
        let rows: Vec<WaiterRow> = tx
            .fetch_all(&older_waiters(&older, at, page, offset))
            .await?;
        wanted += rows
            .iter()
            .filter(|row| {
                !serde_json::from_str::<Holder>(&row.holder).is_ok_and(|h| h.is_gone_here())
            })
            .map(|row| usize::try_from(row.wants).unwrap_or(0))
            .sum::<usize>();
        if wanted >= pool.capacity || (rows.len() as u64) < page {
            return Ok(wanted);
        }
        offset += page;
    }
}

/// Whose waiters are looked for: those of `tenant` for `pool`, older than the run.
struct Older<'a> {
    tenant: &'a str,
    run_id: &'a str,
    run_created_at: &'a str,
    pool: &'a str,
}

/// A page of the live waiters of the pool older than the run, oldest first.
fn older_waiters(older: &Older, at: &str, limit: u64, offset: u64) -> sea_query::SelectStatement {
    let Older {
        tenant,
        run_id,
        run_created_at: created,
        pool,
    } = *older;
    let older = Cond::any()
        .add(Expr::col(PoolWaiters::RunCreatedAt).lt(created))
        .add(
            Cond::all()
                .add(Expr::col(PoolWaiters::RunCreatedAt).eq(created))
                .add(Expr::col(PoolWaiters::RunId).lt(run_id)),
        );
    Query::select()
        .columns([PoolWaiters::Wants, PoolWaiters::Holder])
        .from(PoolWaiters::Table)
        .and_where(Expr::col(PoolWaiters::Tenant).eq(tenant))
        .and_where(Expr::col(PoolWaiters::Pool).eq(pool))
        .and_where(Expr::col(PoolWaiters::ExpiresAt).gt(at))
        .cond_where(older)
        .order_by(PoolWaiters::RunCreatedAt, sea_query::Order::Asc)
        .order_by(PoolWaiters::RunId, sea_query::Order::Asc)
        .limit(limit)
        .offset(offset)
        .to_owned()
}

/// Records that the run waits for `wants` machines of `pool`.
pub(super) async fn wait(
    tx: &mut Tx,
    tenant: &str,
    run_id: &str,
    machines: &MachineUse,
    pool: &str,
    wants: usize,
) -> sqlx::Result<()> {
    let holder = serde_json::to_string(&machines.holder).unwrap_or_default();
    let upsert = Query::insert()
        .into_table(PoolWaiters::Table)
        .columns([
            PoolWaiters::Tenant,
            PoolWaiters::Pool,
            PoolWaiters::RunId,
            PoolWaiters::RunCreatedAt,
            PoolWaiters::Wants,
            PoolWaiters::Owner,
            PoolWaiters::Holder,
            PoolWaiters::ExpiresAt,
        ])
        .values_panic([
            tenant.into(),
            pool.into(),
            run_id.into(),
            machines.run_created_at.as_str().into(),
            (wants as i64).into(),
            machines.owner.as_str().into(),
            holder.into(),
            machines.expires_at.as_str().into(),
        ])
        .on_conflict(
            OnConflict::columns([PoolWaiters::Tenant, PoolWaiters::Pool, PoolWaiters::RunId])
                .update_columns([
                    PoolWaiters::Wants,
                    PoolWaiters::Owner,
                    PoolWaiters::Holder,
                    PoolWaiters::ExpiresAt,
                ])
                .to_owned(),
        )
        .to_owned();
    tx.execute(&upsert).await.map(drop)
}

/// The run no longer waits for machines of `pool` (it wants none of them any more), or, with
/// no pool, for any pool (it ended).
pub(super) async fn stop_waiting(
    tx: &mut Tx,
    run_id: &str,
    pool: Option<&str>,
) -> sqlx::Result<()> {
    let mut delete = Query::delete()
        .from_table(PoolWaiters::Table)
        .and_where(Expr::col(PoolWaiters::RunId).eq(run_id))
        .to_owned();
    if let Some(pool) = pool {
        delete.and_where(Expr::col(PoolWaiters::Pool).eq(pool));
    }
    tx.execute(&delete).await.map(drop)
}

impl Store {
    /// Runs waiting for machines of `pool`, oldest first, with how many each wants.
    pub async fn runs_waiting_for(&self, pool: &str) -> Result<Vec<(String, usize)>, Error> {
        let select = Query::select()
            .columns([PoolWaiters::RunId, PoolWaiters::Wants])
            .from(PoolWaiters::Table)
            .and_where(Expr::col(PoolWaiters::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(PoolWaiters::Pool).eq(pool))
            .order_by(PoolWaiters::RunCreatedAt, sea_query::Order::Asc)
            .order_by(PoolWaiters::RunId, sea_query::Order::Asc)
            .to_owned();
        let rows: Vec<(String, i64)> = self.fetch(&select).await?;
        Ok(rows
            .into_iter()
            .map(|(run, wants)| (run, usize::try_from(wants).unwrap_or(0)))
            .collect())
    }

    /// Whether any run waits for machines of `pool` (one row read, however many wait).
    pub(super) async fn any_waiting_for(&self, pool: &str) -> Result<bool, Error> {
        let select = Query::select()
            .column(PoolWaiters::RunId)
            .from(PoolWaiters::Table)
            .and_where(Expr::col(PoolWaiters::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(PoolWaiters::Pool).eq(pool))
            .limit(1)
            .to_owned();
        let rows: Vec<(String,)> = self.fetch(&select).await?;
        Ok(!rows.is_empty())
    }

    /// Extends the waits `owner_id` records, with its leases: of the runs it still holds the
    /// lease of, so a run no longer driven here does not hold younger runs back.
    pub(super) async fn renew_waiters(
        &self,
        owner_id: &str,
        expires_at: &str,
    ) -> Result<(), Error> {
        let renew = Query::update()
            .table(PoolWaiters::Table)
            .value(PoolWaiters::ExpiresAt, expires_at)
            .and_where(Expr::col(PoolWaiters::Owner).eq(owner_id))
            .and_where(
                Expr::col(PoolWaiters::RunId).in_subquery(super::lease::runs_leased_by(owner_id)),
            )
            .to_owned();
        self.execute(&renew).await.map(drop)
    }
}
