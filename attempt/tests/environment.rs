//! What an attempt's process sees: the documented base of the machine's environment, the
//! names passed, the run's context and its secrets, opened from what was sealed to the
//! machine's key; and what comes back: secret values masked.

use std::sync::Arc;

use murmur_attempt::{Machine, Settings, secrets};
use murmur_protocol::{
    AttemptKey, AttemptSpec, AttemptUpdate, EnvironmentSpec, ExecSpec, FailureKind, Finished,
    PullRequestDraft, RuntimeSpec, WorkspaceSpec,
};
use murmur_vault::{MachineKey, SecretSet, SecretValue};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

const MARKER: &str = "marker-4f1c9a7e-never-in-plaintext";

fn spec(dir: &std::path::Path, script: &str, environment: EnvironmentSpec) -> AttemptSpec {
    AttemptSpec {
        key: AttemptKey {
            run_id: "run1".into(),
            slug: "env".into(),
            attempt: 1,
        },
        prompt: String::new(),
        runtime: RuntimeSpec::Exec(ExecSpec {
            script: Ok(script.to_owned()),
            script_env: Vec::new(),
        }),
        workspace: WorkspaceSpec {
            repository: dir.join("no-repo").display().to_string(),
            base: None,
            start: None,
            worktree: "run1/env".into(),
            plain: "run1/env".into(),
            branch: "murmur/f/run1/env".into(),
            merge: Vec::new(),
            out: None,
            pull_request: PullRequestDraft {
                id: "run1-env".into(),
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
        timeout_secs: Some(60),
        environment,
        affinity: None,
        tenant: "local".to_owned(),
    }
}

/// Runs the attempt to its end on a machine holding `key`: its output lines and its end.
async fn run(
    dir: &std::path::Path,
    spec: AttemptSpec,
    key: Option<Arc<MachineKey>>,
) -> (
    Vec<String>,
    Result<Finished, murmur_protocol::AttemptFailure>,
) {
    let machine = Arc::new(Machine {
        work_root: dir.join("work"),
        settings: Settings::default(),
        clones: false,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = murmur_attempt::start_keyed(machine, key, spec, tx);
    let mut lines = Vec::new();
    while let Some(update) = rx.recv().await {
        match update {
            AttemptUpdate::Line { text, .. } => lines.push(text),
            AttemptUpdate::Ended { outcome } => return (lines, outcome),
            _ => {}
        }
    }
    panic!("the attempt ended without saying how");
}

fn marker_secret() -> SecretSet {
    let mut set = SecretSet::new();
    set.insert("DEPLOY_TOKEN", SecretValue::new(MARKER.as_bytes().to_vec()))
        .expect("a valid secret");
    set
}

#[tokio::test]
async fn the_machine_environment_is_not_inherited_but_the_base_and_passed_names_are() {
    // Cargo sets these for the test process; an agent must not see them unless passed.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo "path=${PATH:+set} pkg=${CARGO_PKG_NAME:-unset} manifest=${CARGO_MANIFEST_DIR:-unset} run=$MURMUR_RUN_ID""#;
    let pass = EnvironmentSpec {
        pass: vec!["CARGO_PKG_NAME".into()],
        ..EnvironmentSpec::default()
    };
    let (lines, outcome) = run(dir.path(), spec(dir.path(), script, pass), None).await;
    outcome.expect("the attempt succeeds");
    assert_eq!(
        lines,
        ["path=set pkg=murmur-attempt manifest=unset run=run1"],
        "PATH is in the base, CARGO_PKG_NAME is passed, CARGO_MANIFEST_DIR is neither"
    );
}

#[tokio::test]
async fn the_workspaces_variables_win_over_the_machines_and_lose_to_the_run_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(MachineKey::generate());
    let sealed = secrets::seal(&key.public(), &marker_secret(), &spec_key()).expect("sealed");
    let proof = dir.path().join("ran");
    let variable = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let environment = EnvironmentSpec {
        pass: vec!["CARGO_PKG_NAME".into()],
        variables: vec![
            variable("STAGE", "staging"),
            variable("CARGO_PKG_NAME", "from-the-workspace"),
            variable("MURMUR_RUN_ID", "not-the-run"),
            variable("DEPLOY_TOKEN", "not-the-secret"),
            variable(
                "TRICK",
                &format!("$(touch {}) `touch {}`", proof.display(), proof.display()),
            ),
        ],
        sealed_secrets: Some(sealed),
    };
    let script = r#"echo "stage=$STAGE pkg=$CARGO_PKG_NAME run=$MURMUR_RUN_ID token=$DEPLOY_TOKEN"; printf '%s\n' "$TRICK""#;
    let (lines, outcome) = run(dir.path(), spec(dir.path(), script, environment), Some(key)).await;
    outcome.expect("the attempt succeeds");
    assert_eq!(
        lines[0], "stage=staging pkg=from-the-workspace run=run1 token=***",
        "{lines:?}"
    );
    assert!(lines[1].starts_with("$(touch "), "{lines:?}");
    assert!(!proof.exists(), "a variable's value is data, never run");
}

#[tokio::test]
async fn sealed_secrets_reach_the_agent_and_come_back_masked() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(MachineKey::generate());
    let sealed = secrets::seal(&key.public(), &marker_secret(), &spec_key()).expect("sealed");
    assert!(!sealed.contains(MARKER));
    let environment = EnvironmentSpec {
        pass: Vec::new(),
        sealed_secrets: Some(sealed),
        ..EnvironmentSpec::default()
    };
    let script = r#"printf %s "$DEPLOY_TOKEN" | sha256sum | cut -d' ' -f1; echo "the value: $DEPLOY_TOKEN"; echo "$DEPLOY_TOKEN" >&2"#;
    let (lines, outcome) = run(dir.path(), spec(dir.path(), script, environment), Some(key)).await;
    let finished = outcome.expect("the attempt succeeds");
    let hash = hex::encode(Sha256::digest(MARKER.as_bytes()));
    assert_eq!(lines, [hash.as_str(), "the value: ***", "***"]);
    assert!(!finished.response.contains(MARKER), "{}", finished.response);
}

#[tokio::test]
async fn secrets_sealed_to_another_machine_fail_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = MachineKey::generate();
    let sealed = secrets::seal(&elsewhere.public(), &marker_secret(), &spec_key()).unwrap();
    let environment = EnvironmentSpec {
        pass: Vec::new(),
        sealed_secrets: Some(sealed),
        ..EnvironmentSpec::default()
    };
    let here = Arc::new(MachineKey::generate());
    let script = "echo should-not-run";
    let (lines, outcome) = run(
        dir.path(),
        spec(dir.path(), script, environment),
        Some(here),
    )
    .await;
    let failure = outcome.expect_err("cannot open");
    assert_eq!(failure.kind, FailureKind::Failed);
    assert!(
        failure.message.contains("cannot open"),
        "{}",
        failure.message
    );
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn a_failure_message_masks_the_secret_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(MachineKey::generate());
    let sealed = secrets::seal(&key.public(), &marker_secret(), &spec_key()).unwrap();
    let environment = EnvironmentSpec {
        pass: Vec::new(),
        sealed_secrets: Some(sealed),
        ..EnvironmentSpec::default()
    };
    let script = r#"echo "bad token $DEPLOY_TOKEN" >&2; exit 1"#;
    let (_, outcome) = run(dir.path(), spec(dir.path(), script, environment), Some(key)).await;
    let failure = outcome.expect_err("fails");
    assert!(!failure.message.contains(MARKER), "{}", failure.message);
    assert!(
        failure.message.contains("bad token ***"),
        "{}",
        failure.message
    );
}

fn spec_key() -> AttemptKey {
    AttemptKey {
        run_id: "run1".into(),
        slug: "env".into(),
        attempt: 1,
    }
}
