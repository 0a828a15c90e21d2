//! Validate finds what run refuses. `tests/preflight/CASE/` are small repositories (flights,
//! `.murmur/murmur.yaml`, personas) with `expected.json`: every diagnostic `flight validate
//! --json` must report for each flight, and nothing else. Then `flight run` on the real
//! binary: the same findings, and the machine's (a dirty tree, a missing CLI, no `origin`),
//! refuse the run with exit 2 before anything is recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use murmur_testkit::git::git;
use serde_json::{Value, json};

fn murmur(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("MURMUR_DATABASE_URL")
        .env_remove("MURMUR_CLAUDE_BIN")
        .env_remove("MURMUR_CODEX_BIN")
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/preflight")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read corpus") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The diagnostics of one validated file, reduced to what the corpus pins.
fn validate(repo: &Path, path: &str) -> (bool, Vec<Value>, i32) {
    let out = murmur(repo, &["flight", "validate", "--json", path]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", text(&out)));
    let diagnostics = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .clone();
    (
        report["valid"] == json!(true),
        diagnostics,
        out.status.code().unwrap_or(-1),
    )
}

fn matches(got: &Value, want: &Value) -> bool {
    let said = format!("{} {}", got["message"], got["help"]);
    ["severity", "code", "line", "column"]
        .iter()
        .all(|key| got[key] == want[key])
        && want["says"].as_str().is_none_or(|says| said.contains(says))
}

#[test]
fn the_corpus_reports_every_repository_finding_where_it_is_written() {
    let mut checked = 0;
    for case in std::fs::read_dir(corpus()).expect("corpus").flatten() {
        let repo = tempfile::tempdir().expect("temp dir");
        copy_tree(&case.path(), repo.path());
        let expected: serde_json::Map<String, Value> = serde_json::from_str(
            &std::fs::read_to_string(case.path().join("expected.json")).expect("expected.json"),
        )
        .expect("expected.json is JSON");
        let flights = std::fs::read_dir(repo.path().join(".murmur/flights")).expect("flights");
        let names: Vec<String> = flights
            .flatten()
            .filter_map(|f| Some(f.path().file_stem()?.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names.len(),
            expected.len(),
            "{:?}: every flight has an expectation and every expectation a flight",
            case.path()
        );
        for (name, want) in &expected {
            let path = format!(".murmur/flights/{name}.md");
            let (valid, got, code) = validate(repo.path(), &path);
            let label = format!("{}/{name}", case.file_name().to_string_lossy());
            assert_eq!(valid, want["valid"] == json!(true), "{label}: {got:#?}");
            assert_eq!(code, if valid { 0 } else { 1 }, "{label}: exit status");
            let want = want["diagnostics"].as_array().expect("diagnostics");
            assert_eq!(got.len(), want.len(), "{label}: {got:#?}");
            for (got, want) in got.iter().zip(want) {
                assert!(matches(got, want), "{label}: got {got:#}, want {want:#}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "the corpus was read ({checked} flights)");
}

const XMTP: &str = "xmtp-libxmtp-nightly-rebake.md";

/// The real flight of xmtp/libxmtp (`.murmur/nightly-rebake.md` at commit 55b7deac), kept
/// verbatim: its `persona: murmur-programmer` is defined nowhere.
fn xmtp_flight() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(XMTP);
    std::fs::read_to_string(path).expect("fixture")
}

#[test]
fn the_real_libxmtp_flight_has_an_unknown_persona_inside_a_repository_or_outside_one() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join(XMTP), xmtp_flight()).expect("write");
    let inside = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(inside.path().join(".murmur/flights")).expect("mkdir");
    std::fs::write(
        inside.path().join(".murmur/flights/nightly-rebake.md"),
        xmtp_flight(),
    )
    .expect("write");
    for (dir, path) in [
        (outside.path(), XMTP),
        (inside.path(), ".murmur/flights/nightly-rebake.md"),
    ] {
        let (valid, diagnostics, code) = validate(dir, path);
        assert!(!valid && code == 1, "{diagnostics:#?}");
        let errors: Vec<&Value> = diagnostics
            .iter()
            .filter(|d| d["severity"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{diagnostics:#?}");
        let want = json!({"severity": "error", "code": "unknown-persona", "line": 4, "column": 10,
                          "says": "did you mean `programmer`?"});
        assert!(matches(errors[0], &want), "{:#}", errors[0]);
    }
}

#[test]
fn outside_any_repository_only_the_built_ins_and_defaults_apply() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        outside.path().join("gated.md"),
        "---\npool: fleet\n---\n# Gated\n\n## build\n> persona: dba\n> gate: ci\n\nBuild it.\n",
    )
    .expect("write");
    let (valid, diagnostics, _) = validate(outside.path(), "gated.md");
    assert!(!valid);
    let want = [
        json!({"severity": "error", "code": "unknown-pool", "line": 2, "column": 7, "says": "the pools are local:"}),
        json!({"severity": "error", "code": "unknown-persona", "line": 7, "column": 12, "says": "so only the built-ins exist"}),
        // Its check command is the repository's it will run in, which is not known here.
        json!({"severity": "warning", "code": "missing-check-command", "line": 8, "column": 9, "says": "outside any repository"}),
    ];
    assert_eq!(diagnostics.len(), want.len(), "{diagnostics:#?}");
    for (got, want) in diagnostics.iter().zip(&want) {
        assert!(matches(got, want), "got {got:#}, want {want:#}");
    }
}

/// A git repository with these files committed.
fn repository(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    std::fs::write(dir.path().join(".gitignore"), ".murmur/murmur.db*\n").expect("ignore");
    git(dir.path(), &["add", "."]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "start",
        ],
    );
    dir
}

/// `flight run NAME` exits 2 saying `says`, and no run exists afterwards.
fn refused(repo: &Path, flight: &str, says: &str) {
    let out = murmur(repo, &["flight", "run", flight]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(says), "{}", text(&out));
    let runs = murmur(repo, &["runs", "ls", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&runs.stdout).trim(),
        "[]",
        "no run was recorded: {}",
        text(&runs)
    );
}

const EXEC: &str = "---\nruntime: exec\n---\n# Echo\n\n## say\n> command: echo hello\n";

#[test]
fn run_refuses_what_validate_reports_before_recording_a_run() {
    let repo = repository(&[
        (
            ".murmur/flights/persona.md",
            "---\nruntime: exec\n---\n# P\n\n## a\n> persona: murmur-programmer\n> command: echo a\n",
        ),
        (
            ".murmur/flights/nocommand.md",
            "---\nruntime: exec\n---\n# N\n\n## a\n\nNo shell block here.\n",
        ),
        (
            ".murmur/flights/pool.md",
            "---\nruntime: exec\n---\n# Pool\n\n## a\n> pool: nopool\n> command: echo a\n",
        ),
        (
            ".murmur/flights/fleet.md",
            "---\nruntime: exec\npool: fleet\n---\n# Fleet\n\n## a\n> command: echo on-the-fleet\n",
        ),
        (".murmur/murmur.yaml", "pools:\n  fleet: { max_vms: 2 }\n"),
    ]);
    refused(
        repo.path(),
        "persona",
        "error[unknown-persona]: unknown persona `murmur-programmer`",
    );
    refused(
        repo.path(),
        "nocommand",
        "error[missing-command]: agent `a` runs `exec` but has no command",
    );
    refused(
        repo.path(),
        "pool",
        "error[unknown-pool]: unknown pool `nopool`",
    );
    let out = murmur(repo.path(), &["flight", "run", "fleet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a configured pool runs: {}",
        text(&out)
    );
    assert!(text(&out).contains("on-the-fleet"), "{}", text(&out));
}

#[test]
fn run_refuses_a_dirty_tree_a_missing_cli_or_a_push_without_origin() {
    let repo = repository(&[
        (".murmur/flights/echo.md", EXEC),
        (
            ".murmur/flights/design.md",
            "# Design\n\n## plan\n> persona: architect\n\nPlan it.\n",
        ),
        (
            ".murmur/flights/codex.md",
            "---\nruntime: codex\n---\n# Codex\n\n## plan\n\nPlan it.\n",
        ),
        (
            ".murmur/flights/push.md",
            "---\nruntime: exec\nout: push\n---\n# Push\n\n## a\n> command: echo a\n",
        ),
        (
            ".murmur/murmur.yaml",
            "runtimes:\n  claude: { binary: /nonexistent/claude }\n  codex: { binary: /nonexistent/codex }\n",
        ),
    ]);
    refused(
        repo.path(),
        "design",
        "the Claude Code CLI `/nonexistent/claude` was not found (agent `plan` runs on claude)",
    );
    refused(
        repo.path(),
        "codex",
        "the Codex CLI `/nonexistent/codex` was not found (agent `plan` runs on codex)",
    );
    refused(
        repo.path(),
        "push",
        "agent `a` has `out: push`, but the repository at",
    );
    std::fs::write(repo.path().join(".gitignore"), "edited\n").expect("write");
    refused(repo.path(), "echo", "uncommitted changes (.gitignore)");
}
