//! Finding agents across runs, for Murmur's agent commands (`murmur status SLUG`, …), which
//! name an agent by its slug alone.

use sea_query::{Expr, ExprTrait, Order, Query};

use super::schema::{Agents, Runs};
use super::statements::AGENT_COLUMNS;
use super::{AgentRow, Error, Store};

impl Store {
    /// The agents called `slug`, newest run first.
    pub async fn agents_named(&self, slug: &str, limit: u64) -> Result<Vec<AgentRow>, Error> {
        let select = Query::select()
            .columns(AGENT_COLUMNS.map(|column| (Agents::Table, column)))
            .from(Agents::Table)
            .inner_join(
                Runs::Table,
                Expr::col((Runs::Table, Runs::Id)).equals((Agents::Table, Agents::RunId)),
            )
            .and_where(Expr::col((Runs::Table, Runs::Tenant)).eq(self.tenant.as_str()))
            .and_where(Expr::col((Agents::Table, Agents::Slug)).eq(slug))
            .order_by((Runs::Table, Runs::CreatedAt), Order::Desc)
            .order_by((Runs::Table, Runs::Id), Order::Desc)
            .limit(limit)
            .to_owned();
        self.fetch(&select).await
    }
}
