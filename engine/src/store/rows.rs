//! What the store hands back: plain rows, decoded the same way from either backend.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub tenant: String,
    pub flight: String,
    pub flight_path: Option<String>,
    #[serde(skip)]
    pub source: String,
    pub digest: String,
    pub inputs: String,
    pub status: String,
    pub version: i64,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The trigger's payload as JSON text, when a webhook started the run.
    #[serde(skip)]
    pub event: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AgentRow {
    pub run_id: String,
    pub slug: String,
    pub position: i64,
    pub state: String,
    pub attempts: i64,
    pub response: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub session_id: Option<String>,
    pub branch: Option<String>,
    pub commits: i64,
    pub diff_stat: Option<String>,
    /// A JSON array of pull request links.
    pub prs: String,
    pub cost_usd: Option<f64>,
    pub turns: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub run_id: String,
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub slug: Option<String>,
    pub data: String,
}
