//! `murmur serve`: the HTTP API with the executor running inside it. Runs started over HTTP
//! execute in this process, driven by its supervisor; runs nobody drives are taken over.

mod access_log;
pub mod agent_api;
mod api;
mod approve;
mod auth;
mod body;
mod catalog;
mod cron;
mod dashboard;
mod error;
mod events;
mod failover;
mod flights;
pub mod limit;
mod listen;
pub mod machines;
mod metrics;
mod openapi;
mod parsed;
pub mod pools;
mod runs;
mod secrets;
mod start;
mod supervisor;
mod tenant;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_approve;
#[cfg(test)]
mod tests_cancel;
#[cfg(test)]
mod tests_catalog;
#[cfg(test)]
mod tests_claims;
#[cfg(test)]
mod tests_listing;
#[cfg(test)]
mod tests_machines;
#[cfg(test)]
mod tests_metrics;
#[cfg(test)]
mod tests_openapi;
#[cfg(test)]
mod tests_secrets;
#[cfg(test)]
mod tests_start;
#[cfg(test)]
mod tests_tenants;
#[cfg(test)]
mod tests_triggers;
#[cfg(test)]
mod tests_workspace_cron;
pub mod views;
mod webhooks;
mod workers;
mod workspace_flights;
mod workspaces;

use std::path::PathBuf;
use std::sync::Arc;

use murmur_engine::executor::{self, Executor, PreparedRun};
use murmur_engine::store::claims::{Claim, Claimed};

pub use api::router;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// Another tenant's executor, for a request of that tenant (`tenant`); `None` serves the
    /// server's own.
    scope: Option<Arc<Executor>>,
}

struct Inner {
    executor: Executor,
    repository: PathBuf,
    /// Owns driving: every run this process drives is handed to it.
    supervisor: supervisor::Supervisor,
    http: metrics::HttpMetrics,
    /// `MURMUR_GITHUB_WEBHOOK_SECRET`: without it every webhook delivery is refused.
    webhook_secret: Option<String>,
    limiter: limit::Limiter,
    /// The pools of `pools:` in `.murmur/murmur.yaml`, set once by [`serve`]; `local` is shown
    /// whether or not it is configured.
    pools: std::sync::OnceLock<Vec<murmur_engine::machine::PoolSpec>>,
    /// Flights parsed once per catalog generation or file text.
    parsed: parsed::Cache,
    /// The dashboard's logged-in browsers.
    dashboard: dashboard::Sessions,
    /// The `workers` pools' dispatch: attempts waiting for a worker, and those assigned.
    workers: workers::Workers,
    /// Executors of the other tenants requests came for.
    tenants: tenant::Executors,
}

impl AppState {
    /// A server with the default rate limit, as tests build them.
    #[cfg(test)]
    pub fn new(executor: Executor, repository: PathBuf, webhook_secret: Option<String>) -> Self {
        Self::with_rate(executor, repository, webhook_secret, limit::Rate::default())
    }

