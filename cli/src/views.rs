//! The JSON of runs and catalog flights, one definition for the CLI's `--json` and the HTTP
//! API (surface.md).

use murmur_engine::store::{AgentRow, FlightGeneration, RunRow};
use serde::{Deserialize, Serialize};
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

/// `PUT /v1/flights/{name}`'s answer: the generation just stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedFlight {
    pub name: String,
    pub generation: i64,
    pub digest: String,
    pub author: String,
    pub created_at: String,
}

/// Where a listed flight comes from: the catalog wins over a repository file of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlightOrigin {
    Catalog,
    Repository,
}

/// A flight as `GET /v1/flights` lists it. `generation`, `author` and `created_at` are null
/// for a repository file.
#[derive(Debug, Serialize, Deserialize)]
pub struct FlightSummary {
    pub name: String,
    pub origin: FlightOrigin,
    pub title: String,
    pub agents: usize,
    pub digest: String,
    pub generation: Option<i64>,
    pub author: Option<String>,
    pub created_at: Option<String>,
}

/// `GET /v1/flights/{name}`: the summary and the Markdown text.
#[derive(Debug, Serialize, Deserialize)]
pub struct FlightText {
    #[serde(flatten)]
    pub summary: FlightSummary,
    pub markdown: String,
}

impl FlightSummary {
    /// `saved` is the catalog generation; `None` for a repository file.
    pub fn new(
        name: &str,
        flight: &murmur_parser::Flight,
        source: &str,
        saved: Option<&FlightGeneration>,
    ) -> Self {
        let origin = match saved {
            Some(_) => FlightOrigin::Catalog,
            None => FlightOrigin::Repository,
        };
        Self {
            name: name.to_owned(),
            origin,
            title: flight.title.clone(),
            agents: murmur_engine::executor::agent_count(flight),
            digest: murmur_engine::run::digest(source),
            generation: saved.map(|s| s.generation),
            author: saved.map(|s| s.author.clone()),
            created_at: saved.map(|s| s.created_at.clone()),
        }
    }
}

impl From<FlightGeneration> for SavedFlight {
    fn from(saved: FlightGeneration) -> Self {
        Self {
            name: saved.name,
            generation: saved.generation,
            digest: saved.digest,
            author: saved.author,
            created_at: saved.created_at,
        }
    }
}
