//! The durable store: runs, their agents' current state, and each run's append-only event
//! log, on SQLite (embedded default) or PostgreSQL. A commit appends events and updates the
//! current state in one transaction, guarded by the run's version.

mod admission;
mod backend;
mod catalog;
mod checkpoints;
pub mod children;
pub mod claims;
pub mod cloud_machines;
mod counts;
mod creation;
mod finished;
mod lease;
pub mod listing;
mod lookup;
mod machine_lease;
pub mod machine_log;
mod machines;
mod notify;
pub mod pool_events;
mod pulls;
mod rows;
mod schema;
pub mod secrets;
mod server;
mod statements;
pub mod tenants;
mod ticks;
mod turns;
pub use turns::PoolPlace;
pub mod tokens;
mod waiters;
pub mod worker_tokens;
pub mod workspaces;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use catalog::{FlightGeneration, NewGeneration, Saved};
pub use lease::Acquired;
pub use machine_log::{MachineEventRow, MachineFilter, MachineRow, NewMachine};
pub use machines::{FullPool, MachineUse, PoolUse};
pub use pulls::PullRequest;
pub use rows::{AgentRow, EventRow, RunRow};
pub use server::token_hash;
pub use writer::WriteStats;

use crate::event::{Delivered, Event};
use crate::state::{AgentState, RunStatus};
use backend::Backend;
use schema::{Agents, Events, Runs};
use statements::{AGENT_COLUMNS, RUN_COLUMNS, RUN_LEASE_COLUMNS};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a database URL: give a file path, sqlite://PATH or postgres://USER@HOST/DB"
    )]
    Url(String),
    #[error("cannot open the database {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error(
        "the database {0} is locked by another process; wait for it to finish or use another --db"
    )]
    Locked(String),
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "run {run} was changed by someone else (expected version {expected}); is another murmur driving it?"
    )]
    Conflict { run: String, expected: i64 },
    #[error(
        "run {run} is now driven by another process (it took the run's lease over); this process stopped driving it"
    )]
    Fenced { run: String },
    #[error("{}", full_pools(full))]
    PoolFull { full: Vec<FullPool> },
    #[error("no run matches `{0}`; `murmur runs ls` lists them")]
    NoRun(String),
    #[error("`{0}` matches several runs; give more of the id")]
    AmbiguousRun(String),
    #[error("the database is full or out of disk space: {0}")]
    Full(String),
    #[error("the checkpoint was not written: {0}")]
    NotWritten(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// What a refused checkpoint tells of the pools it did not fit in.
fn full_pools(full: &[FullPool]) -> String {
    let pools: Vec<String> = full
        .iter()
        .map(|f| format!("pool `{}` ({} free)", f.pool, f.available))
        .collect();
    format!("no machine free for this run in {}", pools.join(", "))
}

fn classify(location: &str, error: sqlx::Error) -> Error {
    let message = error.to_string();
    if message.contains("database is locked") || message.contains("database table is locked") {
        Error::Locked(location.to_owned())
    } else if message.contains("database or disk is full") || message.contains("No space left") {
        Error::Full(message)
    } else {
        Error::Database(error)
    }
}

/// A new run as it is first recorded.
pub struct NewRun<'a> {
    pub id: &'a str,
    pub flight: &'a str,
    pub flight_path: Option<&'a str>,
    pub source: &'a str,
    pub digest: &'a str,
    pub inputs: &'a serde_json::Value,
    pub created_at: &'a str,
    pub agents: &'a [String],
    /// The trigger's payload, for `${{ event.* }}`.
    pub event: Option<&'a serde_json::Value>,
}

/// The current state of one agent after a commit.
#[derive(Debug, Clone)]
pub struct AgentUpdate {
    pub slug: String,
    /// The agent's place in the flight (its section order).
    pub position: usize,
    pub state: AgentState,
    pub attempts: u32,
    pub response: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub session_id: Option<String>,
    pub machine: Option<String>,
    pub delivered: Delivered,
}

impl AgentUpdate {
    pub fn pending(slug: &str, position: usize) -> Self {
        Self {
            slug: slug.to_owned(),
            position,
            state: AgentState::Pending,
            attempts: 0,
            response: None,
            error: None,
            started_at: None,
            finished_at: None,
            session_id: None,
            machine: None,
            delivered: Delivered::default(),
        }
    }
}