    /// A server whose tokens are limited to `rate`.
    pub fn with_rate(
        executor: Executor,
        repository: PathBuf,
        webhook_secret: Option<String>,
        rate: limit::Rate,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                supervisor: supervisor::Supervisor::start(executor.clone()),
                executor,
                repository,
                http: metrics::HttpMetrics::default(),
                webhook_secret,
                limiter: limit::Limiter::new(rate),
                pools: std::sync::OnceLock::new(),
                parsed: parsed::Cache::default(),
                dashboard: dashboard::Sessions::default(),
                workers: workers::Workers::default(),
                tenants: tenant::Executors::default(),
            }),
            scope: None,
        }
    }

    pub fn executor(&self) -> &Executor {
        self.scope.as_deref().unwrap_or(&self.inner.executor)
    }

    fn store(&self) -> &murmur_engine::Store {
        &self.executor().store
    }

    fn workers(&self) -> &workers::Workers {
        &self.inner.workers
    }

    /// Shows `pools` (those of `pools:`) in `GET /v1/pools` and `/metrics`; the first call wins.
    pub fn show_pools(&self, pools: Vec<murmur_engine::machine::PoolSpec>) {
        let _ = self.inner.pools.set(pools);
    }

    /// The pools this server shows: `local` first, then the configured ones.
    fn pools(&self) -> Vec<murmur_engine::machine::PoolSpec> {
        let configured = self.inner.pools.get().map_or(&[][..], Vec::as_slice);
        machines::with_local(configured, self.inner.executor.slots)
    }

    /// Hands a committed run to the supervisor, which drives it until it ends.
    pub fn hand_off(&self, handoff: supervisor::Handoff) {
        self.inner.supervisor.drive(handoff);
    }

    /// Records new runs under their claim (all or nothing) and, when the claim is won (or
    /// there is none), hands every run to the supervisor.
    async fn start_runs(
        &self,
        claim: Option<Claim<'_>>,
        runs: &[PreparedRun],
        trigger: supervisor::Trigger,
    ) -> Result<Claimed, executor::Error> {
        let claimed = self.executor().create_claimed(claim, runs).await?;
        if claimed == Claimed::Won {
            let tenant = self.store().tenant();
            for run in runs {
                self.hand_off(supervisor::Handoff {
                    run_id: run.id.clone(),
                    flight: Some(run.flight.clone()),
                    trigger,
                    tenant: self.scope.as_ref().map(|e| e.store.clone()),
                    created: Some(Box::new(run.created_row(tenant))),
                });
            }
        }
        Ok(claimed)
    }

    /// Drives a run found without a driver, or asked to run again.
    pub fn drive(&self, run_id: String) {
        self.hand_off(supervisor::Handoff {
            run_id,
            flight: None,
            trigger: supervisor::Trigger::Resume,
            tenant: self.scope.as_ref().map(|e| e.store.clone()),
            created: None,
        });
    }

    /// Whether this process drives the run (or is about to).
    fn drives(&self, run_id: &str) -> bool {
        self.inner.supervisor.drives(run_id)
    }

    /// Asks the driver of `run_id` to cancel; false when this process does not drive it.
    fn cancel_driven(&self, run_id: &str) -> bool {
        self.inner.supervisor.cancel(run_id)
    }

    /// Whether this server drives runs: its supervisor runs.
    fn drives_runs(&self) -> bool {
        self.inner.supervisor.drives_runs()
    }
}

/// How `murmur serve` was asked to run.
pub struct ServeOptions {
    pub executor: Executor,
    /// The repository whose flights the server runs.
    pub repository: PathBuf,
    pub bind: String,
    /// `MURMUR_GITHUB_WEBHOOK_SECRET`; without it the webhook route refuses every delivery.
    pub webhook_secret: Option<String>,
    /// `server.rate_limit` as `(per_second, burst)`.
    pub rate_limit: (u32, u32),
    /// The pools of `pools:` in `.murmur/murmur.yaml`, for `GET /v1/pools`.
    pub pools: Vec<murmur_engine::machine::PoolSpec>,
    /// The cloud pools among them, with their providers: the pool manager keeps their VMs.
    pub cloud: Vec<pools::CloudPool>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {bind}: {source} (is another server using that address?)")]
    Listen {
        bind: String,
        source: std::io::Error,
    },
}

/// Serves until Ctrl-C; interrupted runs are resumed first.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let (per_second, burst) = options.rate_limit;
    let rate = limit::Rate::new(per_second, burst);
    let bind = options.bind;
    let listen_error = |source| ServeError::Listen {
        bind: bind.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(listen_error)?;
    let address = listener.local_addr().map_err(listen_error)?;
    // Agents of this server call back here (`murmur spawn`, `murmur mcp`).
    let (executor, issuer) = agent_api::for_server(options.executor, address);
    let state = AppState::with_rate(executor, options.repository, options.webhook_secret, rate);
    workers::start(&state, &options.pools);
    pools::start(&state, options.cloud);
    state.show_pools(options.pools);
    tokio::spawn(failover::take_over(state.clone()));
    tokio::spawn(cron::keep_time(state.clone(), state.executor().clock.now()));
    // Tests and scripts find the address in this line: keep it last on the line.
    tracing::info!("listening on http://{address}");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let agents = agent_api::on_server(&state, issuer);
    listen::serve_until(listener, router(state).merge(agents), ctrl_c).await;
    Ok(())
}
