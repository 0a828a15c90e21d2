//! The typed flight: what a valid document means, independent of how it was written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::triggers::Triggers;

/// A parsed flight. Present whenever the document could be read at all, even with errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flight {
    /// The H1 text; the file name when the H1 is missing.
    pub title: String,
    /// The workspace from the frontmatter; `None` means the repository the flight lives in.
    pub workspace: Option<String>,
    /// Prose before the first agent section: shown to every agent.
    pub notes: String,
    pub frontmatter: Frontmatter,
    /// Agent sections in document order. Empty for a zero-agent flight.
    pub agents: Vec<Agent>,
}

impl Flight {
    pub fn agent(&self, slug: &str) -> Option<&Agent> {
        self.agents.iter().find(|agent| agent.slug == slug)
    }

    pub fn is_zero_agent(&self) -> bool {
        self.agents.is_empty()
    }
}

/// Frontmatter with every default filled in, so consumers never re-derive them; only `pool`
/// stays `None` when the flight names none, since a workspace's default pool may fill it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontmatter {
    pub workspace: Option<String>,
    pub on: Triggers,
    pub max_concurrent: u32,
    pub persona: String,
    pub model: Option<String>,
    pub out: Option<String>,
    pub dequeue_strategy: DequeueStrategy,
    pub daemon: bool,
    pub service_profile: Option<String>,
    pub idle_timeout: Duration,
    pub on_idle: OnIdle,
    pub tags: Vec<String>,
    pub inputs: BTreeMap<String, InputSpec>,
    pub runtime: Runtime,
    pub timeout: Option<Duration>,
    pub retries: u32,
    /// The pool the flight names; `None` runs on a workspace's default pool, else on
    /// [`DEFAULT_POOL`] (see [`Frontmatter::pool`]).
    pub pool: Option<String>,
}

/// The pool of a flight that names none, outside a workspace that has a default: slots on
/// this host.
pub const DEFAULT_POOL: &str = "local";

impl Frontmatter {
    /// The pool the flight's agents run on unless they name one, outside a workspace.
    pub fn pool(&self) -> &str {
        self.pool.as_deref().unwrap_or(DEFAULT_POOL)
    }
}

impl Default for Frontmatter {
    fn default() -> Self {
        Self {
            workspace: None,
            on: Triggers::default(),
            max_concurrent: 0,
            persona: "programmer".to_owned(),
            model: None,
            out: None,
            dequeue_strategy: DequeueStrategy::All,
            daemon: false,
            service_profile: None,
            idle_timeout: Duration::from_secs(30 * 60),
            on_idle: OnIdle::Sleep,
            tags: Vec::new(),
            inputs: BTreeMap::new(),
            runtime: Runtime::Claude,
            timeout: None,
            retries: 0,
            pool: None,
        }
    }
}

/// A named run input (`inputs:` in the frontmatter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    pub description: Option<String>,
    pub default: Option<String>,
    pub required: bool,
}

/// One agent section. Optional fields are exactly what the section said; defaults live in
/// the frontmatter and are applied by whoever runs the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub slug: String,
    pub persona: Option<String>,
    pub model: Option<String>,
    pub needs: Vec<String>,
    pub continues: Option<String>,
    pub gate: Vec<Gate>,
    pub branch: Option<String>,
    /// The fan-out source as written; see [`crate::FanOut`] for its meaning.
    pub each: Option<String>,
    pub out: Option<String>,
    pub runtime: Option<Runtime>,
    pub command: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub pool: Option<String>,
    pub idle_timeout: Option<Duration>,
    pub prompt: String,
    /// Line of the section's H2 heading.
    pub line: usize,
}

impl Agent {
    pub fn new(slug: impl Into<String>, line: usize) -> Self {
        Self {
            slug: slug.into(),
            persona: None,
            model: None,
            needs: Vec::new(),
            continues: None,
            gate: Vec::new(),
            branch: None,
            each: None,
            out: None,
            runtime: None,
            command: None,
            timeout: None,
            retries: None,
            pool: None,
            idle_timeout: None,
            prompt: String::new(),
            line,
        }
    }

    /// Agents this one waits for: its `needs`, or the agent it `continues`.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.needs
            .iter()
            .map(String::as_str)
            .chain(self.continues.as_deref())
    }

    pub fn fan_out(&self) -> Option<crate::FanOut> {
        self.each.as_deref().map(crate::FanOut::parse)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    Ci,
    Review,
    Approve,
    Merge,
}

impl Gate {
    pub const ALL: [(&'static str, Gate); 4] = [
        ("ci", Gate::Ci),
        ("review", Gate::Review),
        ("approve", Gate::Approve),
        ("merge", Gate::Merge),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Claude,
    Codex,
    Exec,
}

impl Runtime {
    pub const ALL: [(&'static str, Runtime); 3] = [
        ("claude", Runtime::Claude),
        ("codex", Runtime::Codex),
        ("exec", Runtime::Exec),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DequeueStrategy {
    Auto,
    All,
    One,
    Five,
}

impl DequeueStrategy {
    pub const ALL: [(&'static str, DequeueStrategy); 4] = [
        ("auto", DequeueStrategy::Auto),
        ("all", DequeueStrategy::All),
        ("one", DequeueStrategy::One),
        ("five", DequeueStrategy::Five),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnIdle {
    Sleep,
    Terminate,
    TerminateWhenPrsResolved,
    KeepAlive,
}

impl OnIdle {
    pub const ALL: [(&'static str, OnIdle); 4] = [
        ("sleep", OnIdle::Sleep),
        ("terminate", OnIdle::Terminate),
        (
            "terminate-when-prs-resolved",
            OnIdle::TerminateWhenPrsResolved,
        ),
        ("keep-alive", OnIdle::KeepAlive),
    ];
}
