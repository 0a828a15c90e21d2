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
    /// The driver's lease (read only where the status is shown; see [`Self::shown_status`]).
    #[serde(skip)]
    #[sqlx(default)]
    pub lease_owner: Option<String>,
    #[serde(skip)]
    #[sqlx(default)]
    pub lease_holder: Option<String>,
    #[serde(skip)]
    #[sqlx(default)]
    pub lease_epoch: i64,
    #[serde(skip)]
    #[sqlx(default)]
    pub lease_expires_at: Option<String>,
}

impl RunRow {
    /// The status people see at `now`: an unfinished run whose driver is gone (or let it
    /// go) is `interrupted` until a process takes it over.
    pub fn shown_status(&self, now: &str) -> &str {
        let unfinished = crate::state::RunStatus::parse(&self.status)
            .is_some_and(|status| !status.is_terminal());
        let lease = crate::lease::Lease {
            owner: self.lease_owner.clone(),
            holder: self
                .lease_holder
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            epoch: self.lease_epoch,
            acquired_at: None,
            expires_at: self.lease_expires_at.clone(),
        };
        if unfinished && lease.is_abandoned(now) {
            "interrupted"
        } else {
            &self.status
        }
    }
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
    /// The machine of the latest attempt.
    #[sqlx(default)]
    pub machine: Option<String>,
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
