//! How many runs are in each status and agents in each state, counted by the database, for
//! `/metrics`.

use sea_query::{Expr, ExprTrait, Query};

use super::schema::{Agents, Runs};
use super::{Error, Store};

#[derive(sqlx::FromRow)]
struct Count {
    name: String,
    count: i64,
}

impl Store {
    /// `(status, runs)` for every status that has runs.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        let select = Query::select()
            .expr_as(Expr::col(Runs::Status), "name")
            .expr_as(Expr::col(Runs::Id).count(), "count")
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .group_by_col(Runs::Status)
            .to_owned();
        let rows: Vec<Count> = self.fetch(&select).await?;
        Ok(rows.into_iter().map(|c| (c.name, c.count)).collect())
    }

    /// `(state, agents)` for every state that has agents, across all runs.
    pub async fn agent_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        let select = Query::select()
            .expr_as(Expr::col((Agents::Table, Agents::State)), "name")
            .expr_as(Expr::col((Agents::Table, Agents::Slug)).count(), "count")
            .from(Agents::Table)
            .inner_join(
                Runs::Table,
                Expr::col((Runs::Table, Runs::Id)).equals((Agents::Table, Agents::RunId)),
            )
            .and_where(Expr::col((Runs::Table, Runs::Tenant)).eq(self.tenant.as_str()))
            .group_by_col((Agents::Table, Agents::State))
            .to_owned();
        let rows: Vec<Count> = self.fetch(&select).await?;
        Ok(rows.into_iter().map(|c| (c.name, c.count)).collect())
    }
}
