//! Machines in use, counted across every process and every tenant that share the store. A
//! driver's checkpoint says which of its run's agents start or stop holding a machine, pool by
//! pool ([`MachineUse`]); the writer deletes the rows of those that stopped and inserts rows for
//! those that started, in the checkpoint's own transaction, after locking each pool it takes
//! machines of (the row lock on PostgreSQL, in the pools' name order so two checkpoints never
//! wait for each other; on SQLite the transaction already holds the write lock), and only while
//! every such pool has room, and the run's tenant has room under its `max_vms_per_tenant`. So
//! each pool's `max_vms` and tenant cap hold however many servers start work at once, at no
//! extra commit, and a checkpoint starting agents on two pools takes both or neither.

use sea_query::{Expr, ExprTrait, OnConflict, Query};

use super::backend::Tx;
use super::schema::PoolClaims;
use super::{Error, Store};
use crate::lease::Holder;

/// What one checkpoint changes about its run's machines, in every pool it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineUse {
    /// The driver's lease owner: its rows are renewed with its leases.
    pub owner: String,
    pub holder: Holder,
    /// Until when the new rows count unless renewed (the lease's expiry).
    pub expires_at: String,
    /// When the run was created: older waiting runs go first.
    pub run_created_at: String,
    /// One entry per pool whose machines change, each pool once.
    pub pools: Vec<PoolUse>,
}

/// What one checkpoint changes about its run's machines of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    pub pool: String,
    /// The pool's `max_vms`, across every tenant.
    pub capacity: usize,
    /// The pool's `max_vms_per_tenant`: how many the run's tenant may hold at once.
    pub tenant_capacity: Option<usize>,
    /// The run waited for machines of the pool and wants none any more: it stops waiting.
    pub done_waiting: bool,
    /// Agents (slug, attempt) that start holding a machine of the pool with the checkpoint.
    pub hold: Vec<(String, u32)>,
    /// Agents that stop holding theirs.
    pub free: Vec<String>,
}

/// A pool that had fewer machines free than a checkpoint would start work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullPool {
    pub pool: String,
    /// Machines of it the run may take now.
    pub available: usize,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    tenant: String,
    run_id: String,
    agent: String,
    holder: String,
    expires_at: String,
}

impl ClaimRow {
    /// Counts at `now`: not expired, and its holder not proven gone.
    fn is_live(&self, now: &str) -> bool {
        let gone = serde_json::from_str::<Holder>(&self.holder).is_ok_and(|h| h.is_gone_here());
        self.expires_at.as_str() > now && !gone
    }
}

/// Applies `machines` for `run_id` inside the checkpoint's transaction: every pool's frees,
/// then its holds when it has room. The pools without room, if any (nothing is kept then: the
/// caller rolls the checkpoint back).
pub(super) async fn apply(
    tx: &mut Tx,
    tenant: &str,
    run_id: &str,
    at: &str,
    machines: &MachineUse,
) -> sqlx::Result<Vec<FullPool>> {
    let mut pools: Vec<&PoolUse> = machines.pools.iter().collect();
    // Locks are taken in one order, so two checkpoints taking two pools never deadlock.
    pools.sort_by(|a, b| a.pool.cmp(&b.pool));
    let mut full = Vec::new();
    for pool in pools {
        if pool.done_waiting {
            super::waiters::stop_waiting(tx, run_id, Some(&pool.pool)).await?;
        }
        free(tx, run_id, pool).await?;
        if pool.hold.is_empty() {
            continue;
        }
        lock_pool(tx, &pool.pool).await?;
        let live = live_claims(tx, tenant, &pool.pool, at).await?;
        let ahead = super::waiters::wanted_before(tx, tenant, run_id, at, machines, pool).await?;
        // A row of an earlier attempt of the same agent (left by a driver that died) may still
        // count; counting it too errs on the side of the cap.
        let available = room(pool, &live, ahead);
        if pool.hold.len() > available {
            full.push(FullPool {
                pool: pool.pool.clone(),
                available,
            });
        } else if full.is_empty() {
            // Once a pool refused, the checkpoint is rolled back: nothing more to write.
            hold(tx, tenant, run_id, machines, pool).await?;
        }
    }
    Ok(full)
}

