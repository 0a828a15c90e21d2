//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database on the server named by
//! `MURMUR_TEST_POSTGRES_URL` (`.ci/run` starts one and sets it).

use murmur_engine::Store;

pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: the server's admin URL and the database to drop afterwards.
    drop: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let pool = sqlx::PgPool::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .ok()?;
                pool.close().await;
                Some(())
            })
        });
        let _ = dropping.join();
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().join("murmur.db").display().to_string();
    TestDb {
        url,
        _dir: Some(dir),
        drop: None,
    }
}

pub async fn postgres() -> Option<TestDb> {
    let Ok(admin) = std::env::var("MURMUR_TEST_POSTGRES_URL") else {
        if std::env::var("MURMUR_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("MURMUR_SKIP_POSTGRES=1: PostgreSQL test skipped");
            return None;
        }
        panic!(
            "set MURMUR_TEST_POSTGRES_URL=postgres://USER:PASS@127.0.0.1:5432/postgres (a role that may \
             create databases; .ci/run sets one up), or MURMUR_SKIP_POSTGRES=1 to skip PostgreSQL tests"
        );
    };
    let name = format!("murmur_test_{}", uuid_like());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create a test database");
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Some(TestDb {
        url: format!("{base}/{name}"),
        _dir: None,
        drop: Some((admin.clone(), name)),
    })
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[allow(dead_code)]
pub async fn open(db: &TestDb) -> Store {
    Store::open(&db.url).await.expect("open the test store")
}

/// Generates one `#[tokio::test]` per backend for each listed async test body.
#[macro_export]
macro_rules! every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { let db = $crate::backends::sqlite().await; super::$name(&db).await; })+
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let Some(db) = $crate::backends::postgres().await else { return };
                super::$name(&db).await;
            })+
        }
    };
}
