//! Schedule ticks taken: claiming a tick twice fails, so each fires once across restarts and
//! across servers sharing the store. A tick is normally claimed with its run (see
//! `Store::create_runs` with `Claim::Tick`), and then names that run.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::schema::ScheduleTicks;
use super::{Error, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct TickRow {
    tick: String,
}

/// The insert that takes a tick; it touches no row when the tick was already taken.
pub(super) fn tick_insert(
    tenant: &str,
    schedule: &str,
    tick: &str,
    at: &str,
    run_id: Option<&str>,
) -> sea_query::InsertStatement {
    Query::insert()
        .into_table(ScheduleTicks::Table)
        .columns([
            ScheduleTicks::Tenant,
            ScheduleTicks::Schedule,
            ScheduleTicks::Tick,
            ScheduleTicks::TakenAt,
            ScheduleTicks::RunId,
        ])
        .values_panic([
            tenant.into(),
            schedule.into(),
            tick.into(),
            at.into(),
            run_id.map(str::to_owned).into(),
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
        .to_owned()
}

impl Store {
    /// Takes `tick` of `schedule` without a run; false when it was already taken.
    pub async fn claim_tick(&self, schedule: &str, tick: &str, at: &str) -> Result<bool, Error> {
        let insert = tick_insert(self.tenant.as_str(), schedule, tick, at, None);
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
