//! Whether a new run will have to wait: what a start answers (`queued` or `running`) before
//! any driver has looked at the run. The same rules as the driver's, read from the store:
//! `max_concurrent` counts the flight's running runs and the queued ones older than this one,
//! first come first served; a pool with every machine held, or with runs already waiting for
//! it, makes a new run wait behind them.

use sea_query::{Cond, Expr, ExprTrait, Query};

use super::schema::Runs;
use super::{Error, Store};
use crate::state::RunStatus;

impl Store {
    /// Whether at least `limit` runs of `flight` are ahead of run `id` for `max_concurrent`:
    /// every running one, and the queued ones created before it (by creation time, then id, as
    /// drivers take turns). Reads no more than `limit` rows however many runs wait.
    pub async fn has_runs_ahead(
        &self,
        flight: &str,
        id: &str,
        limit: usize,
    ) -> Result<bool, Error> {
        let ahead = self.ahead_of(id);
        let first = Query::select()
            .column(Runs::Id)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Runs::Flight).eq(flight))
            .and_where(Expr::col(Runs::Id).ne(id))
            .cond_where(ahead)
            .limit(limit as u64)
            .to_owned();
        let rows: Vec<(String,)> = self.fetch(&first).await?;
        Ok(rows.len() >= limit)
    }

    /// The condition for runs ahead of run `id`: running, or queued and created before it.
    /// Its creation time is read in the same statement (a scalar subquery): one round trip.
    fn ahead_of(&self, id: &str) -> Cond {
        let created = || {
            let mine = Query::select()
                .column(Runs::CreatedAt)
                .from(Runs::Table)
                .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
                .and_where(Expr::col(Runs::Id).eq(id))
                .to_owned();
            Expr::SubQuery(None, Box::new(mine.into()))
        };
        let older = Cond::any()
            .add(Expr::col(Runs::CreatedAt).lt(created()))
            .add(
                Cond::all()
                    .add(Expr::col(Runs::CreatedAt).eq(created()))
                    .add(Expr::col(Runs::Id).lt(id)),
            );
        Cond::any()
            .add(Expr::col(Runs::Status).eq(RunStatus::Running.as_str()))
            .add(
                Cond::all()
                    .add(Expr::col(Runs::Status).eq(RunStatus::Queued.as_str()))
                    .add(older),
            )
    }

    /// Whether a new run would wait for a machine of `pool` (of `capacity` machines) at
    /// `now`: every machine is held, or other runs already wait for one.
    pub async fn pool_is_full(
        &self,
        pool: &str,
        capacity: usize,
        now: &str,
    ) -> Result<bool, Error> {
        if self.any_waiting_for(pool).await? {
            return Ok(true);
        }
        Ok(self.machines_in_use(pool, now).await? >= capacity)
    }
}