/// One checkpoint: events to append and the state they lead to.
pub struct Commit<'a> {
    pub run_id: &'a str,
    pub expected_version: i64,
    pub at: &'a str,
    pub events: &'a [Event],
    pub agents: &'a [AgentUpdate],
    pub status: RunStatus,
    pub finished_at: Option<&'a str>,
    /// The lease epoch of the driver making this commit: the commit is refused with
    /// [`Error::Fenced`] once another process has taken the lease over. `None` for acts
    /// recorded by a process that does not drive the run (a cancel, an approval).
    pub fence: Option<i64>,
    /// Which agents of the run hold a machine after this commit (a driver's commits only).
    pub machines: Option<&'a MachineUse>,
}

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    writer: writer::Writer,
    location: String,
    tenant: String,
    notifier: std::sync::Arc<notify::Notifier>,
    /// Recently looked-up API tokens (see `tokens`).
    tokens: std::sync::Arc<tokens::Cache>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let (backend, location) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (open_postgres(url).await?, redact(url))
            } else {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                if path.is_empty() || path.contains("://") {
                    return Err(Error::Url(url.to_owned()));
                }
                (open_sqlite(path).await?, path.to_owned())
            };
        let notifier = notify::Notifier::new();
        let store = Self {
            writer: writer::Writer::start(backend.clone(), location.clone(), notifier.clone()),
            backend,
            location,
            tenant: "local".to_owned(),
            notifier,
            tokens: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(pool) => MIGRATOR.run(pool).await?,
            Backend::Postgres(pool) => MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// A watch of the run's latest committed version: it changes with every commit of this
    /// process, and on PostgreSQL of every process sharing the store. On SQLite, other
    /// processes' commits are found by one look at every watched run's version, twice a
    /// second for the whole process (`store/notify`).
    pub fn watch_run(&self, run_id: &str) -> tokio::sync::watch::Receiver<i64> {
        if let Backend::Postgres(pool) = &self.backend {
            self.notifier.listen(pool);
        }
        self.notifier.poll(&self.backend);
        self.notifier.watch(run_id)
    }

    /// The tenant whose rows this store reads and writes (API tokens included).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether commits of other processes are told to [`Self::watch_run`]'s watchers.
    pub fn tells_other_processes(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Checkpoints written so far and the transactions they shared.
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// How long checkpoints took to commit, queueing for the writer included.
    pub fn checkpoint_latency(&self) -> crate::histogram::Snapshot {
        self.writer.latency()
    }

    fn fail(&self, error: sqlx::Error) -> Error {
        classify(&self.location, error)
    }

    /// One statement outside a run's checkpoints (a lease taken or let go, a token, a
    /// workspace), committed with the writer's next group: it shares that group's fsync
    /// instead of paying one of its own while holding the database's write lock.
    async fn execute(&self, statement: &impl sea_query_sqlx::SqlxBinder) -> Result<u64, Error> {
        self.writer.execute(self.backend.build(statement)).await
    }

    async fn fetch<T>(&self, statement: &impl sea_query_sqlx::SqlxBinder) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        self.backend
            .fetch_all(statement)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn create_run(&self, run: &NewRun<'_>) -> Result<(), Error> {
        let mut tx = self.backend.begin().await.map_err(|e| self.fail(e))?;
        for insert in self.run_inserts(run) {
            tx.execute(&insert).await.map_err(|e| self.fail(e))?;
        }
        tx.commit().await.map_err(|e| self.fail(e))
    }

    /// Appends the events and writes the new state, all or nothing. Fails with
    /// [`Error::Conflict`] when the run's version is no longer `expected_version`.
    /// Checkpoints that arrive together (from concurrent runs) share one transaction.
    pub async fn commit(&self, commit: &Commit<'_>) -> Result<i64, Error> {
        let mut checkpoint = writer::Checkpoint::from(commit);
        checkpoint.tenant.clone_from(&self.tenant);
        self.writer.commit(checkpoint).await
    }

    /// A run by id or unique id prefix. The id itself is looked up first: a prefix's `LIKE`
    /// cannot use the primary key (on SQLite nor PostgreSQL), and every run's driver asks by id.
    pub async fn run(&self, id: &str) -> Result<RunRow, Error> {
        let exact = Query::select()
            .columns(RUN_COLUMNS)
            .columns(RUN_LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Runs::Id).eq(id))
            .to_owned();
        let found: Vec<RunRow> = self
            .backend
            .fetch_all(&exact)
            .await
            .map_err(|e| self.fail(e))?;
        if let Some(row) = found.into_iter().next() {
            return Ok(row);
        }
        let select = Query::select()
            .columns(RUN_COLUMNS)
            .columns(RUN_LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Runs::Id).like(format!("{}%", escape_like(id))))
            .limit(2)
            .to_owned();
        let mut rows: Vec<RunRow> = self
            .backend
            .fetch_all(&select)
            .await
            .map_err(|e| self.fail(e))?;
        match rows.len() {
            0 => Err(Error::NoRun(id.to_owned())),
            1 => Ok(rows.remove(0)),
            _ => match rows.iter().position(|row| row.id == id) {
                Some(exact) => Ok(rows.remove(exact)),
                None => Err(Error::AmbiguousRun(id.to_owned())),
            },
        }
    }

    /// Runs, newest first.
    pub async fn runs(&self, limit: u64) -> Result<Vec<RunRow>, Error> {
        let select = self.page_select(&listing::RunQuery::default(), None, None, limit);
        self.backend
            .fetch_all(&select)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Runs that are neither finished nor queued: what a restarted engine must pick up.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRow>, Error> {
        let select = Query::select()
            .columns(RUN_COLUMNS)
            .columns(RUN_LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .and_where(
                Expr::col(Runs::Status)
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .order_by(Runs::CreatedAt, Order::Asc)
            .to_owned();
        self.backend
            .fetch_all(&select)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn agents(&self, run_id: &str) -> Result<Vec<AgentRow>, Error> {
        let select = Query::select()
            .columns(AGENT_COLUMNS)
            .from(Agents::Table)
            .and_where(Expr::col(Agents::RunId).in_subquery(self.own_run(run_id)))
            .order_by(Agents::Position, Order::Asc)
            .to_owned();
        self.backend
            .fetch_all(&select)
            .await
            .map_err(|e| self.fail(e))
    }

    /// The run's events after `after_seq` (0 for all), in order.
    pub async fn events(&self, run_id: &str, after_seq: i64) -> Result<Vec<EventRow>, Error> {
        let select = Query::select()
            .columns([
                Events::RunId,
                Events::Seq,
                Events::At,
                Events::Kind,
                Events::Slug,
                Events::Data,
            ])
            .from(Events::Table)
            .and_where(Expr::col(Events::RunId).in_subquery(self.own_run(run_id)))
            .and_where(Expr::col(Events::Seq).gt(after_seq))
            .order_by(Events::Seq, Order::Asc)
            .to_owned();
        self.backend
            .fetch_all(&select)
            .await
            .map_err(|e| self.fail(e))
    }
}

impl Store {
    /// `run_id` when it is this tenant's run: agents and events carry no tenant of their own,
    /// so reads of them go through their run's row (one primary-key lookup).
    fn own_run(&self, run_id: &str) -> sea_query::SelectStatement {
        Query::select()
            .column(Runs::Id)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Id).eq(run_id))
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .to_owned()
    }
}

fn escape_like(text: &str) -> String {
    text.replace(['%', '_', '\\'], "")
}

async fn open_sqlite(path: &str) -> Result<Backend, Error> {
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| Error::Open {
            location: path.to_owned(),
            source: sqlx::Error::Io(e),
        })?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|_| Error::Url(path.to_owned()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|source| match classify(path, source) {
            Error::Database(source) => Error::Open {
                location: path.to_owned(),
                source,
            },
            other => other,
        })?;
    Ok(Backend::Sqlite(pool))
}

async fn open_postgres(url: &str) -> Result<Backend, Error> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| Error::Open {
            location: redact(url),
            source,
        })?;
    Ok(Backend::Postgres(pool))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }
}
