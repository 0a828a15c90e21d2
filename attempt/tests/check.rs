//! A gate check on its own, as a worker that never ran the agent runs it: its own clone of the
//! repository, the agent's branch fetched and checked out again, the check command run there,
//! and a typed verdict back.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use murmur_attempt::{Machine, Settings};
use murmur_protocol::{AttemptKey, AttemptSpec, AttemptUpdate, CheckSpec, RuntimeSpec, Verdict};
use tokio::sync::mpsc;

const BRANCH: &str = "murmur/f/run1/build";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository whose agent branch (marked as Murmur's) adds `fixed.txt`.
fn repository(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# r\n").expect("write");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "start"]);
    let base = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["switch", "-q", "-c", BRANCH]);
    std::fs::write(dir.join("fixed.txt"), "ok\n").expect("write");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "fix"]);
    git(dir, &["switch", "-q", "main"]);
    git(
        dir,
        &["update-ref", &format!("refs/murmur/start/{BRANCH}"), &base],
    );
}

fn check_spec(repository: &Path, command: &str) -> AttemptSpec {
    AttemptSpec {
        key: AttemptKey {
            run_id: "run1".into(),
            slug: "build:ci:7".into(),
            attempt: 1,
        },
        prompt: String::new(),
        runtime: RuntimeSpec::Check(CheckSpec::Ci {
            command: command.to_owned(),
        }),
        // From its wire form: the fields a check leaves at their defaults stay unnamed.
        workspace: serde_json::from_value(serde_json::json!({
            "repository": repository.display().to_string(),
            "base": null,
            "start": null,
            "worktree": "run1/build",
            "plain": "run1/build",
            "branch": BRANCH,
            "merge": [],
            "out": null,
            "pull_request": { "id": "run1-build", "title": "t" },
            "required": true,
        }))
        .expect("a workspace"),
        env: vec![("MURMUR_GATE".into(), "ci".into())],
        upstream: Vec::new(),
        timeout_secs: None,
        environment: Default::default(),
        affinity: None,
        tenant: "local".to_owned(),
    }
}

/// The check's verdict on a machine with its own clones below `work`.
async fn verdict(work: &Path, spec: AttemptSpec) -> Verdict {
    let machine = Arc::new(Machine {
        work_root: work.to_path_buf(),
        settings: Settings::default(),
        clones: true,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = murmur_attempt::start(machine, spec, tx);
    while let Some(update) = rx.recv().await {
        if let AttemptUpdate::Ended { outcome } = update {
            let finished = outcome.expect("the check ran");
            return finished.verdict.expect("a check has a verdict");
        }
    }
    panic!("the check ended without its end");
}

#[tokio::test]
async fn a_machine_that_never_ran_the_agent_checks_its_branch_in_a_clone() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    repository(&origin);
    let work = dir.path().join("work");
    let command = "test -f fixed.txt && echo \"checked $MURMUR_GATE in $PWD\"";
    let passed = verdict(&work, check_spec(&origin, command)).await;
    assert!(matches!(passed, Verdict::Passed(_)), "{passed:?}");
    let worktree = work.join("run1/build");
    assert!(
        worktree.join("fixed.txt").is_file(),
        "the agent's branch is checked out"
    );
    assert_eq!(git(&worktree, &["branch", "--show-current"]), BRANCH);
    assert!(
        work.join("repositories").is_dir(),
        "in the machine's own clone, not the origin"
    );

    let failing = "echo 'first line'; echo 'what broke'; exit 3";
    let failed = verdict(&work, check_spec(&origin, failing)).await;
    let Verdict::Failed(feedback) = failed else {
        panic!("a failing command fails the gate: {failed:?}");
    };
    assert!(
        feedback.contains("what broke"),
        "the tail goes back: {feedback}"
    );
    assert!(feedback.contains("status 3"), "{feedback}");
}

#[tokio::test]
async fn a_check_without_the_agent_s_worktree_on_the_local_pool_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    repository(&origin);
    let machine = Arc::new(Machine {
        work_root: dir.path().join("work"),
        settings: Settings::default(),
        clones: false,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = murmur_attempt::start(machine, check_spec(&origin, "true"), tx);
    let mut verdict = None;
    while let Some(update) = rx.recv().await {
        if let AttemptUpdate::Ended { outcome } = update {
            verdict = outcome.expect("the check ran").verdict;
        }
    }
    let Some(Verdict::Broken(reason)) = verdict else {
        panic!("no worktree, nothing to check: {verdict:?}");
    };
    assert!(reason.contains("is gone"), "{reason}");
}
