//! Running flights in-process for tests: an executor on a test database, real `sh` agents.
#![allow(dead_code)] // Each test file uses its own part of it.

use std::sync::Arc;

use murmur_engine::executor::{Committed, Executor, StartRequest};
use murmur_engine::store::Store;
use murmur_engine::{Event, RunStatus, SystemClock};
use tokio::sync::mpsc;

use crate::backends::TestDb;

pub async fn executor(db: &TestDb, work: &std::path::Path) -> Executor {
    Executor {
        store: Store::open(&db.url).await.expect("store"),
        clock: Arc::new(SystemClock),
        slots: 2,
        work_root: work.to_path_buf(),
        repository: work.to_path_buf(),
        claude: Default::default(),
        codex: Default::default(),
        retry_backoff: std::time::Duration::ZERO,
        github: Default::default(),
        check_command: None,
    }
}

pub async fn start(executor: &Executor, text: &str) -> String {
    let flight = murmur_parser::parse(text, "t").flight.expect("flight");
    executor
        .create(&StartRequest {
            flight_name: "t",
            flight_path: None,
            source: text,
            flight: &flight,
            inputs: &[],
            event: None,
        })
        .await
        .expect("create")
}

pub async fn drive(executor: &Executor, id: &str) -> (RunStatus, Vec<Event>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Committed>();
    let status = executor.drive(id, tx).await.expect("drive");
    let mut events = Vec::new();
    while let Ok(committed) = rx.try_recv() {
        events.push(committed.event);
    }
    (status, events)
}
