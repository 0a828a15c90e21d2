//! The statements a commit is made of, built once with sea-query for either backend.

use sea_query::{OnConflict, Query};

use super::schema::{Agents, Events, Runs};
use super::{AgentUpdate, Error};

pub(super) const RUN_COLUMNS: [Runs; 12] = [
    Runs::Id,
    Runs::Tenant,
    Runs::Flight,
    Runs::FlightPath,
    Runs::Source,
    Runs::Digest,
    Runs::Inputs,
    Runs::Status,
    Runs::Version,
    Runs::CreatedAt,
    Runs::FinishedAt,
    Runs::Event,
];

/// What reads of runs select besides [`RUN_COLUMNS`]: the lease, for the status shown.
pub(super) const RUN_LEASE_COLUMNS: [Runs; 4] = [
    Runs::LeaseOwner,
    Runs::LeaseHolder,
    Runs::LeaseEpoch,
    Runs::LeaseExpiresAt,
];

/// Rows per multi-row statement: 6 columns × 500 rows stays far below SQLite's limit of
/// 32,766 bound variables (and PostgreSQL's 65,535), however large a checkpoint gets.
const ROWS_PER_STATEMENT: usize = 500;

/// The checkpoint's events, numbered on from `after` (the run's version before them).
pub(super) fn event_inserts(
    commit: &super::writer::Checkpoint,
    after: i64,
) -> Result<Vec<sea_query::InsertStatement>, Error> {
    let mut statements = Vec::new();
    for (chunk_index, chunk) in commit.events.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut insert = Query::insert()
            .into_table(Events::Table)
            .columns([
                Events::RunId,
                Events::Seq,
                Events::At,
                Events::Kind,
                Events::Slug,
                Events::Data,
            ])
            .to_owned();
        for (offset, event) in chunk.iter().enumerate() {
            let data = serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string()))?;
            let seq = after + 1 + (chunk_index * ROWS_PER_STATEMENT + offset) as i64;
            insert.values_panic([
                commit.run_id.as_str().into(),
                seq.into(),
                commit.at.as_str().into(),
                event.kind().into(),
                event.slug().map(str::to_owned).into(),
                data.into(),
            ]);
        }
        statements.push(insert);
    }
    Ok(statements)
}

/// Every column of `agents`, in the order rows are written and read; the first three name
/// the agent, the rest are its state.
pub(super) const AGENT_COLUMNS: [Agents; 17] = [
    Agents::RunId,
    Agents::Slug,
    Agents::Position,
    Agents::State,
    Agents::Attempts,
    Agents::Response,
    Agents::Error,
    Agents::StartedAt,
    Agents::FinishedAt,
    Agents::SessionId,
    Agents::Branch,
    Agents::Commits,
    Agents::DiffStat,
    Agents::Prs,
    Agents::CostUsd,
    Agents::Turns,
    Agents::Machine,
];

/// Writes agents' current state, many rows a statement (SQLite and PostgreSQL share the
/// `ON CONFLICT … DO UPDATE` form).
pub(super) fn agent_upserts(
    run_id: &str,
    agents: &[AgentUpdate],
) -> Vec<sea_query::InsertStatement> {
    let conflict = OnConflict::columns([Agents::RunId, Agents::Slug])
        .update_columns(AGENT_COLUMNS[3..].iter().copied())
        .to_owned();
    agents
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut upsert = Query::insert()
                .into_table(Agents::Table)
                .columns(AGENT_COLUMNS)
                .to_owned();
            for agent in chunk {
                upsert.values_panic([
                    run_id.into(),
                    agent.slug.as_str().into(),
                    (agent.position as i64).into(),
                    agent.state.as_str().into(),
                    i64::from(agent.attempts).into(),
                    agent.response.clone().into(),
                    agent.error.clone().into(),
                    agent.started_at.clone().into(),
                    agent.finished_at.clone().into(),
                    agent.session_id.clone().into(),
                    agent.delivered.branch.clone().into(),
                    i64::from(agent.delivered.commits).into(),
                    agent.delivered.diff_stat.clone().into(),
                    serde_json::to_string(&agent.delivered.prs)
                        .unwrap_or_else(|_| "[]".into())
                        .into(),
                    agent.delivered.cost_usd.into(),
                    agent.delivered.turns.map(i64::from).into(),
                    agent.machine.clone().into(),
                ]);
            }
            upsert.on_conflict(conflict.clone()).to_owned()
        })
        .collect()
}
