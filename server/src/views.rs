//! The JSON of runs and catalog flights, one definition for the CLI's `--json` and the HTTP
//! API (surface.md).

use murmur_engine::store::{AgentRow, FlightGeneration, RunRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A run in lists.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub flight: String,
    #[schema(value_type = RunStatusName)]
    pub status: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// A run's status (surface.md).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatusName {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
    /// Unfinished, and nobody drives it: its driver died or let it go; any server (or
    /// `murmur runs resume`) takes it over.
    Interrupted,
}

/// A run with its inputs, digest and agents.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The resolved inputs, by name.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// SHA-256 of the flight text the run is pinned to.
    pub digest: String,
    pub agents: Vec<AgentView>,
}

/// One agent of a run: its state, attempts and what it delivered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub slug: String,
    /// `pending`, `queued`, `running`, `completed`, `failed`, `canceled`, `skipped`, ...
    pub state: String,
    pub attempts: i64,
    pub branch: Option<String>,
    pub commits: i64,
    pub diff_stat: Option<String>,
    pub response: Option<String>,
    pub error: Option<String>,
    /// Links of the pull requests the agent opened.
    pub prs: Vec<String>,
    pub cost_usd: Option<f64>,
    pub turns: Option<i64>,
    pub session_id: Option<String>,
    /// The machine that ran the agent's latest attempt.
    pub machine: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The agent that spawned this agent's run, as `RUN/SLUG` (see [`with_children`]).
    #[serde(default)]
    pub parent: Option<String>,
}

/// Now, in the store's timestamp form: leases are judged against it.
pub fn now_stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn run_summary(run: &RunRow) -> RunSummary {
    RunSummary {
        id: run.id.clone(),
        flight: run.flight.clone(),
        status: run.shown_status(&now_stamp()).to_owned(),
        created_at: run.created_at.clone(),
        finished_at: run.finished_at.clone(),
    }
}

pub fn run_detail(run: &RunRow, agents: &[AgentRow]) -> RunDetail {
    RunDetail {
        summary: run_summary(run),
        inputs: serde_json::from_str(&run.inputs).unwrap_or_else(|_| json!({})),
        digest: run.digest.clone(),
        agents: self::agents(agents),
    }
}

pub fn agents(agents: &[AgentRow]) -> Vec<AgentView> {
    agents.iter().map(agent).collect()
}

fn agent(agent: &AgentRow) -> AgentView {
    AgentView {
        slug: agent.slug.clone(),
        state: agent.state.clone(),
        attempts: agent.attempts,
        branch: agent.branch.clone(),
        commits: agent.commits,
        diff_stat: agent.diff_stat.clone(),
        response: agent.response.clone(),
        error: agent.error.clone(),
        prs: serde_json::from_str(&agent.prs).unwrap_or_default(),
        cost_usd: agent.cost_usd,
        turns: agent.turns,
        session_id: agent.session_id.clone(),
        machine: agent.machine.clone(),
        started_at: agent.started_at.clone(),
        finished_at: agent.finished_at.clone(),
        parent: None,
    }
}

/// `detail` with what agents spawned: each agent's `parent` when an agent spawned the run,
/// and the cost of every agent's children (and theirs) added to its `cost_usd`.
pub async fn with_children(
    store: &murmur_engine::Store,
    mut detail: RunDetail,
) -> Result<RunDetail, murmur_engine::store::Error> {
    let run = detail.summary.id.clone();
    let parent = store
        .spawned_as(&run)
        .await?
        .map(|spawn| format!("{}/{}", spawn.parent_run, spawn.parent_slug));
    for agent in &mut detail.agents {
        agent.parent.clone_from(&parent);
        let parent = murmur_engine::store::children::Parent {
            run: &run,
            slug: &agent.slug,
        };
        let mut children_cost = 0.0;
        for child in store.children(&parent).await? {
            children_cost += Box::pin(run_cost(store, &child.run_id)).await?;
        }
        if children_cost > 0.0 {
            agent.cost_usd = Some(agent.cost_usd.unwrap_or(0.0) + children_cost);
        }
    }
    Ok(detail)
}

/// What a run's agents cost, with everything they spawned.
async fn run_cost(
    store: &murmur_engine::Store,
    run: &str,
) -> Result<f64, murmur_engine::store::Error> {
    let mut cost: f64 = store
        .agents(run)
        .await?
        .iter()
        .filter_map(|a| a.cost_usd)
        .sum();
    for child in store.children_of_run(run).await? {
        cost += Box::pin(run_cost(store, &child.run_id)).await?;
    }
    Ok(cost)
}

/// `PUT /v1/flights/{name}`'s answer: the generation just stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SavedFlight {
    pub name: String,
    pub generation: i64,
    pub digest: String,
    pub author: String,
    pub created_at: String,
}

/// Where a listed flight comes from: the catalog wins over a repository file of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlightOrigin {
    Catalog,
    Repository,
}

/// A flight as `GET /v1/flights` lists it. `generation`, `author` and `created_at` are null
/// for a repository file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// Percent-encodes all but the unreserved characters of RFC 3986, for a query parameter.
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
