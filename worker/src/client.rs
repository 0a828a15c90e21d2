//! The worker's side of the protocol: one blocking `ureq` request per call, run off the async
//! threads. Refusals are read from the server's `{"error": {...}}` envelope.

use std::time::Duration;

use murmur_protocol::worker::{Acknowledged, Poll, Register, Registered, Updates, Work};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a request did not get its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server is down or the connection broke: try again later.
    #[error("cannot reach the server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// A wrong or revoked token or credential (401).
    #[error("the server refused the worker's credentials: {0}")]
    Unauthorized(String),
    /// The server understood and refused (403, 404, 409, …); trying again changes nothing.
    #[error("the server refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl Error {
    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            // A full pool or a busy store frees up; a wrong pool does not.
            Self::Refused { status, .. } => matches!(status, 409 | 429 | 500..=599),
            Self::Unauthorized(_) => false,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Longer than the longest long poll, so only a dead connection times out.
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: server.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The server's URL as this worker reaches it.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn register(&self, token: &str, register: &Register) -> Result<Registered, Error> {
        self.post("/v1/workers/register", token, register).await
    }

    pub async fn poll(&self, credential: &str, poll: &Poll) -> Result<Work, Error> {
        self.post("/v1/workers/poll", credential, poll).await
    }

    pub async fn updates(
        &self,
        credential: &str,
        updates: &Updates,
    ) -> Result<Acknowledged, Error> {
        self.post("/v1/workers/updates", credential, updates).await
    }

    async fn post<B, A>(&self, path: &str, bearer: &str, body: &B) -> Result<A, Error>
    where
        B: Serialize,
        A: DeserializeOwned + Send + 'static,
    {
        let body = serde_json::to_vec(body).map_err(|e| self.unreachable(e))?;
        let (client, path, bearer) = (self.clone(), path.to_owned(), bearer.to_owned());
        tokio::task::spawn_blocking(move || client.post_blocking(&path, &bearer, &body))
            .await
            .map_err(|e| self.unreachable(e))?
    }

    fn post_blocking<A: DeserializeOwned>(
        &self,
        path: &str,
        bearer: &str,
        body: &[u8],
    ) -> Result<A, Error> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {bearer}"))
            .header("Content-Type", "application/json")
            .send(body);
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("no message from the server")
                .to_owned();
            return Err(match status {
                401 => Error::Unauthorized(message),
                _ => Error::Refused { status, message },
            });
        }
        response
            .body_mut()
            .read_json()
            .map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> Error {
        Error::Unreachable {
            server: self.base.clone(),
            reason: reason.to_string(),
        }
    }
}
