//! Acts recorded from outside a run's driver (an approval, a kill) against a run whose agents
//! print lines fast, on every backend: output lines do not move what an act is judged on, so
//! the act goes in on its first try and the driver takes it in.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::event::GateKind;
use murmur_engine::executor::Verdict;
use murmur_engine::lease::Owner;
use murmur_engine::store::{Acquired, Commit};
use murmur_engine::{Event, RunStatus, Stream, store};
use support::{drive_in_background, executor, start};

every_backend!(
    an_act_goes_in_after_output_lines_on_its_first_try,
    an_approval_and_a_kill_reach_a_run_printing_lines_fast,
);

fn line(n: usize) -> Event {
    Event::AgentOutput {
        slug: "talk".into(),
        attempt: 1,
        stream: Stream::Stdout,
        line: format!("line {n}"),
    }
}

async fn an_act_goes_in_after_output_lines_on_its_first_try(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let id = start(
        &base,
        "---\nruntime: exec\n---\n# T\n\n## talk\n\n```sh\ntrue\n```\n",
    )
    .await;
    let owner = Owner::this_process("driver");
    let taken = base
        .store
        .acquire_lease(&id, &owner, &at(0), &at(50))
        .await
        .expect("lease");
    assert!(matches!(taken, Acquired::Taken { epoch: 1, .. }));
    let commit = |version: i64, events: &'static [Event], fence: Option<i64>| {
        let id = id.clone();
        let store = base.store.clone();
        async move {
            store
                .commit(&Commit {
                    run_id: &id,
                    expected_version: version,
                    at: &at(1),
                    events,
                    agents: &[],
                    status: RunStatus::Running,
                    finished_at: None,
                    fence,
                    machines: None,
                })
                .await
        }
    };
    static STARTED: [Event; 1] = [Event::RunStarted];
    assert_eq!(commit(0, &STARTED, Some(1)).await.expect("driver"), 1);
    // An act is judged at version 1; meanwhile the driver commits 40 lines.
    let lines: &'static [Event] = Box::leak((0..40).map(line).collect::<Vec<_>>().into());
    assert_eq!(commit(1, lines, Some(1)).await.expect("lines"), 41);
    static KILL: [Event; 1] = [Event::AgentCanceled {
        slug: String::new(),
    }];
    let act = commit(1, &KILL, None)
        .await
        .expect("the act goes in at once");
    assert_eq!(act, 42, "after the lines, not over them");
    let events = base.store.events(&id, 0).await.expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=42).collect::<Vec<_>>(), "one numbering, no gap");
    assert_eq!(events[41].kind, "agent_canceled");

    // The driver, still at 41, must take the act in before it commits again.
    let behind = commit(41, lines, Some(1)).await;
    assert!(
        matches!(behind, Err(store::Error::Conflict { .. })),
        "{behind:?}"
    );
    // An act judged before another act (not only lines) is judged again.
    let stale = commit(1, &KILL, None).await;
    assert!(
        matches!(stale, Err(store::Error::Conflict { .. })),
        "{stale:?}"
    );
}

/// A moment on the test's timeline, `seconds` after noon.
fn at(seconds: u32) -> String {
    format!("2026-06-01T12:00:{seconds:02}.000Z")
}

async fn an_approval_and_a_kill_reach_a_run_printing_lines_fast(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    // `talk` prints about 1,000 lines/s until it is killed; `draft` waits for a person.
    let text = "---\nruntime: exec\n---\n# Busy\n\n## talk\n\n```sh\ni=0\nwhile true; do\n  for n in 0 1 2 3 4 5 6 7 8 9; do echo \"line $i.$n\"; done\n  i=$((i+1)); sleep 0.01\ndone\n```\n\n## draft\n> gate: approve\n\nWrite it.\n\n```sh\ncat\n```\n";
    let id = start(&executor, text).await;
    let (driving, mut rx) = drive_in_background(&executor, &id);
    let (mut waiting, mut lines) = (false, 0);
    while !waiting || lines < 200 {
        let committed = rx.recv().await.expect("the run goes on");
        match committed.event {
            Event::GateOpened {
                gate: GateKind::Approve,
                ..
            } => waiting = true,
            Event::AgentOutput { slug, .. } if slug == "talk" => lines += 1,
            _ => {}
        }
    }
    let approve = Verdict {
        approve: true,
        comment: None,
    };
    executor
        .decide_gate(&id, "draft", &approve)
        .await
        .expect("approved while lines flow");
    let mut approved = false;
    while !approved {
        let committed = rx.recv().await.expect("the run goes on");
        approved =
            matches!(committed.event, Event::AgentSucceeded { ref slug, .. } if slug == "draft");
    }
    executor
        .kill(&id, "talk")
        .await
        .expect("killed while it talks");
    let status = driving.await.expect("join").expect("drive");
    assert_ne!(status, RunStatus::Completed, "a killed agent fails its run");
    let agents = executor.store.agents(&id).await.expect("agents");
    let states: Vec<(&str, &str)> = agents
        .iter()
        .map(|a| (a.slug.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(states, [("talk", "canceled"), ("draft", "completed")]);
}
