//! The attempt runner on its own: an `AttemptSpec` in, updates out, ending with how it ended.

use std::sync::Arc;

use murmur_attempt::{Machine, Settings};
use murmur_protocol::{
    AttemptKey, AttemptSpec, AttemptUpdate, ExecSpec, FailureKind, Finished, PullRequestDraft,
    RuntimeSpec, Stream, WorkspaceSpec,
};
use tokio::sync::mpsc;

fn exec_spec(
    dir: &std::path::Path,
    script: Result<&str, &str>,
    timeout: Option<u64>,
) -> AttemptSpec {
    AttemptSpec {
        key: AttemptKey {
            run_id: "run1".into(),
            slug: "build".into(),
            attempt: 1,
        },
        prompt: "the prompt".into(),
        runtime: RuntimeSpec::Exec(ExecSpec {
            script: script.map(str::to_owned).map_err(str::to_owned),
            script_env: vec![("MURMUR_REF_1".into(), "$(id) `x`".into())],
        }),
        workspace: WorkspaceSpec {
            // Not a repository: an exec agent runs in a plain folder.
            repository: dir.join("no-repo").display().to_string(),
            base: None,
            start: None,
            worktree: "run1/build".into(),
            plain: "run1/build".into(),
            branch: "murmur/f/run1/build".into(),
            merge: Vec::new(),
            out: None,
            pull_request: PullRequestDraft {
                id: "run1-build".into(),
                title: "t".into(),
            },
            required: false,
            extra: Vec::new(),
            extra_merge: Vec::new(),
            follow_base: None,
            origin: None,
        },
        env: vec![("MURMUR_RUN_ID".into(), "run1".into())],
        upstream: Vec::new(),
        timeout_secs: timeout,
        environment: Default::default(),
        affinity: None,
        tenant: "local".to_owned(),
    }
}

async fn run_to_end(
    spec: AttemptSpec,
    stop_at_start: bool,
) -> (Vec<AttemptUpdate>, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let machine = Arc::new(Machine {
        work_root: work.path().join("work"),
        settings: Settings::default(),
        clones: false,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = murmur_attempt::start(machine, spec, tx);
    let mut updates = Vec::new();
    let mut stop = Some(stop);
    while let Some(update) = rx.recv().await {
        let first_line = matches!(update, AttemptUpdate::Line { .. });
        let ended = matches!(update, AttemptUpdate::Ended { .. });
        updates.push(update);
        if stop_at_start
            && first_line
            && let Some(stop) = stop.take()
        {
            stop.stop();
        }
        if ended {
            break;
        }
    }
    (updates, work.keep())
}

fn outcome(updates: &[AttemptUpdate]) -> &Result<Finished, murmur_protocol::AttemptFailure> {
    match updates.last() {
        Some(AttemptUpdate::Ended { outcome }) => outcome,
        other => panic!("the last update is not the end: {other:?}"),
    }
}

#[tokio::test]
async fn an_exec_attempt_streams_its_lines_and_ends_with_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo "value: $MURMUR_REF_1"; echo "run $MURMUR_RUN_ID" >&2; echo done"#;
    let (updates, _) = run_to_end(exec_spec(dir.path(), Ok(script), None), false).await;
    let lines: Vec<_> = updates
        .iter()
        .filter_map(|u| match u {
            AttemptUpdate::Line { stream, text } => Some((*stream, text.as_str())),
            _ => None,
        })
        .collect();
    assert!(
        lines.contains(&(Stream::Stdout, "value: $(id) `x`")),
        "{lines:?}"
    );
    assert!(lines.contains(&(Stream::Stderr, "run run1")), "{lines:?}");
    let finished = outcome(&updates).as_ref().expect("the attempt succeeds");
    assert!(finished.response.contains("done"), "{}", finished.response);
    assert_eq!(finished.local_pull_request, None);
}

#[tokio::test]
async fn a_refused_script_fails_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Err("the script of agent `build`: a reference inside $(( ))");
    let (updates, _) = run_to_end(exec_spec(dir.path(), refused, None), false).await;
    let failure = outcome(&updates).as_ref().expect_err("refused");
    assert_eq!(failure.kind, FailureKind::Refused);
    assert!(!failure.is_retryable());
}

#[tokio::test]
async fn a_failing_script_is_a_retryable_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (updates, _) = run_to_end(exec_spec(dir.path(), Ok("exit 3"), None), false).await;
    let failure = outcome(&updates).as_ref().expect_err("fails");
    assert_eq!(failure.kind, FailureKind::Failed);
    assert!(failure.is_retryable());
}

#[tokio::test]
async fn the_timeout_stops_the_attempt_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (updates, _) = run_to_end(
        exec_spec(dir.path(), Ok("echo started; exec sleep 30"), Some(1)),
        false,
    )
    .await;
    let failure = outcome(&updates).as_ref().expect_err("times out");
    assert_eq!(failure.kind, FailureKind::TimedOut, "{failure:?}");
    assert!(
        failure.message.contains("timed out after 1s"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_stop_ends_the_attempt_as_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (updates, _) = run_to_end(
        exec_spec(dir.path(), Ok("echo started; exec sleep 30"), None),
        true,
    )
    .await;
    let failure = outcome(&updates).as_ref().expect_err("stopped");
    assert_eq!(failure.kind, FailureKind::Stopped, "{failure:?}");
    assert!(!failure.is_retryable());
}

#[test]
fn a_spec_and_its_updates_cross_the_wire_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let spec = exec_spec(dir.path(), Ok("echo hi"), Some(5));
    let json = serde_json::to_string(&spec).unwrap();
    let back: AttemptSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let update = AttemptUpdate::Ended {
        outcome: Err(murmur_protocol::AttemptFailure::new(
            FailureKind::Lost,
            "gone",
        )),
    };
    let text = serde_json::to_string(&update).unwrap();
    assert_eq!(
        serde_json::from_str::<AttemptUpdate>(&text).unwrap(),
        update
    );
}
