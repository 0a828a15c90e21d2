//! Running flights in-process for tests: an executor on a test database, real `sh` agents.
#![allow(dead_code)] // Each test file uses its own part of it.

use std::sync::Arc;

use murmur_engine::executor::{Committed, Error, Executor, StartRequest};
use murmur_engine::store::{Commit, Store};
use murmur_engine::{Event, RunStatus, SystemClock};
use murmur_testkit::git::git;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backends::TestDb;

pub mod holding;

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
        leases: murmur_engine::executor::Leases::new(
            murmur_engine::lease::Owner::this_process("test"),
            murmur_engine::executor::DEFAULT_TTL,
        ),
        placements: Default::default(),
        pools: Default::default(),
        environment: Default::default(),
        identity: None,
        workspace: Default::default(),
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

/// A git repository with one commit, and an executor whose agents work in it.
pub async fn in_repository(db: &TestDb) -> (tempfile::TempDir, Executor) {
    let repo = tempfile::tempdir().expect("temp dir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "start"],
    );
    let mut executor = executor(db, &repo.path().join(".murmur/work")).await;
    executor.repository = repo.path().to_path_buf();
    (repo, executor)
}

/// What a killed engine left behind: these events, committed as the run's first checkpoint.
pub async fn crashed_after(executor: &Executor, id: &str, events: &[Event]) {
    let commit = Commit {
        run_id: id,
        expected_version: 0,
        at: "2026-01-01T00:00:00.000Z",
        events,
        agents: &[],
        status: RunStatus::Running,
        finished_at: None,
        fence: None,
        machines: None,
    };
    executor.store.commit(&commit).await.expect("commit");
}

/// Drives the run in a task; its committed events arrive on the receiver as they happen.
pub fn drive_in_background(
    executor: &Executor,
    id: &str,
) -> (
    JoinHandle<Result<RunStatus, Error>>,
    mpsc::UnboundedReceiver<Committed>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (executor, id) = (executor.clone(), id.to_owned());
    (
        tokio::spawn(async move { executor.drive(&id, tx).await }),
        rx,
    )
}

/// Reads committed events until one matches; panics when the run ends first.
pub async fn until(
    events: &mut mpsc::UnboundedReceiver<Committed>,
    wanted: impl Fn(&Event) -> bool,
) {
    while let Some(committed) = events.recv().await {
        if wanted(&committed.event) {
            return;
        }
    }
    panic!("the run ended first");
}
