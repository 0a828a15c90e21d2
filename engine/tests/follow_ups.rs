//! Follow-ups (`murmur queue add`) and killing one agent (`murmur kill`), recorded by another
//! "process" while a run is driven or after it ended, on every backend.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::{Event, RunStatus};
use support::{drive, drive_in_background, executor, in_repository, start, until};

every_backend!(
    a_finished_agent_takes_queued_follow_ups_one_turn_each,
    dequeue_all_takes_every_queued_follow_up_in_one_turn,
    a_follow_up_sent_while_the_agent_works_waits_for_its_turn_to_end,
    killing_an_agent_stops_its_process_and_fails_the_run,
    on_idle_terminate_releases_the_worktree_and_a_follow_up_attaches_it_again,
);

fn chat(strategy: &str) -> String {
    format!(
        "---\nruntime: exec\ndequeue_strategy: {strategy}\n---\n# Chat\n\n## echo\n> command: echo \"got: $(cat | tr -s '\\n' ' ')\"\n"
    )
}

fn responses(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AgentSucceeded { response, .. } => Some(response.as_str()),
            _ => None,
        })
        .collect()
}

async fn a_finished_agent_takes_queued_follow_ups_one_turn_each(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, &chat("one")).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let reopened = executor
        .queue_follow_up(&id, "echo", "first")
        .await
        .expect("queue");
    assert!(reopened, "the completed run is reopened for the follow-up");
    let again = executor
        .queue_follow_up(&id, "echo", "second")
        .await
        .expect("queue");
    assert!(!again, "already reopened");
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(responses(&events), ["got: first", "got: second"]);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        (agents[0].attempts, agents[0].state.as_str()),
        (3, "completed")
    );
}

async fn dequeue_all_takes_every_queued_follow_up_in_one_turn(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, &chat("all")).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    for text in ["first", "second"] {
        executor
            .queue_follow_up(&id, "echo", text)
            .await
            .expect("queue");
    }
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(responses(&events), ["got: first second"]);
}

/// The agent prints all the time, so the driver commits all the time: the follow-up's commit
/// races the driver's, which takes it in and commits again on top.
async fn a_follow_up_sent_while_the_agent_works_waits_for_its_turn_to_end(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let release = work.path().join("release");
    let executor = executor(db, work.path()).await;
    let text = format!(
        "---\nruntime: exec\n---\n# Busy\n\n## busy\n> command: echo started; while [ ! -f {} ]; do echo tick; sleep 0.01; done; echo; echo \"got: $(cat)\"\n",
        release.display()
    );
    let id = start(&executor, &text).await;
    let (driving, mut rx) = drive_in_background(&executor, &id);
    until(
        &mut rx,
        |e| matches!(e, Event::AgentOutput { line, .. } if line == "started"),
    )
    .await;
    let reopened = executor
        .queue_follow_up(&id, "busy", "more please")
        .await
        .expect("queue");
    assert!(!reopened, "the run is still running");
    std::fs::write(&release, "").expect("release");
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Completed);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        agents[0].attempts, 2,
        "one turn for the prompt, one for the follow-up"
    );
    assert_eq!(agents[0].response.as_deref(), Some("got: more please"));
}

async fn killing_an_agent_stops_its_process_and_fails_the_run(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let never = work.path().join("never");
    let executor = executor(db, work.path()).await;
    let text = format!(
        "---\nruntime: exec\n---\n# Kill\n\n## stuck\n> command: echo \"pid $$\"; while [ ! -f {} ]; do sleep 0.05; done\n\n## after\n> needs: stuck\n> command: echo never\n",
        never.display()
    );
    let id = start(&executor, &text).await;
    let (driving, mut rx) = drive_in_background(&executor, &id);
    let mut pid = String::new();
    while let Some(committed) = rx.recv().await {
        if let Event::AgentOutput { line, .. } = committed.event
            && let Some(found) = line.strip_prefix("pid ")
        {
            pid = found.to_owned();
            break;
        }
    }
    executor.kill(&id, "stuck").await.expect("kill");
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Failed);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the agent's process {pid} is gone"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    let states: Vec<&str> = agents.iter().map(|a| a.state.as_str()).collect();
    assert_eq!(states, ["canceled", "skipped"]);
    assert!(
        executor.kill(&id, "stuck").await.is_err(),
        "it already ended"
    );
}

async fn on_idle_terminate_releases_the_worktree_and_a_follow_up_attaches_it_again(db: &TestDb) {
    let (repo, executor) = in_repository(db).await;
    let text = "---\nruntime: exec\non_idle: terminate\n---\n# Idle\n\n## note\n> command: { cat; echo; } >> notes.txt && git add notes.txt && git -c user.name=a -c user.email=a@a commit -qm note && grep -c . notes.txt\n\nfirst\n";
    let id = start(&executor, text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let worktree = repo.path().join(".murmur/work").join(&id).join("note");
    assert!(
        !worktree.exists(),
        "the finished agent's worktree is released"
    );
    executor
        .queue_follow_up(&id, "note", "second")
        .await
        .expect("queue");
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        agents[0].response.as_deref(),
        Some("2"),
        "the branch's work was kept"
    );
    assert_eq!(agents[0].commits, 2);
    assert!(!worktree.exists(), "released again");
}
