//! An attempt's phases (`agent_placed`, `agent_running`) ride the next checkpoint instead of
//! forcing one of their own, and are still committed on their own, soon, when nothing else
//! comes: a reader sees an agent `running` while its process works.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::{AgentState, Event, RunStatus};
use support::{drive_in_background, executor, start, until};

every_backend!(an_agent_that_works_on_is_recorded_running_while_it_works);

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

async fn an_agent_that_works_on_is_recorded_running_while_it_works(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    // The agent's process blocks on this FIFO until the test writes to it: it works on,
    // reporting nothing, for as long as the test looks.
    let gate = work.path().join("gate");
    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", gate.display());
    let text = format!(
        "---\nruntime: exec\n---\n# Works on\n\n## only\n\n```sh\nread line < '{}'\necho \"$line\"\n```\n",
        gate.display()
    );
    let id = start(&executor, &text).await;
    let (driving, mut events) = drive_in_background(&executor, &id);
    let running = until(&mut events, |e| matches!(e, Event::AgentRunning { .. }));
    tokio::time::timeout(DEADLINE, running)
        .await
        .expect("running is committed while the agent works");
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].state, AgentState::Running.as_str(), "{agents:?}");
    assert!(agents[0].machine.is_some(), "{agents:?}");
    // Opening the FIFO for writing lets the agent go on; it prints what it read and ends.
    let gate_path = gate.clone();
    tokio::task::spawn_blocking(move || std::fs::write(gate_path, "done\n"))
        .await
        .expect("task")
        .expect("write to the FIFO");
    let status = tokio::time::timeout(DEADLINE, driving).await.expect("ends");
    assert_eq!(status.expect("task").expect("drive"), RunStatus::Completed);
    let stored = executor.store.events(&id, 0).await.expect("events");
    let kinds: Vec<&str> = stored
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| k.starts_with("agent_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "agent_queued",
            "agent_started",
            "agent_placed",
            "agent_running",
            "agent_output",
            "agent_succeeded"
        ]
    );
}
