//! Worker tokens: what a `murmur worker` registers its machine with. Kept in `api_tokens`
//! beside API tokens (hashed the same way, revoked the same way by name) with `kind = worker`
//! and the one pool whose machines they may register. They open no API route: the API's
//! lookup takes `kind = api` only. A registered machine then uses a credential of its own
//! (`machines.credential_hash`), never the token.

use sea_query::{Expr, ExprTrait, Query};

use super::schema::ApiTokens;
use super::server::token_hash;
use super::{Error, Store};

/// `api_tokens.kind` of an API token (the column's default).
pub const API_KIND: &str = "api";
/// `api_tokens.kind` of a worker token.
pub const WORKER_KIND: &str = "worker";

/// A worker token as looked up: its tenant, its name and the pool it registers machines of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerToken {
    /// The tenant whose machines it registers: they run that tenant's attempts only.
    pub tenant: String,
    pub name: String,
    pub pool: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant: String,
    name: String,
    pool: Option<String>,
}

impl Store {
    /// Keeps a new worker token's hash under `name`, for machines of `pool`.
    pub async fn add_worker_token(
        &self,
        name: &str,
        token: &str,
        pool: &str,
        at: &str,
    ) -> Result<(), Error> {
        let insert = Query::insert()
            .into_table(ApiTokens::Table)
            .columns([
                ApiTokens::Hash,
                ApiTokens::Name,
                ApiTokens::Tenant,
                ApiTokens::CreatedAt,
                ApiTokens::Kind,
                ApiTokens::Pool,
            ])
            .values_panic([
                token_hash(token).into(),
                name.into(),
                self.tenant.as_str().into(),
                at.into(),
                WORKER_KIND.into(),
                pool.into(),
            ])
            .to_owned();
        self.execute(&insert).await.map(drop)
    }

    /// The worker token `token` is, in whichever tenant holds it (as [`Store::caller`] finds
    /// an API token's), unless it is unknown, revoked, or an API token.
    pub async fn worker_token(&self, token: &str) -> Result<Option<WorkerToken>, Error> {
        let select = Query::select()
            .columns([ApiTokens::Tenant, ApiTokens::Name, ApiTokens::Pool])
            .from(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::Hash).eq(token_hash(token)))
            .and_where(Expr::col(ApiTokens::Kind).eq(WORKER_KIND))
            .to_owned();
        let rows: Vec<Row> = self.fetch(&select).await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let pool = row
            .pool
            .ok_or_else(|| Error::Corrupt(format!("worker token `{}` names no pool", row.name)))?;
        Ok(Some(WorkerToken {
            tenant: row.tenant,
            name: row.name,
            pool,
        }))
    }
}
