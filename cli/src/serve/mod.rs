//! `murmur serve`: the HTTP API with the executor running inside it. Runs started over HTTP
//! execute in this process; on start, every interrupted run in the store is resumed.

mod api;
mod approve;
mod auth;
mod body;
mod catalog;
mod cron;
mod error;
mod events;
mod flights;
mod limit;
mod metrics;
mod openapi;
mod runs;
mod start;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_approve;
#[cfg(test)]
mod tests_cancel;
#[cfg(test)]
mod tests_catalog;
#[cfg(test)]
mod tests_metrics;
#[cfg(test)]
mod tests_openapi;
mod webhooks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use murmur_engine::executor::Executor;
use tokio::sync::{mpsc, oneshot};

pub use api::router;

use crate::Exit;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Executor,
    repository: PathBuf,
    /// Starts are serialised so that one Idempotency-Key can never create two runs.
    starting: tokio::sync::Mutex<()>,
    /// Cancel handles of the runs this process drives.
    cancels: Mutex<HashMap<String, oneshot::Sender<()>>>,
    http: metrics::HttpMetrics,
    /// `MURMUR_GITHUB_WEBHOOK_SECRET`: without it every webhook delivery is refused.
    webhook_secret: Option<String>,
    limiter: limit::Limiter,
}

impl AppState {
    pub fn new(executor: Executor, repository: PathBuf, webhook_secret: Option<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                executor,
                repository,
                starting: tokio::sync::Mutex::new(()),
                cancels: Mutex::new(HashMap::new()),
                http: metrics::HttpMetrics::default(),
                webhook_secret,
                limiter: limit::Limiter::new(limit::Rate::default()),
            }),
        }
    }

    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    fn store(&self) -> &murmur_engine::Store {
        &self.inner.executor.store
    }

    /// Drives the run in the background until it ends.
    pub fn drive(&self, run_id: String) {
        let (cancel, canceled) = oneshot::channel();
        self.cancels().insert(run_id.clone(), cancel);
        let state = self.clone();
        tokio::spawn(async move {
            let (observer, _) = mpsc::unbounded_channel();
            if let Err(error) = state
                .executor()
                .drive_until(&run_id, observer, canceled)
                .await
            {
                eprintln!("murmur serve: run {run_id} stopped: {error}");
            }
            state.cancels().remove(&run_id);
        });
    }

    /// Asks the driver of `run_id` to cancel; false when this process does not drive it.
    fn cancel_driven(&self, run_id: &str) -> bool {
        match self.cancels().remove(run_id) {
            Some(cancel) => cancel.send(()).is_ok(),
            None => false,
        }
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.inner
            .cancels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Serves until Ctrl-C; interrupted runs are resumed first.
pub async fn serve(executor: Executor, repository: PathBuf, bind: &str) -> anyhow::Result<Exit> {
    let secret = std::env::var("MURMUR_GITHUB_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let state = AppState::new(executor, repository, secret);
    for run in state.store().unfinished_runs().await? {
        eprintln!("murmur serve: resuming run {} of {}", run.id, run.flight);
        state.drive(run.id);
    }
    tokio::spawn(cron::keep_time(state.clone(), state.executor().clock.now()));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let address = listener.local_addr().context("no local address")?;
    eprintln!("murmur serve: listening on http://{address}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the server stopped")?;
    Ok(Exit::Success)
}
