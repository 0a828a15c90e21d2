//! Tenants and their API tokens as an operator sees them: `murmur tenant create|ls`,
//! `murmur token ls`. A [`Store`] reads and writes one tenant's rows; [`Store::for_tenant`]
//! is the one way to another tenant's, and only to one that exists.

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};

use super::schema::ApiTokens;
use super::{Error, Store};

#[derive(Iden, Clone, Copy)]
enum Tenants {
    Table,
    Name,
    CreatedAt,
}

/// A tenant as `tenant ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct TenantEntry {
    pub name: String,
    pub created_at: String,
}

/// One of a tenant's tokens as `token ls` shows it: never the token, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct TokenEntry {
    pub name: String,
    /// `api` or `worker`.
    pub kind: String,
    /// The pool a worker token registers machines of.
    pub pool: Option<String>,
    pub created_at: String,
}

/// Whether `name` can name a tenant: lowercase letters, digits, `-` and `_`, starting with a
/// letter or digit, at most 64 characters (a GitHub organisation's name fits).
pub fn is_tenant_name(name: &str) -> bool {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(valid)
}

impl Store {
    /// Records tenant `name`; false when it exists already.
    pub async fn create_tenant(&self, name: &str, at: &str) -> Result<bool, Error> {
        let insert = Query::insert()
            .into_table(Tenants::Table)
            .columns([Tenants::Name, Tenants::CreatedAt])
            .values_panic([name.into(), at.into()])
            .on_conflict(OnConflict::column(Tenants::Name).do_nothing().to_owned())
            .to_owned();
        Ok(self.execute(&insert).await? == 1)
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<TenantEntry>, Error> {
        let select = Query::select()
            .columns([Tenants::Name, Tenants::CreatedAt])
            .from(Tenants::Table)
            .order_by(Tenants::Name, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// This store scoped to tenant `name` (same database, same writer), or `None` when there
    /// is no such tenant.
    pub async fn for_tenant(&self, name: &str) -> Result<Option<Store>, Error> {
        let select = Query::select()
            .columns([Tenants::Name, Tenants::CreatedAt])
            .from(Tenants::Table)
            .and_where(Expr::col(Tenants::Name).eq(name))
            .to_owned();
        let found: Vec<TenantEntry> = self.fetch(&select).await?;
        Ok((!found.is_empty()).then(|| {
            let mut scoped = self.clone();
            name.clone_into(&mut scoped.tenant);
            scoped
        }))
    }

    /// This tenant's tokens, API and worker, by name.
    pub async fn list_tokens(&self) -> Result<Vec<TokenEntry>, Error> {
        let select = Query::select()
            .columns([
                ApiTokens::Name,
                ApiTokens::Kind,
                ApiTokens::Pool,
                ApiTokens::CreatedAt,
            ])
            .from(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::Tenant).eq(self.tenant.as_str()))
            .order_by(ApiTokens::Name, Order::Asc)
            .order_by(ApiTokens::CreatedAt, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }
}

#[cfg(test)]
mod tests {
    use super::is_tenant_name;

    #[test]
    fn tenant_names_are_short_lowercase_words() {
        for good in ["local", "acme", "acme-corp", "a1_b", "9lives"] {
            assert!(is_tenant_name(good), "{good}");
        }
        for bad in ["", "Acme", "-x", "_x", "a b", "a/b", "ä", &"a".repeat(65)] {
            assert!(!is_tenant_name(bad), "{bad}");
        }
    }
}
