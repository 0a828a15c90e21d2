//! Requests served in their token's tenant. `auth` finds whose token a request carries and
//! puts that tenant's state into the request; handlers take [`Scoped`] instead of
//! `State<AppState>`, so their executor and store (and through them every read and write) are
//! that tenant's. Another tenant's rows are then simply not there: its run, flight or
//! secret answers the same 404 as one that does not exist.
//!
//! The server's own tenant (its store's) is served by the state itself; another tenant's
//! state shares everything but the executor, whose store is the one
//! `Store::for_tenant` gives. Tenants are never removed, so each one's executor is made once
//! and kept.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use murmur_engine::executor::Executor;

use super::AppState;
use super::error::ApiError;

/// The state of the request's tenant, put there by `auth`.
pub struct Scoped(pub AppState);

/// The request extension `auth` leaves for [`Scoped`].
#[derive(Clone)]
pub(crate) struct TenantState(pub AppState);

impl FromRequestParts<AppState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<TenantState>() {
            Some(TenantState(state)) => Ok(Scoped(state.clone())),
            // A route registered outside `auth`: refuse rather than serve some tenant.
            None => Err(ApiError::internal("a tenant-scoped handler without auth")),
        }
    }
}

/// The executors of tenants other than the server's own, made on first use.
#[derive(Default)]
pub(crate) struct Executors {
    by_tenant: Mutex<HashMap<String, Arc<Executor>>>,
}

impl Executors {
    fn get(&self, tenant: &str) -> Option<Arc<Executor>> {
        let map = self
            .by_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(tenant).cloned()
    }

    fn keep(&self, tenant: &str, executor: Arc<Executor>) -> Arc<Executor> {
        let mut map = self
            .by_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(tenant.to_owned()).or_insert(executor).clone()
    }
}

/// The server's executor for another tenant's `store`: all its settings but the developer's
/// profile (`murmur setup`), which holds the server's own tenant's keys.
pub(crate) fn executor_of(server: &Executor, store: murmur_engine::Store) -> Executor {
    let mut executor = Executor {
        store,
        ..server.clone()
    };
    executor.environment.profile = None;
    executor
}

impl AppState {
    /// This server's state for `tenant`; 401 when no such tenant exists (a token's tenant
    /// always does, so only a session older than its tenant's data could see it).
    pub async fn for_tenant(&self, tenant: &str) -> Result<AppState, ApiError> {
        if tenant == self.own_tenant() {
            return Ok(self.with_scope(None));
        }
        if let Some(executor) = self.inner.tenants.get(tenant) {
            return Ok(self.with_scope(Some(executor)));
        }
        let Some(store) = self.inner.executor.store.for_tenant(tenant).await? else {
            return Err(ApiError::unauthorized());
        };
        let executor = Arc::new(executor_of(&self.inner.executor, store));
        let executor = self.inner.tenants.keep(tenant, executor);
        Ok(self.with_scope(Some(executor)))
    }

    /// The server's own tenant: its store's, whose machines serve every tenant.
    pub(crate) fn own_tenant(&self) -> &str {
        self.inner.executor.store.tenant()
    }

    fn with_scope(&self, scope: Option<Arc<Executor>>) -> AppState {
        AppState {
            inner: self.inner.clone(),
            scope,
        }
    }

    /// The repository's `.murmur/flights`, whose files are flights of the server's own
    /// tenant only; `None` for a request of another tenant, which sees its catalog alone.
    pub(crate) fn flights_dir(&self) -> Option<PathBuf> {
        self.scope
            .is_none()
            .then(|| self.inner.repository.join(".murmur/flights"))
    }
}
