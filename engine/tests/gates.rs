//! Gates end to end on every backend: `ci` feedback loops, `approve` decisions from another
//! "process", `merge`, and an unanswered check repeated after a restart.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::event::GateKind;
use murmur_engine::executor::{Committed, Executor, Verdict};
use murmur_engine::{Event, RunStatus};
use murmur_testkit::git::git;
use support::{drive, drive_in_background, executor, in_repository, start};
use tokio::sync::mpsc;

every_backend!(
    a_ci_gate_that_fails_once_sends_its_failure_back_to_the_agent,
    ci_failures_beyond_the_retries_fail_the_agent,
    a_rejection_reaches_the_agent_and_an_approval_completes_it,
    the_merge_gate_merges_the_branch_into_the_base,
    an_unanswered_check_runs_again_after_a_restart,
    a_ci_check_sees_the_agents_environment_not_the_engines,
);

/// A repository with one commit, and an executor whose `ci` check is `check`.
async fn checked_by(db: &TestDb, check: &str) -> (tempfile::TempDir, Executor) {
    let (repo, mut executor) = in_repository(db).await;
    executor.check_command = Some(check.to_owned());
    (repo, executor)
}

/// An agent that prints its input and, when it is working on feedback, commits `fixed.txt`.
const FIXER: &str = "```sh\ncat\nif [ -n \"$MURMUR_FOLLOW_UP\" ]; then echo ok > fixed.txt && git add fixed.txt && git -c user.name=a -c user.email=a@a commit -qm fix; fi\necho \"done on attempt $MURMUR_ATTEMPT\"\n```\n";
const CHECK: &str = "test -f fixed.txt || { echo 'fixed.txt is missing'; exit 3; }";

fn lines_of<'e>(events: &'e [Event], who: &str, attempt_wanted: u32) -> Vec<&'e str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AgentOutput {
                slug,
                line,
                attempt,
                ..
            } if slug == who && *attempt == attempt_wanted => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

async fn a_ci_gate_that_fails_once_sends_its_failure_back_to_the_agent(db: &TestDb) {
    let (_repo, executor) = checked_by(db, CHECK).await;
    let text = format!(
        "---\nruntime: exec\nretries: 1\n---\n# CI\n\n## build\n> gate: ci\n\nBuild it.\n\n{FIXER}\n## after\n> needs: build\n> command: echo after\n"
    );
    let id = start(&executor, &text).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    let gates: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::GatePassed { .. } | Event::GateFailed { .. }))
        .collect();
    assert!(
        matches!(
            gates[..],
            [Event::GateFailed { .. }, Event::GatePassed { .. }]
        ),
        "{gates:?}"
    );
    let second = lines_of(&events, "build", 2);
    assert!(
        second.iter().any(|l| l.contains("The `ci` gate failed"))
            && second.contains(&"fixed.txt is missing"),
        "the follow-up carries the check's failure: {second:?}"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        (
            agents[0].state.as_str(),
            agents[0].attempts,
            agents[0].commits
        ),
        ("completed", 2, 1)
    );
    assert_eq!(agents[1].state, "completed");
}

async fn ci_failures_beyond_the_retries_fail_the_agent(db: &TestDb) {
    let (_repo, executor) = checked_by(db, "exit 1").await;
    let text = "---\nruntime: exec\n---\n# CI\n\n## build\n> gate: ci\n> command: echo built\n\n## after\n> needs: build\n> command: echo after\n";
    let id = start(&executor, text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Failed);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].state, "failed");
    let error = agents[0].error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("the `ci` gate did not pass after 0 follow-up round(s)"),
        "{error}"
    );
    assert_eq!(agents[1].state, "skipped");
}

/// Reads committed events until `wanted` says stop.
async fn until(
    events: &mut mpsc::UnboundedReceiver<Committed>,
    seen: &mut Vec<Event>,
    wanted: impl Fn(&Event) -> bool,
) {
    while let Some(committed) = events.recv().await {
        let done = wanted(&committed.event);
        seen.push(committed.event);
        if done {
            return;
        }
    }
    panic!("the run ended first: {seen:?}");
}

fn waits_for_approval(event: &Event) -> bool {
    matches!(
        event,
        Event::GateOpened {
            gate: GateKind::Approve,
            ..
        }
    )
}

