//! Schedule ticks taken: claiming a tick twice fails, so each fires once across restarts.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::schema::ScheduleTicks;
use super::{Error, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct TickRow {
    tick: String,
}

impl Store {
    /// Takes `tick` of `schedule`; false when it was already taken.
    pub async fn claim_tick(&self, schedule: &str, tick: &str, at: &str) -> Result<bool, Error> {
        let insert = Query::insert()
            .into_table(ScheduleTicks::Table)
            .columns([
                ScheduleTicks::Tenant,
                ScheduleTicks::Schedule,
                ScheduleTicks::Tick,
                ScheduleTicks::TakenAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                schedule.into(),
                tick.into(),
                at.into(),
            ])
            .on_conflict(
                OnConflict::columns([
                    ScheduleTicks::Tenant,
                    ScheduleTicks::Schedule,
                    ScheduleTicks::Tick,
                ])
                .do_nothing()
                .to_owned(),
            )
            .to_owned();
        Ok(self.execute(&insert).await? == 1)
    }

    /// The latest tick taken of `schedule`.
    pub async fn last_tick(&self, schedule: &str) -> Result<Option<String>, Error> {
        let select = Query::select()
            .column(ScheduleTicks::Tick)
            .from(ScheduleTicks::Table)
            .and_where(Expr::col(ScheduleTicks::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(ScheduleTicks::Schedule).eq(schedule))
            .order_by(ScheduleTicks::Tick, Order::Desc)
            .limit(1)
            .to_owned();
        let rows: Vec<TickRow> = self.fetch(&select).await?;
        Ok(rows.into_iter().next().map(|row| row.tick))
    }
}
