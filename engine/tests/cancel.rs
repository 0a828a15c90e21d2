//! Cancellation, on every backend: every running agent's process tree is stopped (checked in the
//! process table), the rest is marked canceled, whether the cancel comes from the process that
//! drives the run or from another one.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::executor::Executor;
use murmur_engine::{Event, RunStatus};
use support::{executor, start};
use tokio::sync::{mpsc, oneshot};

every_backend!(
    canceling_stops_every_process_tree_and_marks_the_rest,
    a_cancel_from_another_process_stops_the_driver_and_its_agents,
);

/// Two agents that each start a child of their own and wait; a third waits for them.
const TREES: &str = "---\nruntime: exec\n---\n# Trees\n\n## left\n> command: sleep 300 & echo \"pids $$ $!\"; wait\n\n## right\n> command: sleep 300 & echo \"pids $$ $!\"; wait\n\n## after\n> needs: left, right\n> command: echo never\n";

/// A process is alive while it is in the process table and not a zombie.
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Drives the run until both agents reported their pids; returns the pids and the driver.
async fn both_running(
    executor: &Executor,
    id: &str,
    cancel: oneshot::Receiver<()>,
) -> (
    Vec<String>,
    tokio::task::JoinHandle<Result<RunStatus, murmur_engine::executor::Error>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driving = {
        let (executor, id) = (executor.clone(), id.to_owned());
        tokio::spawn(async move { executor.drive_until(&id, tx, cancel).await })
    };
    let mut pids = Vec::new();
    while pids.len() < 4 {
        let committed = rx.recv().await.expect("the run goes on");
        if let Event::AgentOutput { line, .. } = committed.event
            && let Some(found) = line.strip_prefix("pids ")
        {
            pids.extend(found.split_whitespace().map(str::to_owned));
        }
    }
    (pids, driving)
}

async fn check_canceled(executor: &Executor, id: &str, pids: &[String]) {
    for pid in pids {
        assert!(!alive(pid), "process {pid} is gone");
    }
    let agents = executor.store.agents(id).await.expect("agents");
    let states: Vec<&str> = agents.iter().map(|a| a.state.as_str()).collect();
    assert_eq!(states, ["canceled", "canceled", "canceled"]);
    assert_eq!(
        executor.store.run(id).await.expect("run").status,
        "canceled"
    );
}

async fn canceling_stops_every_process_tree_and_marks_the_rest(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, TREES).await;
    let (cancel, canceled) = oneshot::channel();
    let (pids, driving) = both_running(&executor, &id, canceled).await;
    assert!(pids.iter().all(|pid| alive(pid)), "{pids:?}");
    cancel.send(()).expect("cancel");
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Canceled);
    check_canceled(&executor, &id, &pids).await;
}

async fn a_cancel_from_another_process_stops_the_driver_and_its_agents(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, TREES).await;
    let (_keep, never) = oneshot::channel();
    let (pids, driving) = both_running(&executor, &id, never).await;
    let other = support::executor(db, work.path()).await;
    assert_eq!(
        other.cancel(&id).await.expect("cancel"),
        RunStatus::Canceled
    );
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Canceled);
    check_canceled(&executor, &id, &pids).await;
}
