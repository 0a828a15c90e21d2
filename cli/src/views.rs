//! The JSON of runs, one definition for `murmur runs … --json` and the HTTP API (surface.md).

use murmur_engine::store::{AgentRow, RunRow};
use serde_json::{Value, json};

/// A run in lists: `{"id", "flight", "status", "created_at", "finished_at"}`.
pub fn run_summary(run: &RunRow) -> Value {
    json!({"id": run.id, "flight": run.flight, "status": run.status, "created_at": run.created_at, "finished_at": run.finished_at})
}

/// A run with its inputs, digest and agents.
pub fn run_detail(run: &RunRow, agents: &[AgentRow]) -> Value {
    let inputs: Value = serde_json::from_str(&run.inputs).unwrap_or(Value::Null);
    json!({
        "id": run.id, "flight": run.flight, "status": run.status, "inputs": inputs, "digest": run.digest,
        "created_at": run.created_at, "finished_at": run.finished_at,
        "agents": agents.iter().map(agent).collect::<Vec<_>>(),
    })
}

fn agent(agent: &AgentRow) -> Value {
    let prs: Value = serde_json::from_str(&agent.prs).unwrap_or_else(|_| json!([]));
    json!({
        "slug": agent.slug, "state": agent.state, "attempts": agent.attempts,
        "branch": agent.branch, "commits": agent.commits, "diff_stat": agent.diff_stat,
        "response": agent.response, "error": agent.error, "prs": prs,
        "cost_usd": agent.cost_usd, "turns": agent.turns, "session_id": agent.session_id,
        "started_at": agent.started_at, "finished_at": agent.finished_at,
    })
}
