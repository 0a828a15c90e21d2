//! One run's checkpoint as the writer writes it, inside the group's transaction (see
//! `writer`): the run's new version and status, its events, its agents and the machines they
//! hold, in a savepoint of its own so that one run's refusal (a version conflict, a fenced
//! lease, a full pool) leaves the rest of the group alone.

use sea_query::{Expr, ExprTrait, Query};

use super::backend::Tx;
use super::schema::{Events, Runs};
use super::statements::{agent_upserts, event_inserts};
use super::{AgentUpdate, Commit, Error};
use crate::event::Event;
use crate::state::RunStatus;

/// An owned [`Commit`], queued for the writer.
pub(super) struct Checkpoint {
    pub run_id: String,
    pub expected_version: i64,
    pub at: String,
    pub events: Vec<Event>,
    pub agents: Vec<AgentUpdate>,
    pub status: RunStatus,
    pub finished_at: Option<String>,
    pub fence: Option<i64>,
    pub machines: Option<super::MachineUse>,
    /// The run's tenant (set by the store): machine rows carry it.
    pub tenant: String,
}

impl From<&Commit<'_>> for Checkpoint {
    fn from(commit: &Commit<'_>) -> Self {
        Self {
            run_id: commit.run_id.to_owned(),
            expected_version: commit.expected_version,
            at: commit.at.to_owned(),
            events: commit.events.to_vec(),
            agents: commit.agents.to_vec(),
            status: commit.status,
            finished_at: commit.finished_at.map(str::to_owned),
            fence: commit.fence,
            machines: commit.machines.cloned(),
            tenant: String::new(),
        }
    }
}

/// One checkpoint in its savepoint: its new version, or why it was refused.
pub(super) async fn write(
    tx: &mut Tx,
    checkpoint: &Checkpoint,
) -> sqlx::Result<Result<i64, Error>> {
    tx.raw("SAVEPOINT checkpoint").await?;
    let refused = match write_one(tx, checkpoint).await? {
        Written::Version(version) => {
            tx.raw("RELEASE SAVEPOINT checkpoint").await?;
            return Ok(Ok(version));
        }
        Written::Refused => None,
        Written::PoolFull(full) => Some(full),
    };
    tx.raw("ROLLBACK TO SAVEPOINT checkpoint").await?;
    tx.raw("RELEASE SAVEPOINT checkpoint").await?;
    match (refused, &checkpoint.machines) {
        (Some(full), Some(machines)) => {
            wait_for(tx, checkpoint, machines, &full).await?;
            Ok(Err(Error::PoolFull { full }))
        }
        _ => Ok(Err(refusal(tx, checkpoint).await?)),
    }
}

/// Kept though the checkpoint is not: from now on younger runs let this one go first, in the
/// line of each pool that refused it.
async fn wait_for(
    tx: &mut Tx,
    checkpoint: &Checkpoint,
    machines: &super::MachineUse,
    full: &[super::FullPool],
) -> sqlx::Result<()> {
    let (tenant, run) = (&checkpoint.tenant, &checkpoint.run_id);
    for refused in full {
        let wants = machines
            .pools
            .iter()
            .find(|pool| pool.pool == refused.pool)
            .map_or(0, |pool| pool.hold.len());
        super::waiters::wait(tx, tenant, run, machines, &refused.pool, wants).await?;
    }
    Ok(())
}

/// What writing one checkpoint came to (inside its savepoint).
enum Written {
    Version(i64),
    /// The run is no longer at the expected version, or the lease moved on.
    Refused,
    /// Its new machine holders do not fit in these pools.
    PoolFull(Vec<super::FullPool>),
}

/// Writes one checkpoint: the run's new version and status, its events, its agents, and the
/// machines its agents hold.
async fn write_one(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Written> {
    let after = match checkpoint.fence {
        // The driver knows its run's exact version: anything else committed meanwhile is
        // someone else's act, which it must take in first.
        Some(_) => checkpoint.expected_version,
        None => match act_base(tx, checkpoint).await? {
            Some(version) => version,
            None => return Ok(Written::Refused),
        },
    };
    let new_version = after + checkpoint.events.len() as i64;
    let mut bump = Query::update()
        .table(Runs::Table)
        .value(Runs::Version, new_version)
        .value(Runs::Status, checkpoint.status.as_str())
        .value(Runs::FinishedAt, checkpoint.finished_at.clone())
        .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
        .and_where(Expr::col(Runs::Version).eq(after))
        .to_owned();
    if let Some(epoch) = checkpoint.fence {
        bump.and_where(Expr::col(Runs::LeaseEpoch).eq(epoch));
    }
    if tx.execute(&bump).await? != 1 {
        return Ok(Written::Refused);
    }
    let inserts =
        event_inserts(checkpoint, after).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    for insert in inserts {
        tx.execute(&insert).await?;
    }
    for upsert in agent_upserts(&checkpoint.run_id, &checkpoint.agents) {
        tx.execute(&upsert).await?;
    }
    if checkpoint.status.is_terminal() {
        super::waiters::stop_waiting(tx, &checkpoint.run_id, None).await?;
    }
    if let Some(machines) = &checkpoint.machines {
        let (tenant, run, at) = (&checkpoint.tenant, &checkpoint.run_id, &checkpoint.at);
        let full = super::machines::apply(tx, tenant, run, at, machines).await?;
        if !full.is_empty() {
            return Ok(Written::PoolFull(full));
        }
    }
    Ok(Written::Version(new_version))
}

/// Where an act recorded from outside the run's driver (an approval, a kill, a cancel) goes
/// in the log: after the run's current version, when everything committed since the version
/// the act was judged on is agents' output, which changes nothing an act depends on. So a
/// run printing lines fast does not make acts on it lose the race again and again. `None`
/// when something else was committed meanwhile (the act is judged again on it).
async fn act_base(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Option<i64>> {
    let select = Query::select()
        .column(Runs::Version)
        .from(Runs::Table)
        .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
        .to_owned();
    let versions: Vec<(i64,)> = tx.fetch_all(&select).await?;
    let Some(&(version,)) = versions.first() else {
        return Ok(None);
    };
    if version == checkpoint.expected_version {
        return Ok(Some(version));
    }
    if version < checkpoint.expected_version {
        return Ok(None);
    }
    let others = Query::select()
        .column(Events::Seq)
        .from(Events::Table)
        .and_where(Expr::col(Events::RunId).eq(checkpoint.run_id.as_str()))
        .and_where(Expr::col(Events::Seq).gt(checkpoint.expected_version))
        .and_where(Expr::col(Events::Kind).ne(OUTPUT_KIND))
        .limit(1)
        .to_owned();
    let found: Vec<(i64,)> = tx.fetch_all(&others).await?;
    Ok(found.is_empty().then_some(version))
}

/// The kind of the events that never conflict with an act: agents' output lines.
const OUTPUT_KIND: &str = "agent_output";

/// Why a checkpoint was refused: its driver's lease was taken over (fenced), or the run moved
/// on (another process committed first).
async fn refusal(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Error> {
    if let Some(fence) = checkpoint.fence {
        let select = Query::select()
            .column(Runs::LeaseEpoch)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
            .to_owned();
        let epochs: Vec<(i64,)> = tx.fetch_all(&select).await?;
        if epochs.first().is_some_and(|(epoch,)| *epoch != fence) {
            return Ok(Error::Fenced {
                run: checkpoint.run_id.clone(),
            });
        }
    }
    Ok(Error::Conflict {
        run: checkpoint.run_id.clone(),
        expected: checkpoint.expected_version,
    })
}
