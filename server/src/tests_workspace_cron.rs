//! Schedules of a workspace's flights: they fire in the workspace, apart from the server's own
//! flight of the same name, from the flight as the workspace's origin has it at the tick.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use murmur_engine::Clock;
use murmur_engine::clock::ManualClock;
use murmur_engine::workspace::{Workspace, WorkspaceRepository};

use super::tests::{fixture_with, live_events};

/// Every day at 02:00 UTC, printing the repository's marker.
const REPORT: &str = "---\nruntime: exec\non:\n  schedule: { cron: \"0 2 * * *\" }\n---\n# Nightly\n\n## report\n> command: echo \"{VERSION}: $(cat marker.txt)\"\n";

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

/// Commits the report flight at `version` to the origin, through the clone `work`.
fn commit_report(work: &Path, version: &str) {
    std::fs::create_dir_all(work.join(".murmur/flights")).expect("mkdir");
    std::fs::write(
        work.join(".murmur/flights/nightly.md"),
        REPORT.replace("{VERSION}", version),
    )
    .expect("flight");
    std::fs::write(work.join("marker.txt"), "the team repository\n").expect("marker");
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", version]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
}

fn workspace(url: &Path) -> Workspace {
    Workspace {
        name: "team".to_owned(),
        repositories: vec![WorkspaceRepository {
            url: url.display().to_string(),
            base: None,
            conflict_resolution: Default::default(),
            credential: None,
        }],
        defaults: Default::default(),
        min_idle: 0,
        created_at: String::new(),
    }
}

#[tokio::test]
async fn a_workspace_flights_schedule_fires_in_the_workspace_from_its_origin() {
    let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(at("2026-03-02T00:30:00Z")));
    let (f, state) = fixture_with(clock.clone()).await;
    let origins = tempfile::tempdir().expect("temp dir");
    let origin = origins.path().join("team.git");
    let work = origins.path().join("work");
    std::fs::create_dir_all(&origin).expect("mkdir");
    git(&origin, &["init", "-q", "--bare"]);
    git(origins.path(), &["clone", "-q", "team.git", "work"]);
    commit_report(&work, "v1");
    state
        .executor()
        .add_workspace(workspace(&origin))
        .await
        .expect("the workspace is added");
    let started = clock.now();

    // The server's own `nightly` (02:00 Berlin, 01:00 UTC) and the workspace's (02:00 UTC)
    // are two schedules, each firing once.
    clock.advance(chrono::Duration::minutes(31));
    let own = super::cron::fire_due(&state, started).await;
    assert_eq!(own.len(), 1, "only the server's own is owed at 01:01");
    clock.advance(chrono::Duration::minutes(30));
    commit_report(&work, "v2");
    clock.advance(chrono::Duration::minutes(30));
    let team = super::cron::fire_due(&state, started).await;
    assert_eq!(team.len(), 1, "the workspace's is owed at 02:01: {team:?}");
    assert!(
        super::cron::fire_due(&state, started).await.is_empty(),
        "each fires once"
    );

    let (_, sse) = live_events(&f.app, &team[0], None).await;
    assert!(
        sse.contains("v2: the team repository"),
        "the flight as the origin has it at the tick, in the workspace's repository: {sse}"
    );
    let recorded = state.store().run_workspace(&team[0]).await.expect("read");
    assert_eq!(recorded.as_deref(), Some("team"));
}
