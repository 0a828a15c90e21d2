//! Secrets at rest: each tenant's wrapped data key and its secrets' ciphertexts. The store
//! only keeps bytes that `murmur-vault` made; it never sees a plaintext value or an unwrapped
//! key (`crate::secrets` puts the two together).

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::schema::{Secrets as S, TenantKeys as K};
use super::{Error, Store};

/// A data key as stored: wrapped by the key-encryption key `kek_id`.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredKey {
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoredKey({}, {} bytes)",
            self.kek_id,
            self.wrapped.len()
        )
    }
}

/// One tenant's stored data key, for a rotation across every tenant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantKey {
    pub tenant: String,
    #[sqlx(flatten)]
    pub key: StoredKey,
}

/// What a listing shows of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct SecretEntry {
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
}

/// A secret's encrypted value as stored.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretCiphertext {
    pub name: String,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

impl std::fmt::Debug for SecretCiphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretCiphertext({}, {} bytes)",
            self.name,
            self.ciphertext.len()
        )
    }
}

/// A secret to write: already encrypted under the tenant's data key.
pub struct NewSecret<'a> {
    pub name: &'a str,
    pub ciphertext: &'a [u8],
    pub nonce: &'a [u8],
    /// Who sets it: an API token's name, or `local` for the CLI on this machine.
    pub by: &'a str,
    pub at: &'a str,
}

/// Whether setting a secret made it or replaced its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
}

impl Store {
    /// This store's tenant's data key, when it has one.
    pub async fn data_key(&self) -> Result<Option<StoredKey>, Error> {
        let select = Query::select()
            .columns([K::KekId, K::Wrapped])
            .from(K::Table)
            .and_where(Expr::col(K::Tenant).eq(self.tenant.as_str()))
            .to_owned();
        let rows: Vec<StoredKey> = self.fetch(&select).await?;
        Ok(rows.into_iter().next())
    }

    /// Keeps `key` as the tenant's data key unless it already has one, and returns the one
    /// kept: of two processes making the first key at once, both end up using the winner's.
    pub async fn data_key_or_insert(&self, key: &StoredKey, at: &str) -> Result<StoredKey, Error> {
        let insert = Query::insert()
            .into_table(K::Table)
            .columns([K::Tenant, K::KekId, K::Wrapped, K::CreatedAt])
            .values_panic([
                self.tenant.as_str().into(),
                key.kek_id.as_str().into(),
                key.wrapped.clone().into(),
                at.into(),
            ])
            .on_conflict(OnConflict::column(K::Tenant).do_nothing().to_owned())
            .to_owned();
        self.execute(&insert).await?;
        self.data_key().await?.ok_or_else(|| {
            Error::Corrupt(format!(
                "tenant `{}` has no data key after one was written",
                self.tenant
            ))
        })
    }

    /// Every tenant's data key: a KEK rotation re-wraps them all, so this one read is not
    /// limited to the store's tenant.
    pub async fn all_data_keys(&self) -> Result<Vec<TenantKey>, Error> {
        let select = Query::select()
            .columns([K::Tenant, K::KekId, K::Wrapped])
            .from(K::Table)
            .order_by(K::Tenant, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// Replaces `tenant`'s data key `from` with `to` (the same key wrapped by another KEK);
    /// false when the stored key is no longer `from` (another rotation got there first).
    pub async fn rewrap_data_key(
        &self,
        tenant: &str,
        from: &StoredKey,
        to: &StoredKey,
        at: &str,
    ) -> Result<bool, Error> {
        let update = Query::update()
            .table(K::Table)
            .values([
                (K::KekId, to.kek_id.as_str().into()),
                (K::Wrapped, to.wrapped.clone().into()),
                (K::RotatedAt, at.into()),
            ])
            .and_where(Expr::col(K::Tenant).eq(tenant))
            .and_where(Expr::col(K::KekId).eq(from.kek_id.as_str()))
            .and_where(Expr::col(K::Wrapped).eq(from.wrapped.clone()))
            .to_owned();
        Ok(self.execute(&update).await? == 1)
    }

    /// Sets a secret of the store's tenant, keeping who made it first and when.
    pub async fn set_secret(&self, secret: &NewSecret<'_>) -> Result<Written, Error> {
        // Write first, read never: on SQLite a transaction that reads before it writes can
        // deadlock with another doing the same (neither may upgrade its lock).
        let mut tx = self.backend.begin().await.map_err(|e| self.fail(e))?;
        let created = tx
            .execute(&self.secret_insert(secret))
            .await
            .map_err(|e| self.fail(e))?;
        if created == 0 {
            tx.execute(&self.secret_update(secret))
                .await
                .map_err(|e| self.fail(e))?;
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(if created == 0 {
            Written::Replaced
        } else {
            Written::Created
        })
    }

    fn secret_insert(&self, secret: &NewSecret<'_>) -> sea_query::InsertStatement {
        Query::insert()
            .into_table(S::Table)
            .columns([
                S::Tenant,
                S::Name,
                S::Ciphertext,
                S::Nonce,
                S::CreatedBy,
                S::CreatedAt,
                S::UpdatedBy,
                S::UpdatedAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                secret.name.into(),
                secret.ciphertext.to_vec().into(),
                secret.nonce.to_vec().into(),
                secret.by.into(),
                secret.at.into(),
                secret.by.into(),
                secret.at.into(),
            ])
            .on_conflict(
                OnConflict::columns([S::Tenant, S::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned()
    }

    fn secret_update(&self, secret: &NewSecret<'_>) -> sea_query::UpdateStatement {
        Query::update()
            .table(S::Table)
            .values([
                (S::Ciphertext, secret.ciphertext.to_vec().into()),
                (S::Nonce, secret.nonce.to_vec().into()),
                (S::UpdatedBy, secret.by.into()),
                (S::UpdatedAt, secret.at.into()),
            ])
            .and_where(Expr::col(S::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(S::Name).eq(secret.name))
            .to_owned()
    }

    /// The tenant's secrets by name: who set them and when, never their values.
    pub async fn secrets(&self) -> Result<Vec<SecretEntry>, Error> {
        self.fetch(&self.entries_select()).await
    }

    fn entries_select(&self) -> sea_query::SelectStatement {
        Query::select()
            .columns([
                S::Name,
                S::CreatedBy,
                S::CreatedAt,
                S::UpdatedBy,
                S::UpdatedAt,
            ])
            .from(S::Table)
            .and_where(Expr::col(S::Tenant).eq(self.tenant.as_str()))
            .order_by(S::Name, Order::Asc)
            .to_owned()
    }

    /// The encrypted values of the named secrets of the tenant, by name; names it does not
    /// have are left out (the caller says which are missing).
    pub async fn secret_ciphertexts(&self, names: &[&str]) -> Result<Vec<SecretCiphertext>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let select = Query::select()
            .columns([S::Name, S::Ciphertext, S::Nonce])
            .from(S::Table)
            .and_where(Expr::col(S::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(S::Name).is_in(names.iter().copied()))
            .order_by(S::Name, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// Removes a secret of the tenant; false when it had none by that name.
    pub async fn remove_secret(&self, name: &str) -> Result<bool, Error> {
        let delete = Query::delete()
            .from_table(S::Table)
            .and_where(Expr::col(S::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(S::Name).eq(name))
            .to_owned();
        Ok(self.execute(&delete).await? > 0)
    }
}
