//! The two databases behind one small interface: statements are built once with sea-query
//! and rendered for whichever backend the store was opened on.

use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use sqlx::{AssertSqlSafe, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A statement rendered for its backend, to be run later (by the store's writer).
#[derive(Debug)]
pub struct Built {
    sql: String,
    values: SqlxValues,
}

impl Backend {
    /// Renders `statement` for this backend.
    pub fn build(&self, statement: &impl SqlxBinder) -> Built {
        let (sql, values) = match self {
            Backend::Sqlite(_) => statement.build_sqlx(SqliteQueryBuilder),
            Backend::Postgres(_) => statement.build_sqlx(PostgresQueryBuilder),
        };
        Built { sql, values }
    }

    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction that reads and then writes on what it read (a count under a cap). On
    /// SQLite a deferred one fails at once, without waiting out the busy timeout, when
    /// another writer commits between its read and its write; `BEGIN IMMEDIATE` takes the
    /// write lock first, so it waits its turn instead. PostgreSQL locks rows explicitly.
    pub async fn begin_write(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub async fn fetch_all<T>(&self, statement: &impl SqlxBinder) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match self {
            Backend::Sqlite(pool) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with(AssertSqlSafe(sql), values)
                    .fetch_all(pool)
                    .await
            }
            Backend::Postgres(pool) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with(AssertSqlSafe(sql), values)
                    .fetch_all(pool)
                    .await
            }
        }
    }
}

impl Tx {
    /// Runs a statement; returns the number of rows it touched.
    pub async fn execute(&mut self, statement: &impl SqlxBinder) -> sqlx::Result<u64> {
        Ok(match self {
            Tx::Sqlite(tx) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            Tx::Postgres(tx) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// Runs a statement rendered by [`Backend::build`] for this transaction's backend.
    pub async fn execute_built(&mut self, built: &Built) -> sqlx::Result<u64> {
        let (sql, values) = (built.sql.clone(), built.values.clone());
        Ok(match self {
            Tx::Sqlite(tx) => sqlx::query_with(AssertSqlSafe(sql), values)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => sqlx::query_with(AssertSqlSafe(sql), values)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Rows of a query inside the transaction.
    pub async fn fetch_all<T>(&mut self, statement: &impl SqlxBinder) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match self {
            Tx::Sqlite(tx) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with(AssertSqlSafe(sql), values)
                    .fetch_all(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with(AssertSqlSafe(sql), values)
                    .fetch_all(&mut **tx)
                    .await
            }
        }
    }

    /// `NOTIFY channel, payload` on PostgreSQL (delivered when the transaction commits).
    pub async fn notify(&mut self, channel: &str, payload: &str) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(_) => Ok(()),
            Tx::Postgres(tx) => sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&mut **tx)
                .await
                .map(drop),
        }
    }

    /// Runs a fixed statement (savepoints); never built from input.
    pub async fn raw(&mut self, sql: &'static str) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
            Tx::Postgres(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
        }
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}
