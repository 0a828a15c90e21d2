//! `murmur runs prune`: the real binary on a real git repository with real runs. Completed
//! runs lose their worktrees (and with --branches their branches), failed ones only when
//! asked, running ones and the user's branches never; a dry run removes nothing.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::db::Backend;
use support::fixture::Fixture;

const OK: &str = "---\nruntime: exec\n---\n# Ok\n\n## a\n> command: echo done-a\n\n## b\n> needs: a\n> command: echo done-b\n";
const BAD: &str = "---\nruntime: exec\n---\n# Bad\n\n## boom\n> command: echo trying; exit 3\n";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts a run of `flight` and returns its id once it ended with `expected` exit status.
fn run_to_end(fixture: &Fixture, flight: &str, expected: i32) -> String {
    let out = fixture.murmur(&["flight", "run", flight, "--json"]);
    assert_eq!(out.status.code(), Some(expected), "{}", text(&out));
    let list = fixture.murmur(&["runs", "ls", "--json"]);
    let runs: Value = serde_json::from_slice(&list.stdout).expect("runs ls --json");
    runs[0]["id"].as_str().expect("the newest run").to_owned()
}

fn prune(fixture: &Fixture, args: &[&str]) -> Value {
    let mut all = vec!["runs", "prune", "--json"];
    all.extend_from_slice(args);
    let out = fixture.murmur(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn branches(repo: &Path) -> BTreeSet<String> {
    murmur_testkit::git::git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/murmur/",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

fn refs_of(repo: &Path, run: &str) -> usize {
    murmur_testkit::git::git(
        repo,
        &["for-each-ref", "--format=%(refname)", "refs/murmur/"],
    )
    .lines()
    .filter(|name| name.contains(run))
    .count()
}

fn work(fixture: &Fixture, run: &str) -> std::path::PathBuf {
    fixture.path(&format!(".murmur/work/{run}"))
}

/// The bytes of the files under `dir`, as the test measures them.
fn size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.path().symlink_metadata().expect("metadata");
        total += if meta.is_dir() {
            size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn totals(report: &Value) -> (u64, u64, u64, u64) {
    let t = &report["totals"];
    let n = |key: &str| {
        t[key]
            .as_u64()
            .unwrap_or_else(|| panic!("totals.{key}: {report}"))
    };
    (n("runs"), n("worktrees"), n("branches"), n("bytes"))
}

fn ids(report: &Value) -> BTreeSet<String> {
    report["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["id"].as_str().expect("id").to_owned())
        .collect()
}

fn finished_runs_lose_worktrees_then_branches_but_nothing_else(backend: &Backend) {
    let fixture = Fixture::with_history(backend, "prune");
    let repo = fixture.repo();
    fixture.write_flight("ok", OK);
    fixture.write_flight("bad", BAD);
    let go = fixture.path("go");
    // The agent reports once it runs: its worktree is made before it starts.
    let beacon = support::beacon::Beacon::bind();
    fixture.write_flight(
        "slow",
        &format!(
            "---\nruntime: exec\n---\n# Job\n\n## wait\n> command: {}; until [ -e {} ]; do sleep 0.05; done; echo released\n",
            beacon.signal(),
            go.display()
        ),
    );
    let done: Vec<String> = (0..3).map(|_| run_to_end(&fixture, "ok", 0)).collect();
    let failed = run_to_end(&fixture, "bad", 1);
    let started = fixture.murmur(&["flight", "run", "slow", "--detach"]);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started));
    let running = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    beacon.wait("the slow agent");
    let worktree = work(&fixture, &running).join("wait/.git");
    assert!(worktree.is_file(), "the running agent's worktree");
    // A branch of the user's where a run's branches live: never Murmur's to delete.
    let mine = format!("murmur/ok/{}/mine", done[0]);
    murmur_testkit::git::git(repo, &["branch", &mine]);
    let all_branches = branches(repo);
    assert_eq!(all_branches.len(), 3 * 2 + 1 + 1 + 1, "{all_branches:?}");

    // Everything here finished moments ago: the default age keeps it all.
    assert_eq!(totals(&prune(&fixture, &[])), (0, 0, 0, 0));

    let expected_bytes: u64 = done.iter().map(|run| size(&work(&fixture, run))).sum();
    let dry = prune(&fixture, &["--older-than", "0", "--dry-run", "--branches"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(totals(&dry), (3, 6, 6, expected_bytes), "{dry}");
    assert_eq!(ids(&dry), done.iter().cloned().collect());
    assert_eq!(dry["retryable_kept"], serde_json::json!([failed]));
    assert!(
        done.iter()
            .all(|run| work(&fixture, run).join("a/.git").is_file())
    );
    assert_eq!(branches(repo), all_branches, "a dry run deletes nothing");

    let pruned = prune(&fixture, &["--older-than", "0"]);
    assert_eq!(totals(&pruned), (3, 6, 0, expected_bytes), "{pruned}");
    for run in &done {
        assert!(!work(&fixture, run).exists(), "{run}'s worktrees are gone");
    }
    assert_eq!(
        branches(repo),
        all_branches,
        "branches stay without --branches"
    );
    assert!(
        work(&fixture, &failed).join("boom/.git").is_file(),
        "the failed run is kept"
    );
    assert!(
        work(&fixture, &running).join("wait/.git").is_file(),
        "the running run is kept"
    );
    let listed = murmur_testkit::git::git(repo, &["worktree", "list", "--porcelain"]);
    assert!(
        done.iter().all(|run| !listed.contains(run.as_str())),
        "{listed}"
    );
    assert_eq!(
        totals(&prune(&fixture, &["--older-than", "0"])),
        (0, 0, 0, 0),
        "nothing left"
    );

    let with_branches = prune(&fixture, &["--older-than", "0", "--branches"]);
    assert_eq!(totals(&with_branches), (3, 0, 6, 0), "{with_branches}");
    let first = with_branches["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|run| run["id"] == done[0].as_str())
        .expect("the first run");
    assert_eq!(
        first["kept_branches"][0]["branch"],
        mine.as_str(),
        "{first}"
    );
    let left = branches(repo);
    assert!(left.contains(&mine), "{left:?}");
    assert!(
        done.iter().all(|run| refs_of(repo, run) == 0),
        "murmur's refs for them go too"
    );
    assert_eq!(
        left.iter().filter(|b| b.contains(failed.as_str())).count(),
        1
    );
    assert_eq!(
        left.iter().filter(|b| b.contains(running.as_str())).count(),
        1
    );

    let retryable = prune(
        &fixture,
        &["--older-than", "0", "--branches", "--include-retryable"],
    );
    let (runs, worktrees, deleted, bytes) = totals(&retryable);
    assert_eq!((runs, worktrees, deleted), (1, 1, 1), "{retryable}");
    assert!(bytes > 0, "{retryable}");
    assert_eq!(ids(&retryable), BTreeSet::from([failed.clone()]));
    assert!(!work(&fixture, &failed).exists());
    assert!(
        work(&fixture, &running).join("wait/.git").is_file(),
        "never a running run"
    );

    std::fs::write(&go, "").expect("release the slow run");
    let finished = fixture.murmur(&["wait", &format!("{running}/wait"), "--timeout", "60s"]);
    assert_eq!(finished.status.code(), Some(0), "{}", text(&finished));
    let last = prune(&fixture, &["--older-than", "0", "--branches"]);
    assert_eq!(ids(&last), BTreeSet::from([running.clone()]), "{last}");
    assert_eq!(branches(repo), BTreeSet::from([mine]));
}

every_backend!(finished_runs_lose_worktrees_then_branches_but_nothing_else);

#[test]
fn the_text_report_names_each_run_and_the_totals() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "prune-text");
    fixture.write_flight("ok", OK);
    fixture.write_flight("bad", BAD);
    let run = run_to_end(&fixture, "ok", 0);
    run_to_end(&fixture, "bad", 1);
    let dry = fixture.murmur(&["runs", "prune", "--older-than", "0", "--dry-run"]);
    let report = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!(
            "would prune run {run} (ok, completed): 2 worktrees ("
        )),
        "{report}"
    );
    assert!(
        report.contains("would prune 1 run: 2 worktrees ("),
        "{report}"
    );
    assert!(
        report.contains("kept 1 failed or canceled run that `murmur runs retry` can still run"),
        "{report}"
    );
    let done = fixture.murmur(&["runs", "prune", "--older-than", "0", "--branches"]);
    let report = text(&done);
    assert!(report.contains("pruned 1 run: 2 worktrees ("), "{report}");
    assert!(report.ends_with("2 branches\nkept 1 failed or canceled run that `murmur runs retry` can still run (--include-retryable prunes them too)\n"), "{report}");
}

#[test]
fn a_completed_run_whose_worktrees_were_pruned_takes_a_follow_up() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "prune-follow-up");
    fixture.write_flight("ok", OK);
    let run = run_to_end(&fixture, "ok", 0);
    prune(&fixture, &["--older-than", "0"]);
    assert!(!work(&fixture, &run).exists());
    let again = fixture.murmur(&["queue", "add", &format!("{run}/b"), "once more"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        work(&fixture, &run).join("b/.git").is_file(),
        "the branch is attached again"
    );
    let show = fixture.show(&run);
    assert_eq!(show["status"], "completed", "{show}");
}

#[test]
fn bad_ages_are_refused_and_a_repository_without_runs_has_nothing_to_prune() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "prune-usage");
    for bad in ["7", "7w", "-1d", ""] {
        let out = fixture.murmur(&["runs", "prune", &format!("--older-than={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        assert!(text(&out).contains("--older-than"), "{}", text(&out));
    }
    let empty = tempfile::tempdir().expect("temp dir");
    let out = support::murmur_output(empty.path(), &["runs", "prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to prune"), "{}", text(&out));
    assert!(
        !empty.path().join(".murmur").exists(),
        "pruning never creates a store"
    );
}

const FIXED: &str = "---\nruntime: exec\non_idle: terminate\n---\n# Fixed\n\n## a\n> branch: team/fixed\n> command: echo one\n";
const FIXED_THEN_FAIL: &str = "---\nruntime: exec\non_idle: terminate\n---\n# Fixed then fail\n\n## a\n> branch: team/fixed\n> command: echo two\n\n## b\n> needs: a\n> command: exit 1\n";

#[test]
fn a_branch_another_kept_run_works_on_stays() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "prune-shared-branch");
    let repo = fixture.repo();
    fixture.write_flight("fixed", FIXED);
    fixture.write_flight("fixedbad", FIXED_THEN_FAIL);
    let first = run_to_end(&fixture, "fixed", 0);
    let second = run_to_end(&fixture, "fixedbad", 1);
    let has_fixed = || {
        murmur_testkit::git::git(repo, &["branch", "--list", "team/fixed"]).contains("team/fixed")
    };
    assert!(has_fixed());
    let kept = prune(&fixture, &["--older-than", "0", "--branches"]);
    assert_eq!(ids(&kept), BTreeSet::from([first.clone()]), "{kept}");
    assert_eq!(
        kept["runs"][0]["kept_branches"][0]["branch"], "team/fixed",
        "{kept}"
    );
    assert_eq!(
        kept["runs"][0]["kept_branches"][0]["reason"], "another run works on it too",
        "{kept}"
    );
    assert!(has_fixed(), "the failed run still needs it");
    let both = prune(
        &fixture,
        &["--older-than", "0", "--branches", "--include-retryable"],
    );
    assert_eq!(ids(&both), BTreeSet::from([first, second]), "{both}");
    assert_eq!(both["runs"][0]["branches"][0], "team/fixed", "{both}");
    assert!(!has_fixed(), "no kept run needs it any more: {both}");
    assert_eq!(branches(repo), BTreeSet::new(), "{both}");
}
