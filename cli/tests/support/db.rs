//! Where a test's store lives: a SQLite file in the fixture, or a fresh PostgreSQL database on
//! the server named by `MURMUR_TEST_POSTGRES_URL`, dropped with the fixture.

use std::process::{Command, Output};

pub enum Backend {
    Sqlite,
    /// The URL of an existing database to connect to for `CREATE DATABASE`.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from `MURMUR_TEST_POSTGRES_URL`; `None` (the test is skipped) only when
    /// `MURMUR_SKIP_POSTGRES=1` says so, otherwise a missing URL fails the test.
    pub fn postgres() -> Option<Backend> {
        if let Ok(url) = std::env::var("MURMUR_TEST_POSTGRES_URL") {
            return Some(Backend::Postgres(url));
        }
        if std::env::var("MURMUR_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("MURMUR_SKIP_POSTGRES=1: skipping a PostgreSQL test");
            return None;
        }
        panic!(
            "the PostgreSQL tests need a server: set MURMUR_TEST_POSTGRES_URL to a URL of a role \
             that may CREATE DATABASE, e.g. \
             MURMUR_TEST_POSTGRES_URL=postgres://murmur:murmur@127.0.0.1:5432/postgres \
             (or set MURMUR_SKIP_POSTGRES=1 to skip these tests)"
        );
    }
}

/// A database of its own for a test on `backend` (none on SQLite, whose file the test's
/// folder holds), with the URL that reaches it.
pub fn created(backend: &Backend, label: &str) -> Option<(PgDatabase, String)> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres(admin) => Some(PgDatabase::create(admin, label)),
    }
}

/// A database created for one fixture, dropped with it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates a database named after the process, `label` and the time; returns it with
    /// the URL that reaches it.
    pub fn create(admin_url: &str, label: &str) -> (Self, String) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("murmur_crash_{}_{label}_{nanos}", std::process::id());
        let created = psql(admin_url, &format!("CREATE DATABASE {name}"));
        assert!(
            created.status.success(),
            "CREATE DATABASE {name} failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let url = with_database(admin_url, &name);
        let db = PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
        };
        (db, url)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let dropped = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        if !dropped.status.success() {
            eprintln!(
                "cannot drop the test database {}: {}",
                self.name,
                String::from_utf8_lossy(&dropped.stderr)
            );
        }
    }
}

fn psql(url: &str, sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `psql` (is the PostgreSQL client installed?): {e}"))
}

/// `postgres://u:p@host:port/db?x` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}