/// Deletes the rows of the pool's agents that stop holding a machine (an agent holds one at
/// most, so its row goes whichever pool it was counted in).
async fn free(tx: &mut Tx, run_id: &str, pool: &PoolUse) -> sqlx::Result<()> {
    if pool.free.is_empty() {
        return Ok(());
    }
    let release = Query::delete()
        .from_table(PoolClaims::Table)
        .and_where(Expr::col(PoolClaims::RunId).eq(run_id))
        .and_where(Expr::col(PoolClaims::Agent).is_in(pool.free.iter().map(String::as_str)))
        .to_owned();
    tx.execute(&release).await.map(drop)
}

/// Inserts (or takes over) the rows of the pool's agents that start holding a machine.
async fn hold(
    tx: &mut Tx,
    tenant: &str,
    run_id: &str,
    machines: &MachineUse,
    pool: &PoolUse,
) -> sqlx::Result<()> {
    let holder = serde_json::to_string(&machines.holder).unwrap_or_default();
    let mut insert = Query::insert()
        .into_table(PoolClaims::Table)
        .columns([
            PoolClaims::Tenant,
            PoolClaims::Pool,
            PoolClaims::RunId,
            PoolClaims::Agent,
            PoolClaims::Attempt,
            PoolClaims::Owner,
            PoolClaims::Holder,
            PoolClaims::ExpiresAt,
        ])
        .to_owned();
    for (slug, attempt) in &pool.hold {
        insert.values_panic([
            tenant.into(),
            pool.pool.as_str().into(),
            run_id.into(),
            slug.as_str().into(),
            i64::from(*attempt).into(),
            machines.owner.as_str().into(),
            holder.as_str().into(),
            machines.expires_at.as_str().into(),
        ]);
    }
    insert.on_conflict(
        OnConflict::columns([
            PoolClaims::Tenant,
            PoolClaims::Pool,
            PoolClaims::RunId,
            PoolClaims::Agent,
        ])
        .update_columns([
            PoolClaims::Attempt,
            PoolClaims::Owner,
            PoolClaims::Holder,
            PoolClaims::ExpiresAt,
        ])
        .to_owned(),
    );
    tx.execute(&insert).await.map(drop)
}

/// Machines the run may take now: what the pool has free, less what older waiting runs of its
/// tenant want, and no more than its tenant has left under `max_vms_per_tenant`. Waiting
/// lines are per tenant: a run held back by its tenant's cap never holds back another tenant.
fn room(pool: &PoolUse, live: &Live, ahead: usize) -> usize {
    let free = pool.capacity.saturating_sub(live.all + ahead);
    match pool.tenant_capacity {
        Some(cap) => free.min(cap.saturating_sub(live.tenant + ahead)),
        None => free,
    }
}

/// A pool's live machine rows: of every tenant, and of the run's own.
struct Live {
    all: usize,
    tenant: usize,
}

/// The table whose rows serialise claims on a pool (migration 0024): one per pool, of every
/// tenant, since a pool's machines are shared.
#[derive(sea_query::Iden, Clone, Copy)]
enum PoolLocks {
    Table,
    Pool,
    Version,
}

