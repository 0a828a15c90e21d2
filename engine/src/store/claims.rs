//! Claims: an Idempotency-Key, a webhook delivery or a schedule tick starts its runs exactly
//! once, however many concurrent requests or servers see it. The claim is an insert that a
//! primary key decides, made first in the very transaction that creates the claim's runs. So a
//! claim is never seen without its runs, and a claimant that dies before its commit leaves
//! nothing behind (the transaction rolls back): no claim can block the next try forever.
//!
//! A concurrent claimant of the same key waits on the winner's uncommitted row (PostgreSQL's
//! unique index, SQLite's write lock) and then reads the winner's runs. On PostgreSQL the wait
//! is bounded by [`CLAIM_WAIT`]; past it the answer is [`Claimed::Pending`].

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::creation::{Created, Creation};
use super::schema::{Runs, ScheduleTicks};
use super::statements::{RUN_COLUMNS, agent_upserts};
use super::{AgentUpdate, Error, NewRun, Store};
use crate::state::RunStatus;

/// How long a claimant waits for a concurrent winner's commit (PostgreSQL's `lock_timeout`;
/// SQLite waits for its write lock as long as its busy timeout).
pub const CLAIM_WAIT: &str = "5s";
pub(super) const SET_CLAIM_WAIT: &str = "SET LOCAL lock_timeout = '5s'";
/// PostgreSQL's `lock_not_available`: the lock timeout ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

#[derive(sea_query::Iden, Clone, Copy)]
enum Claims {
    Table,
    Tenant,
    Key,
    CreatedAt,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum ClaimedRuns {
    Table,
    Tenant,
    Key,
    Position,
    RunId,
    Flight,
}

/// What a set of new runs is claimed by.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    /// An Idempotency-Key or a webhook delivery, named so the two can never collide (see
    /// [`idempotency_key`] and [`delivery_key`]).
    Key(&'a str),
    /// One tick of a flight's schedule.
    Tick { schedule: &'a str, tick: &'a str },
}

/// The claim name of an `Idempotency-Key`.
pub fn idempotency_key(key: &str) -> String {
    format!("idempotency-key:{key}")
}

/// The claim name of a GitHub delivery (`X-GitHub-Delivery`).
pub fn delivery_key(delivery: &str) -> String {
    format!("github-delivery:{delivery}")
}

/// A run a claim started.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedRun {
    pub run_id: String,
    pub flight: String,
}

/// The outcome of claiming and creating runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This call took the claim; its runs are committed.
    Won,
    /// Someone took the claim first: the runs it started (none for a tick taken before ticks
    /// named their run). Nothing of this call was kept.
    Lost(Vec<ClaimedRun>),
    /// Another claimant holds the claim and did not commit within [`CLAIM_WAIT`]. Nothing of
    /// this call was kept; asking again later finds the winner's runs or takes the claim.
    Pending,
}

#[derive(sqlx::FromRow)]
struct ClaimKey {
    key: String,
}

#[derive(sqlx::FromRow)]
struct TickRun {
    run_id: Option<String>,
}

