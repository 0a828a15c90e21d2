//! What the HTTP server keeps: API tokens (hashed); and its health check.

use sea_query::{Expr, ExprTrait, Query};
use sha2::{Digest, Sha256};

use super::schema::{ApiTokens, Runs};
use super::{Error, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct TokenRow {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct IdRow {
    #[allow(dead_code, reason = "the row only proves the query ran")]
    id: String,
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
            // A worker token registers machines only (`store/worker_tokens`).
            .and_where(Expr::col(ApiTokens::Kind).eq(super::worker_tokens::API_KIND))
            .to_owned();
        let rows: Vec<TokenRow> = self.fetch(&select).await?;
        Ok(rows.into_iter().next().map(|row| row.name))
    }

    /// Whether the store answers: one cheap query against the runs table, so a database
    /// that is gone, unreadable or not migrated fails it.
    pub async fn ping(&self) -> Result<(), Error> {
        let select = Query::select()
            .column(Runs::Id)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .limit(1)
            .to_owned();
        let _: Vec<IdRow> = self.fetch(&select).await?;
        Ok(())
    }
}