/// Serialises claims on one pool: the row lock (PostgreSQL) or the write lock (SQLite) is
/// held until the transaction ends, so two processes never count the same free machine.
pub(super) async fn lock_pool(tx: &mut Tx, pool: &str) -> sqlx::Result<()> {
    if matches!(tx, Tx::Sqlite(_)) {
        return Ok(());
    }
    let create = Query::insert()
        .into_table(PoolLocks::Table)
        .columns([PoolLocks::Pool, PoolLocks::Version])
        .values_panic([pool.into(), 0i64.into()])
        .on_conflict(OnConflict::column(PoolLocks::Pool).do_nothing().to_owned())
        .to_owned();
    tx.execute(&create).await?;
    let lock = Query::update()
        .table(PoolLocks::Table)
        .value(PoolLocks::Version, Expr::col(PoolLocks::Version).add(1))
        .and_where(Expr::col(PoolLocks::Pool).eq(pool))
        .to_owned();
    tx.execute(&lock).await.map(drop)
}

/// Live machine rows of a pool at `now`, of every tenant, for the store's waiting lines
/// (`store::turns`): a machine freed in one tenant is free for the others too.
pub(super) async fn live_in_pool(
    backend: &super::backend::Backend,
    pool: &str,
    now: &str,
) -> Result<usize, sqlx::Error> {
    let rows: Vec<ClaimRow> = backend.fetch_all(&claims_of(pool)).await?;
    Ok(rows.iter().filter(|row| row.is_live(now)).count())
}

/// Every machine row of a pool, of every tenant.
fn claims_of(pool: &str) -> sea_query::SelectStatement {
    Query::select()
        .columns([
            PoolClaims::Tenant,
            PoolClaims::RunId,
            PoolClaims::Agent,
            PoolClaims::Holder,
            PoolClaims::ExpiresAt,
        ])
        .from(PoolClaims::Table)
        .and_where(Expr::col(PoolClaims::Pool).eq(pool))
        .to_owned()
}

/// How many machines of the pool are in use at `now`, in all and by `tenant`; rows of dead
/// holders are removed.
async fn live_claims(tx: &mut Tx, tenant: &str, pool: &str, now: &str) -> sqlx::Result<Live> {
    let rows: Vec<ClaimRow> = tx.fetch_all(&claims_of(pool)).await?;
    let mut live = Live { all: 0, tenant: 0 };
    for row in rows {
        if row.is_live(now) {
            live.all += 1;
            live.tenant += usize::from(row.tenant == tenant);
            continue;
        }
        let forget = Query::delete()
            .from_table(PoolClaims::Table)
            .and_where(Expr::col(PoolClaims::RunId).eq(row.run_id.as_str()))
            .and_where(Expr::col(PoolClaims::Agent).eq(row.agent.as_str()))
            .to_owned();
        tx.execute(&forget).await?;
    }
    Ok(live)
}

impl Store {
    /// Machines of `pool` in use at `now`, by every tenant, across every process sharing the
    /// store.
    pub async fn machines_in_use(&self, pool: &str, now: &str) -> Result<usize, Error> {
        let rows: Vec<ClaimRow> = self.fetch(&claims_of(pool)).await?;
        Ok(rows.iter().filter(|row| row.is_live(now)).count())
    }

    /// Machines of `pool` this store's tenant holds at `now`, across every process.
    pub async fn tenant_machines_in_use(&self, pool: &str, now: &str) -> Result<usize, Error> {
        let rows: Vec<ClaimRow> = self.fetch(&claims_of(pool)).await?;
        let own = |row: &&ClaimRow| row.tenant == self.tenant && row.is_live(now);
        Ok(rows.iter().filter(own).count())
    }

    /// Extends the machine rows `owner_id` holds, with its leases: of the runs it still
    /// holds the lease of, so a run taken over is not held here too.
    pub(super) async fn renew_machines(
        &self,
        owner_id: &str,
        expires_at: &str,
    ) -> Result<(), Error> {
        let renew = Query::update()
            .table(PoolClaims::Table)
            .value(PoolClaims::ExpiresAt, expires_at)
            .and_where(Expr::col(PoolClaims::Owner).eq(owner_id))
            .and_where(
                Expr::col(PoolClaims::RunId).in_subquery(super::lease::runs_leased_by(owner_id)),
            )
            .to_owned();
        self.execute(&renew).await.map(drop)
    }
}
