//! A run driven by the process that just created it, from the row it knows: it ends as one
//! whose row was read does; its row is the one the store holds; and whatever another process
//! committed to it first, or a driver that held it before, sends the drive back to the store.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::executor::{Error, Executor, PreparedRun, StartRequest};
use murmur_engine::store::Error as StoreError;
use murmur_engine::{Event, RunStatus};
use support::executor;
use tokio::sync::{mpsc, oneshot};

every_backend!(
    a_created_run_is_driven_from_the_row_it_was_created_with,
    a_commit_before_the_first_drive_sends_it_back_to_the_store,
    a_run_held_before_is_read_back,
);

const TWO: &str = "---\nruntime: exec\ninputs:\n  who: { default: world }\n---\n# T\n\n## one\n> command: echo \"hello ${{ inputs.who }}\"\n\n## two\n> needs: one\n> command: echo second\n";

async fn created(executor: &Executor) -> PreparedRun {
    let flight = murmur_parser::parse(TWO, "t").flight.expect("flight");
    let inputs = ["who=created".to_owned()];
    let prepared = executor
        .prepare(&StartRequest {
            flight_name: "t",
            flight_path: None,
            source: TWO,
            flight: &flight,
            inputs: &inputs,
            event: None,
        })
        .expect("prepare");
    let claimed = executor
        .create_claimed(None, std::slice::from_ref(&prepared))
        .await
        .expect("create");
    assert_eq!(claimed, murmur_engine::store::claims::Claimed::Won);
    prepared
}

async fn drive_created(executor: &Executor, run: &PreparedRun) -> Result<Vec<Event>, Error> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_keep, cancel) = oneshot::channel();
    let row = run.created_row(executor.store.tenant());
    executor.drive_created(row, tx, cancel).await?;
    let mut events = Vec::new();
    while let Ok(committed) = rx.try_recv() {
        events.push(committed.event);
    }
    Ok(events)
}

async fn a_created_run_is_driven_from_the_row_it_was_created_with(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let run = created(&executor).await;
    let stored = executor.store.run(&run.id).await.expect("run");
    let known = run.created_row(executor.store.tenant());
    assert_eq!(
        stored, known,
        "the row the driver is handed is the stored one"
    );

    let events = drive_created(&executor, &run).await.expect("drive");
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::AgentOutput { line, .. } if line == "hello created"
        )),
        "{events:?}"
    );
    let row = executor.store.run(&run.id).await.expect("run");
    assert_eq!(row.status, RunStatus::Completed.as_str());
    let agents = executor.store.agents(&run.id).await.expect("agents");
    assert!(agents.iter().all(|agent| agent.state == "completed"));
    assert!(agents.iter().all(|agent| agent.started_at.is_some()));
}

async fn a_commit_before_the_first_drive_sends_it_back_to_the_store(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let run = created(&executor).await;
    // Another process cancels the run before this one's driver starts.
    let other = support::executor(db, work.path()).await;
    other.cancel(&run.id).await.expect("cancel");
    match drive_created(&executor, &run).await {
        Ok(events) => assert!(
            !events
                .iter()
                .any(|event| matches!(event, Event::AgentStarted { .. })),
            "the cancel was read back, nothing started: {events:?}"
        ),
        // A commit that left no lease behind: the stale row's first commit is refused.
        Err(Error::Store(StoreError::Conflict { .. })) => {
            support::drive(&executor, &run.id).await;
        }
        Err(other) => panic!("{other}"),
    }
    let row = executor.store.run(&run.id).await.expect("run");
    assert_eq!(row.status, RunStatus::Canceled.as_str(), "the cancel holds");
    let agents = executor.store.agents(&run.id).await.expect("agents");
    assert!(agents.iter().all(|agent| agent.started_at.is_none()));
}

async fn a_run_held_before_is_read_back(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let run = created(&executor).await;
    // Another process drove it to its end (and let its lease go) before this one started.
    let other = support::executor(db, work.path()).await;
    let (status, _) = support::drive(&other, &run.id).await;
    assert_eq!(status, RunStatus::Completed);
    let events = drive_created(&executor, &run).await.expect("drive");
    assert!(
        events.is_empty(),
        "nothing is run again, the log was replayed: {events:?}"
    );
    let agents = executor.store.agents(&run.id).await.expect("agents");
    assert!(agents.iter().all(|agent| agent.state == "completed"));
}
