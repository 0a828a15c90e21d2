//! The agent API: what an agent's own process calls (`murmur spawn`, `ls`, `status`, `wait`,
//! `kill`, `queue add` run inside an agent, and `murmur mcp`'s tools) with the credential its
//! attempt was given (`MURMUR_AGENT_TOKEN`, see `murmur_engine::identity`). Every route acts
//! for that one agent: it spawns the agent's children and reads and steers the agent's
//! subtree, nothing else.
//!
//! The local pool serves it on a loopback port for as long as a run is driven ([`loopback`]);
//! `murmur serve` serves it next to the API.

mod names;
mod spawn;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use murmur_engine::AgentState;
use murmur_engine::children::Limits;
use murmur_engine::executor::Executor;
use murmur_engine::identity::{Grant, Issuer};

use crate::error::ApiError;

/// Starts a child run's driver: the caller decides where runs are driven.
pub type Drive = Arc<dyn Fn(String) + Send + Sync>;

/// What the agent API's handlers share.
#[derive(Clone)]
pub struct AgentApi {
    executor: Executor,
    issuer: Issuer,
    limits: Limits,
    drive: Drive,
    /// Child runs this API has handed to `drive`: until its driver takes the lease, a run
    /// looks never driven, and driving it a second time would take the lease from the
    /// first driver and run its agents again.
    started: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl AgentApi {
    /// `executor` creates and reads runs; `issuer` checks tokens; `drive` starts a driver for
    /// a new child run (or one that may have lost its driver).
    pub fn new(executor: Executor, issuer: Issuer, limits: Limits, drive: Drive) -> Self {
        Self {
            executor,
            issuer,
            limits,
            drive,
            started: Arc::default(),
        }
    }

    /// Hands a new child run to its driver, once.
    fn start(&self, run_id: &str) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if started.insert(run_id.to_owned()) {
            (self.drive)(run_id.to_owned());
        }
    }

    /// Whether this API handed `run_id` to a driver already.
    fn started(&self, run_id: &str) -> bool {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(run_id)
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/agent/spawn", post(spawn::spawn))
            .route("/v1/agent/children", get(names::list))
            .route("/v1/agent/agents/{*name}", get(names::status))
            .route("/v1/agent/kill", post(names::kill))
            .route("/v1/agent/queue", post(names::queue_add))
            .with_state(self)
    }
}

/// The calling agent, proven by its token: an attempt that is still its agent's current one
/// and has not ended.
pub struct Caller(pub Grant);

impl FromRequestParts<AgentApi> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &AgentApi) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(refused)?;
        let grant = api.issuer.verify(token).map_err(|_| refused())?;
        let store = &api.executor.store;
        if grant.tenant != store.tenant() {
            return Err(refused());
        }
        let agent = store
            .agents(&grant.run)
            .await
            .map_err(|_| refused())?
            .into_iter()
            .find(|agent| agent.slug == grant.slug)
            .ok_or_else(refused)?;
        let ended = AgentState::parse(&agent.state).is_none_or(AgentState::is_terminal);
        if ended || agent.attempts != i64::from(grant.attempt) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "attempt_ended",
                "this agent token belongs to an attempt that has ended",
            ));
        }
        Ok(Caller(grant))
    }
}

fn refused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send the agent's MURMUR_AGENT_TOKEN as `Authorization: Bearer TOKEN`",
    )
}

/// The agent API of one process on a loopback port, served until it is dropped.
pub struct Loopback {
    pub issuer: Issuer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the agent API for `executor`'s runs on 127.0.0.1 (a port the system picks), with
/// child runs driven in this process. Returns the executor to drive with: it gives every
/// attempt its identity.
pub async fn loopback(
    executor: &Executor,
    limits: Limits,
) -> std::io::Result<(Executor, Loopback)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let issuer = Issuer::new(format!("http://{address}"));
    let mut driving = executor.clone();
    driving.identity = Some(issuer.clone());
    let drive: Drive = {
        let executor = driving.clone();
        Arc::new(move |run_id: String| {
            let executor = executor.clone();
            tokio::spawn(async move {
                let (observer, _events) = tokio::sync::mpsc::unbounded_channel();
                // A child someone else drives is left to them; its driver reports its end.
                if let Err(error) = executor.drive(&run_id, observer).await {
                    tracing::info!(run = %run_id, %error, "child run not driven here");
                }
            });
        })
    };
    let router = AgentApi::new(driving.clone(), issuer.clone(), limits, drive).router();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((
        driving,
        Loopback {
            issuer,
            stop: Some(stop),
        },
    ))
}

/// Under `murmur serve`: the executor that gives attempts an identity for the agent API at
/// `address` (the server's own listener; a wildcard address is reached on loopback, where
/// local-pool agents run).
pub fn for_server(mut executor: Executor, address: std::net::SocketAddr) -> (Executor, Issuer) {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let issuer = Issuer::new(format!(
        "http://{}",
        std::net::SocketAddr::new(host, address.port())
    ));
    executor.identity = Some(issuer.clone());
    (executor, issuer)
}

/// The agent API's routes next to the server's own: children are driven by its supervisor.
pub(crate) fn on_server(state: &crate::AppState, issuer: Issuer) -> Router {
    let drive: Drive = {
        let state = state.clone();
        Arc::new(move |run_id: String| state.drive(run_id))
    };
    AgentApi::new(state.executor().clone(), issuer, Limits::default(), drive).router()
}