impl Store {
    /// Creates `runs` (queued, agents pending) in one transaction, after taking `claim` first
    /// when there is one. `at` is when the claim was taken. Written by the store's writer
    /// with whatever else is queued, so concurrent starts share one commit.
    pub async fn create_runs(
        &self,
        claim: Option<Claim<'_>>,
        runs: &[NewRun<'_>],
        at: &str,
    ) -> Result<Claimed, Error> {
        let first = runs.first().map(|run| run.id);
        let mut inserts: Vec<_> = runs.iter().flat_map(|run| self.run_inserts(run)).collect();
        if let Some(Claim::Key(key)) = claim
            && !runs.is_empty()
        {
            inserts.push(self.claimed_runs_insert(key, runs));
        }
        let creation = Creation {
            claim: claim.map(|claim| self.claim_insert(claim, first, at)),
            inserts,
        };
        match (self.writer.create(creation).await?, claim) {
            (Created::Won, _) => Ok(Claimed::Won),
            (Created::Pending, _) => Ok(Claimed::Pending),
            (Created::Lost, Some(claim)) => self.claim_winner(claim).await.map(Claimed::Lost),
            (Created::Lost, None) => Err(Error::NotWritten(
                "the writer lost a claim that was never made".to_owned(),
            )),
        }
    }

    /// The runs `key` started, when it was claimed.
    pub async fn claimed_runs(&self, key: &str) -> Result<Option<Vec<ClaimedRun>>, Error> {
        let claims = Query::select()
            .column(Claims::Key)
            .from(Claims::Table)
            .and_where(Expr::col(Claims::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Claims::Key).eq(key))
            .to_owned();
        let found: Vec<ClaimKey> = self.fetch(&claims).await?;
        if !found.iter().any(|row| row.key == key) {
            return Ok(None);
        }
        let runs = Query::select()
            .columns([ClaimedRuns::RunId, ClaimedRuns::Flight])
            .from(ClaimedRuns::Table)
            .and_where(Expr::col(ClaimedRuns::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(ClaimedRuns::Key).eq(key))
            .order_by(ClaimedRuns::Position, Order::Asc)
            .to_owned();
        Ok(Some(self.fetch(&runs).await?))
    }

    async fn claim_winner(&self, claim: Claim<'_>) -> Result<Vec<ClaimedRun>, Error> {
        match claim {
            Claim::Key(key) => Ok(self.claimed_runs(key).await?.unwrap_or_default()),
            Claim::Tick { schedule, tick } => {
                let select = Query::select()
                    .column(ScheduleTicks::RunId)
                    .from(ScheduleTicks::Table)
                    .and_where(Expr::col(ScheduleTicks::Tenant).eq(self.tenant.as_str()))
                    .and_where(Expr::col(ScheduleTicks::Schedule).eq(schedule))
                    .and_where(Expr::col(ScheduleTicks::Tick).eq(tick))
                    .to_owned();
                let rows: Vec<TickRun> = self.fetch(&select).await?;
                let mut runs = Vec::new();
                for run_id in rows.into_iter().filter_map(|row| row.run_id) {
                    let flight = self.run(&run_id).await?.flight;
                    runs.push(ClaimedRun { run_id, flight });
                }
                Ok(runs)
            }
        }
    }

    fn claim_insert(
        &self,
        claim: Claim<'_>,
        first_run: Option<&str>,
        at: &str,
    ) -> sea_query::InsertStatement {
        let tenant = self.tenant.as_str();
        match claim {
            Claim::Key(key) => Query::insert()
                .into_table(Claims::Table)
                .columns([Claims::Tenant, Claims::Key, Claims::CreatedAt])
                .values_panic([tenant.into(), key.into(), at.into()])
                .on_conflict(
                    OnConflict::columns([Claims::Tenant, Claims::Key])
                        .do_nothing()
                        .to_owned(),
                )
                .to_owned(),
            Claim::Tick { schedule, tick } => {
                super::ticks::tick_insert(tenant, schedule, tick, at, first_run)
            }
        }
    }

    fn claimed_runs_insert(&self, key: &str, runs: &[NewRun<'_>]) -> sea_query::InsertStatement {
        let mut insert = Query::insert()
            .into_table(ClaimedRuns::Table)
            .columns([
                ClaimedRuns::Tenant,
                ClaimedRuns::Key,
                ClaimedRuns::Position,
                ClaimedRuns::RunId,
                ClaimedRuns::Flight,
            ])
            .to_owned();
        for (position, run) in runs.iter().enumerate() {
            insert.values_panic([
                self.tenant.as_str().into(),
                key.into(),
                (position as i64).into(),
                run.id.into(),
                run.flight.into(),
            ]);
        }
        insert
    }

    /// The statements that record a new run; the same rows as [`Store::create_run`] writes.
    pub(super) fn run_inserts(&self, run: &NewRun<'_>) -> Vec<sea_query::InsertStatement> {
        let insert = Query::insert()
            .into_table(Runs::Table)
            .columns(RUN_COLUMNS)
            .values_panic([
                run.id.into(),
                self.tenant.as_str().into(),
                run.flight.into(),
                run.flight_path.map(str::to_owned).into(),
                run.source.into(),
                run.digest.into(),
                run.inputs.to_string().into(),
                RunStatus::Queued.as_str().into(),
                0i64.into(),
                run.created_at.into(),
                None::<String>.into(),
                run.event.map(|event| event.to_string()).into(),
            ])
            .to_owned();
        let pending: Vec<AgentUpdate> = run
            .agents
            .iter()
            .enumerate()
            .map(|(position, slug)| AgentUpdate::pending(slug, position))
            .collect();
        let mut statements = vec![insert];
        statements.extend(agent_upserts(run.id, &pending));
        statements
    }
}

pub(super) fn lock_not_available(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE))
}
