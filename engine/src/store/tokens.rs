//! API tokens looked up for every request, through a short-lived cache: a server answering
//! thousands of requests a second must not ask the database who each one is.
//!
//! Revocation is honoured at once by the store that revokes (its cache forgets the name
//! before the revoke returns, and a lookup that was in flight across the revoke keeps
//! nothing), and by every other process sharing the database within [`TOKEN_CACHE_TTL`]: no
//! token is believed longer than that without asking the database again. Unknown tokens are
//! never cached, so a new token works at once and guessing fills no memory.
//!
//! A token names its tenant: [`Store::caller`] finds it in any tenant (what the HTTP server
//! does before it scopes the request to that tenant); [`Store::authenticate`] only in the
//! store's own.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_query::{Expr, ExprTrait, Query};
use tokio::time::Instant;

use super::schema::ApiTokens;
use super::server::token_hash;
use super::{Error, Store};

/// Who a token is: its tenant and its name there.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Caller {
    pub tenant: String,
    pub name: String,
}

/// How long a looked-up token is believed without asking the database again: the longest a
/// token revoked by another process keeps working here.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

/// Past this many entries, expired ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 4_096;

/// Names of recently looked-up tokens, by token hash.
#[derive(Debug, Default)]
pub(super) struct Cache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_hash: HashMap<String, Entry>,
    /// Bumped by every revocation: a lookup that began before one keeps nothing.
    revocations: u64,
}

#[derive(Debug)]
struct Entry {
    caller: Caller,
    checked: Instant,
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The name of a token checked less than [`TOKEN_CACHE_TTL`] ago, and the revocation
    /// count to hand back to [`Self::keep`] otherwise.
    fn fresh(&self, hash: &str, now: Instant) -> Result<Caller, u64> {
        let entries = self.lock();
        match entries.by_hash.get(hash) {
            Some(entry) if now.duration_since(entry.checked) < TOKEN_CACHE_TTL => {
                Ok(entry.caller.clone())
            }
            _ => Err(entries.revocations),
        }
    }

    /// Keeps what the database said at `checked`, unless a revocation came in between.
    fn keep(&self, hash: String, caller: &Caller, checked: Instant, revocations: u64) {
        let mut entries = self.lock();
        if entries.revocations != revocations {
            return;
        }
        if entries.by_hash.len() >= PRUNE_ABOVE {
            let now = Instant::now();
            entries
                .by_hash
                .retain(|_, e| now.duration_since(e.checked) < TOKEN_CACHE_TTL);
        }
        let caller = caller.clone();
        entries.by_hash.insert(hash, Entry { caller, checked });
    }

    /// Forgets every tenant's tokens named `name`: forgetting too many only costs a lookup.
    fn forget(&self, name: &str) {
        let mut entries = self.lock();
        entries.revocations += 1;
        entries.by_hash.retain(|_, entry| entry.caller.name != name);
    }
}

impl Store {
    /// The name of the token, when it is one of ours and not revoked: what every request is
    /// checked with. Cached for at most [`TOKEN_CACHE_TTL`] (see the module's note).
    pub async fn authenticate(&self, token: &str) -> Result<Option<String>, Error> {
        let caller = self.caller(token).await?;
        Ok(caller
            .filter(|caller| caller.tenant == self.tenant)
            .map(|caller| caller.name))
    }

    /// Whose API token this is, in whichever tenant holds it; `None` for an unknown or
    /// revoked token (or a worker token, which opens no API route). Cached like
    /// [`Self::authenticate`].
    pub async fn caller(&self, token: &str) -> Result<Option<Caller>, Error> {
        let hash = token_hash(token);
        let revocations = match self.tokens.fresh(&hash, Instant::now()) {
            Ok(caller) => return Ok(Some(caller)),
            Err(revocations) => revocations,
        };
        let checked = Instant::now();
        let select = Query::select()
            .columns([ApiTokens::Tenant, ApiTokens::Name])
            .from(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::Hash).eq(hash.as_str()))
            .and_where(Expr::col(ApiTokens::Kind).eq(super::worker_tokens::API_KIND))
            .to_owned();
        let caller: Option<Caller> = self.fetch(&select).await?.into_iter().next();
        if let Some(caller) = &caller {
            self.tokens.keep(hash, caller, checked, revocations);
        }
        Ok(caller)
    }

    /// Revokes every token named `name`; how many there were. Requests with them are refused
    /// from now on here, and within [`TOKEN_CACHE_TTL`] by other processes of this database.
    pub async fn revoke_token(&self, name: &str) -> Result<u64, Error> {
        let delete = Query::delete()
            .from_table(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(ApiTokens::Name).eq(name))
            .to_owned();
        // Forgotten before and after: a lookup racing the delete can keep nothing.
        self.tokens.forget(name);
        let revoked = self.execute(&delete).await?;
        self.tokens.forget(name);
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_revocation_voids_lookups_in_flight() {
        let cache = Cache::default();
        let start = Instant::now();
        let ci = Caller {
            tenant: "local".into(),
            name: "ci".into(),
        };
        let seen = cache.fresh("h", start).unwrap_err();
        cache.keep("h".into(), &ci, start, seen);
        assert_eq!(cache.fresh("h", start), Ok(ci.clone()));
        let later = start + TOKEN_CACHE_TTL;
        assert!(cache.fresh("h", later).is_err(), "expired");

        let seen = cache.fresh("h", later).unwrap_err();
        cache.forget("ci");
        cache.keep("h".into(), &ci, later, seen);
        assert!(
            cache.fresh("h", later).is_err(),
            "a lookup begun before the revocation keeps nothing"
        );
    }
}
