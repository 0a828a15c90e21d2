//! Finished runs, for `murmur runs prune`, which removes what they left on disk.

use sea_query::{Expr, ExprTrait, Order, Query};

use super::schema::Runs;
use super::statements::RUN_COLUMNS;
use super::{Error, RunRow, Store};
use crate::state::RunStatus;

impl Store {
    /// Completed, failed and canceled runs, oldest first. How old is old enough is the
    /// caller's to decide: it reads the time once and filters these.
    pub async fn finished_runs(&self) -> Result<Vec<RunRow>, Error> {
        let finished = [RunStatus::Completed, RunStatus::Failed, RunStatus::Canceled];
        let select = Query::select()
            .columns(RUN_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Runs::Status).is_in(finished.map(RunStatus::as_str)))
            .order_by(Runs::FinishedAt, Order::Asc)
            .order_by(Runs::Id, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }
}