async fn a_rejection_reaches_the_agent_and_an_approval_completes_it(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let text = "---\nruntime: exec\n---\n# Approve\n\n## draft\n> gate: approve\n\nWrite it.\n\n```sh\ncat\n```\n";
    let id = start(&executor, text).await;
    let (driving, mut rx) = drive_in_background(&executor, &id);
    let mut seen = Vec::new();
    until(&mut rx, &mut seen, waits_for_approval).await;
    let state = executor.store.agents(&id).await.expect("agents")[0]
        .state
        .clone();
    assert_eq!(
        state, "checks-pending",
        "waiting for a person holds no machine"
    );
    let reject = Verdict {
        approve: false,
        comment: Some("Say hello in French.".into()),
    };
    executor
        .decide_gate(&id, "draft", &reject)
        .await
        .expect("reject");
    until(&mut rx, &mut seen, waits_for_approval).await;
    let second = lines_of(&seen, "draft", 2);
    assert!(
        second.contains(&"Say hello in French."),
        "the comment is the agent's next prompt: {second:?}"
    );
    let wrong = executor.decide_gate(&id, "nobody", &reject).await;
    assert!(wrong.is_err(), "an unknown agent is refused");
    let approve = Verdict {
        approve: true,
        comment: None,
    };
    executor
        .decide_gate(&id, "draft", &approve)
        .await
        .expect("approve");
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Completed);
    let again = executor.decide_gate(&id, "draft", &approve).await;
    assert!(again.is_err(), "a completed agent waits for nothing");
}

async fn the_merge_gate_merges_the_branch_into_the_base(db: &TestDb) {
    let (repo, executor) = checked_by(db, "true").await;
    let text = "---\nruntime: exec\n---\n# Merge\n\n## write\n> gate: ci, merge\n\n```sh\necho hi > hi.txt && git add hi.txt && git -c user.name=a -c user.email=a@a commit -qm hi\n```\n";
    let id = start(&executor, text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    assert_eq!(git(repo.path(), &["show", "main:hi.txt"]), "hi");
    assert_eq!(
        git(
            repo.path(),
            &["status", "--porcelain", "--untracked-files=no"]
        ),
        "",
        "the checkout stays clean"
    );
}

/// The engine stops while the `ci` check runs: the next engine runs the check again.
async fn an_unanswered_check_runs_again_after_a_restart(db: &TestDb) {
    let (repo, mut executor) = checked_by(db, "").await;
    let release = repo.path().join(".murmur/release");
    executor.check_command = Some(format!(
        "while [ ! -f {} ]; do sleep 0.05; done",
        release.display()
    ));
    let text =
        "---\nruntime: exec\n---\n# Restart\n\n## build\n> gate: ci\n> command: echo built\n";
    let id = start(&executor, text).await;
    let (driving, mut rx) = drive_in_background(&executor, &id);
    let mut seen = Vec::new();
    until(&mut rx, &mut seen, |e| {
        matches!(e, Event::GateOpened { .. })
    })
    .await;
    driving.abort();
    let _ = driving.await;
    std::fs::write(&release, "").expect("release");
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert!(
        matches!(
            events[..],
            [
                Event::GateInterrupted { .. },
                Event::GateOpened { .. },
                Event::GatePassed { .. },
                ..
            ]
        ),
        "the check was interrupted and ran again, opened within the pool: {events:?}"
    );
}

/// The `ci` check runs the agent's code, so it gets what agents get: the documented base, the
/// passed names and its own variables, never the engine's whole environment.
async fn a_ci_check_sees_the_agents_environment_not_the_engines(db: &TestDb) {
    // cargo gives the test process (the engine here) variables no agent may see.
    assert!(
        std::env::var("CARGO_MANIFEST_DIR").is_ok(),
        "run under cargo"
    );
    let (repo, mut executor) = checked_by(db, "").await;
    let seen = repo.path().join(".murmur/check-env");
    executor.check_command = Some(format!("env > {}", seen.display()));
    executor.environment.pass = vec!["CARGO_PKG_NAME".to_owned()];
    let text = "---\nruntime: exec\n---\n# Env\n\n## build\n> gate: ci\n> command: echo built\n";
    let id = start(&executor, text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let env = std::fs::read_to_string(&seen).expect("the check wrote its environment");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(&"PATH") && names.contains(&"HOME"),
        "{names:?}"
    );
    assert!(env.contains("MURMUR_GATE=ci"), "{env}");
    assert!(
        names.contains(&"CARGO_PKG_NAME"),
        "a passed name is kept: {names:?}"
    );
    assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("MURMUR_TEST_")),
        "{names:?}"
    );
}
