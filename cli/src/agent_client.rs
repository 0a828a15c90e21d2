//! The agent API as an agent's own process calls it (`murmur spawn`, `ls`, `status`, `wait`,
//! `kill`, `queue add` inside an agent, and `murmur mcp`): the address and the credential come
//! from the attempt's environment (`MURMUR_API_URL`, `MURMUR_AGENT_TOKEN`), never from the
//! command line.

use std::time::{Duration, Instant};

use murmur_engine::AgentState;
use murmur_engine::identity::{API_URL_VAR, TOKEN_VAR};
use serde_json::{Value, json};

/// How often `wait` asks for the child's state.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the agent API at {url}: {reason} (did the run's engine stop?)")]
    Unreachable { url: String, reason: String },
    #[error("the agent API's answer is not JSON: {0}")]
    Answer(String),
    #[error(
        "this command acts for an agent, and runs outside one: {TOKEN_VAR} is not set (agents of a run get it; outside, name runs with --run or RUN/SLUG)"
    )]
    NoIdentity,
}

/// The calling agent's connection to its API.
pub struct AgentClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl AgentClient {
    /// The caller's identity, when this process runs inside an agent.
    pub fn from_env() -> Option<Self> {
        let token = std::env::var(TOKEN_VAR)
            .ok()
            .filter(|t| !t.trim().is_empty())?;
        let base = std::env::var(API_URL_VAR)
            .ok()
            .filter(|u| !u.trim().is_empty())?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Some(Self {
            base: base.trim().trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            agent,
        })
    }

    /// As [`Self::from_env`], with the error that explains a missing identity.
    pub fn required() -> Result<Self, CallError> {
        Self::from_env().ok_or(CallError::NoIdentity)
    }

    pub fn spawn(&self, body: &Value) -> Result<Value, CallError> {
        self.post("/v1/agent/spawn", body)
    }

    pub fn children(&self) -> Result<Value, CallError> {
        self.get("/v1/agent/children")
    }

    pub fn status(&self, name: &str) -> Result<Value, CallError> {
        let path: String = name
            .split('/')
            .map(urlencoding)
            .collect::<Vec<_>>()
            .join("/");
        self.get(&format!("/v1/agent/agents/{path}"))
    }

    pub fn kill(&self, name: &str) -> Result<Value, CallError> {
        self.post("/v1/agent/kill", &json!({ "name": name }))
    }

    pub fn queue_add(&self, name: &str, text: &str) -> Result<Value, CallError> {
        self.post("/v1/agent/queue", &json!({ "name": name, "text": text }))
    }

    /// Asks for `name`'s state until it reaches `phase` (by default: until it ends) or
    /// `limit` runs out. Returns the last answer and how the wait ended.
    pub fn wait(
        &self,
        name: &str,
        phase: Option<AgentState>,
        limit: Option<Duration>,
    ) -> Result<(Value, Waited), CallError> {
        let started = Instant::now();
        loop {
            let answer = self.status(name)?;
            let state = answer["state"].as_str().and_then(AgentState::parse);
            if phase.is_some() && state == phase {
                return Ok((answer, Waited::Reached));
            }
            if let Some(state) = state.filter(|s| s.is_terminal()) {
                let reached = phase.is_none() && state == AgentState::Completed;
                let waited = if reached {
                    Waited::Reached
                } else {
                    Waited::Ended
                };
                return Ok((answer, waited));
            }
            if limit.is_some_and(|limit| started.elapsed() >= limit) {
                return Ok((answer, Waited::TimedOut));
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    fn get(&self, path: &str) -> Result<Value, CallError> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(response)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.answer(response)
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CallError> {
        let mut response = response.map_err(|error| CallError::Unreachable {
            url: self.base.clone(),
            reason: error.to_string(),
        })?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|error| CallError::Answer(error.to_string()))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let error = &body["error"];
        Err(CallError::Refused {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("the agent API refused the call")
                .to_owned(),
        })
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The phase asked for (by default: completed).
    Reached,
    /// The agent ended otherwise.
    Ended,
    TimedOut,
}

/// A path segment with everything but unreserved characters percent-encoded.
fn urlencoding(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
