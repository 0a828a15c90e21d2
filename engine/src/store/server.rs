//! What the HTTP server keeps: API tokens (hashed) and idempotency keys.

use sea_query::{Expr, ExprTrait, OnConflict, Query};
use sha2::{Digest, Sha256};

use super::schema::{ApiTokens, IdempotencyKeys};
use super::{Error, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct TokenRow {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct KeyRow {
    run_id: String,
}

/// The stored form of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Keeps a new token's hash under `name`.
    pub async fn add_token(&self, name: &str, token: &str, at: &str) -> Result<(), Error> {
        let insert = Query::insert()
            .into_table(ApiTokens::Table)
            .columns([
                ApiTokens::Hash,
                ApiTokens::Name,
                ApiTokens::Tenant,
                ApiTokens::CreatedAt,
            ])
            .values_panic([
                token_hash(token).into(),
                name.into(),
                self.tenant.as_str().into(),
                at.into(),
            ])
            .to_owned();
        self.execute(&insert).await.map(drop)
    }

    /// The name of the token, when it is one of ours.
    pub async fn token_name(&self, token: &str) -> Result<Option<String>, Error> {
        let select = Query::select()
            .column(ApiTokens::Name)
            .from(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::Hash).eq(token_hash(token)))
            .and_where(Expr::col(ApiTokens::Tenant).eq(self.tenant.as_str()))
            .to_owned();
        let rows: Vec<TokenRow> = self.fetch(&select).await?;
        Ok(rows.into_iter().next().map(|row| row.name))
    }

    /// Remembers that `key` started `run_id`; returns the run the key already names, if any.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        run_id: &str,
        at: &str,
    ) -> Result<String, Error> {
        let insert = Query::insert()
            .into_table(IdempotencyKeys::Table)
            .columns([
                IdempotencyKeys::Tenant,
                IdempotencyKeys::Key,
                IdempotencyKeys::RunId,
                IdempotencyKeys::CreatedAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                key.into(),
                run_id.into(),
                at.into(),
            ])
            .on_conflict(
                OnConflict::columns([IdempotencyKeys::Tenant, IdempotencyKeys::Key])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        self.execute(&insert).await?;
        Ok(self
            .idempotent_run(key)
            .await?
            .unwrap_or_else(|| run_id.to_owned()))
    }

    pub async fn idempotent_run(&self, key: &str) -> Result<Option<String>, Error> {
        let select = Query::select()
            .column(IdempotencyKeys::RunId)
            .from(IdempotencyKeys::Table)
            .and_where(Expr::col(IdempotencyKeys::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(IdempotencyKeys::Key).eq(key))
            .to_owned();
        let rows: Vec<KeyRow> = self.fetch(&select).await?;
        Ok(rows.into_iter().next().map(|row| row.run_id))
    }
}
