//! `murmur flight run` and `murmur runs …` with bad input: each gets a clear error and the
//! store stays consistent. Real binary, real SQLite files, no sleeps.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::murmur_output as murmur;

fn repo(flights: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
    for (name, text) in flights {
        std::fs::write(flight_path(dir.path(), name), text).expect("write");
    }
    dir
}

fn flight_path(repo: &Path, name: &str) -> PathBuf {
    repo.join(format!(".murmur/flights/{name}.md"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

const INPUTS: &str = "---\nruntime: exec\ninputs:\n  target: { required: true }\n  depth: { default: shallow }\n---\n# Inputs\n\n## show\n> command: echo \"${{ inputs.target }} $MURMUR_INPUT_DEPTH\"\n";
const FAILS: &str = "---\nruntime: exec\n---\n# Fails\n\n## bad\n> command: echo broken >&2; exit 3\n\n## after\n> needs: bad\n> command: echo never\n";

#[test]
fn exit_status_follows_the_run() {
    let repo = repo(&[("inputs", INPUTS), ("fails", FAILS)]);
    let ok = murmur(
        repo.path(),
        &["flight", "run", "inputs", "--input", "target=auth"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let ignore = std::fs::read_to_string(repo.path().join(".murmur/.gitignore")).expect("written");
    assert!(
        ignore.contains("murmur.db*") && ignore.contains("work/"),
        "{ignore}"
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("| auth shallow"));
    let failed = murmur(repo.path(), &["flight", "run", "fails"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("the command exited with status 3: broken"),
        "{}",
        stderr(&failed)
    );
    let runs = json(&murmur(repo.path(), &["runs", "ls", "--json"]));
    assert_eq!(runs[0]["flight"], "fails");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[1]["status"], "completed");
    for key in ["id", "flight", "status", "created_at", "finished_at"] {
        assert!(runs[0].get(key).is_some(), "runs ls --json has {key}");
    }
    let id = runs[0]["id"].as_str().expect("id");
    let show = json(&murmur(
        repo.path(),
        &["runs", "show", &id[..id.len() - 2], "--json"],
    ));
    assert_eq!(show["agents"][1]["state"], "skipped");
    for key in [
        "slug",
        "state",
        "attempts",
        "branch",
        "commits",
        "response",
        "prs",
        "cost_usd",
        "session_id",
    ] {
        assert!(
            show["agents"][0].get(key).is_some(),
            "runs show --json agents have {key}"
        );
    }
}

#[test]
fn bad_inputs_are_refused_before_anything_starts() {
    let repo = repo(&[("inputs", INPUTS)]);
    let missing = murmur(repo.path(), &["flight", "run", "inputs"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("missing required input `target`: pass --input target=VALUE")
    );
    let unknown = murmur(
        repo.path(),
        &["flight", "run", "inputs", "--input", "taget=x"],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown input `taget`; this flight's inputs are: depth, target")
    );
    let runs = json(&murmur(repo.path(), &["runs", "ls", "--json"]));
    assert_eq!(runs, serde_json::json!([]), "no run was recorded");
}

#[test]
fn an_invalid_flight_or_an_unrunnable_agent_is_invalid_input() {
    let repo = repo(&[
        ("broken", "# Broken\n\n## a\n> needs: b\n\nA.\n"),
        (
            "fanout",
            "---\nruntime: exec\n---\n# Fan-out\n\n## docs\n> each: every public module\n> command: echo {}\n",
        ),
        (
            "gated",
            "---\nruntime: exec\n---\n# Gated\n\n## build\n> gate: ci\n> command: make\n",
        ),
    ]);
    let broken = murmur(repo.path(), &["flight", "run", "broken"]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(stderr(&broken).contains("error[unknown-agent]"));
    let fanout = murmur(repo.path(), &["flight", "run", "fanout"]);
    assert_eq!(fanout.status.code(), Some(2));
    assert!(
        stderr(&fanout).contains("agent `docs` fans out over a description, which a planning agent turns into a list, but it runs `exec`"),
        "{}",
        stderr(&fanout)
    );
    let gated = murmur(repo.path(), &["flight", "run", "gated"]);
    assert_eq!(gated.status.code(), Some(2));
    assert!(
        stderr(&gated).contains("agent `build` has a `ci` gate, but the workspace has no check command: set `checks.command` in .murmur/murmur.yaml"),
        "{}",
        stderr(&gated)
    );
    assert_eq!(
        murmur(repo.path(), &["runs", "ls", "--json"]).stdout,
        b"[]\n",
        "nothing was recorded"
    );
}

#[test]
fn an_unusable_database_is_a_clear_error() {
    let repo = repo(&[("inputs", INPUTS)]);
    let not_a_db = repo.path().join("notes.txt");
    std::fs::write(&not_a_db, "these are notes, not a database\n".repeat(100)).expect("write");
    let out = murmur(
        repo.path(),
        &["runs", "ls", "--db", not_a_db.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&not_a_db).expect("read"),
        "these are notes, not a database\n".repeat(100)
    );
    let folder = murmur(
        repo.path(),
        &["runs", "ls", "--db", repo.path().to_str().expect("utf-8")],
    );
    assert_eq!(folder.status.code(), Some(2));
    assert!(
        stderr(&folder).contains("cannot open the database"),
        "{}",
        stderr(&folder)
    );
    let url = murmur(repo.path(), &["runs", "ls", "--db", "mysql://x/y"]);
    assert_eq!(url.status.code(), Some(2));
    assert!(
        stderr(&url).contains("is not a database URL"),
        "{}",
        stderr(&url)
    );
}

#[test]
fn a_locked_database_is_reported_not_waited_on_forever() {
    let repo = repo(&[("inputs", INPUTS)]);
    assert_eq!(
        murmur(repo.path(), &["runs", "ls"]).status.code(),
        Some(0),
        "creates the store"
    );
    let db = repo.path().join(".murmur/murmur.db");
    let mut holder = Command::new("python3")
        .args(["-c", "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\nsys.stdin.read()", db.to_str().expect("utf-8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "locked");
    let out = murmur(
        repo.path(),
        &["flight", "run", "inputs", "--input", "target=x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is locked by another process"),
        "{}",
        stderr(&out)
    );
    holder
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"")
        .expect("release");
    holder.wait().expect("holder exits");
    let runs = json(&murmur(repo.path(), &["runs", "ls", "--json"]));
    assert_eq!(runs, serde_json::json!([]), "nothing half-written");
}

#[test]
fn a_run_keeps_the_flight_it_started_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The agent waits for this file. A file, not a fifo: an attempt dying when the engine is
    // killed could take a fifo's one wake-up with it, and the next attempt would wait forever.
    let go = dir.path().join("go");
    let text = format!(
        "---\nruntime: exec\n---\n# Pinned\n\n## first\n> command: echo version-one\n\n## second\n> needs: first\n> command: until [ -e {} ]; do sleep 0.05; done; echo \"second saw ${{{{ needs.first.response }}}}\"\n",
        go.display()
    );
    let repo = repo(&[("pinned", &text)]);
    let mut engine = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["flight", "run", "pinned", "--json"])
        .current_dir(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let lines = BufReader::new(engine.stdout.take().expect("stdout")).lines();
    for line in lines {
        let line = line.expect("line");
        if line.contains("\"agent_started\"") && line.contains("\"second\"") {
            break;
        }
    }
    engine.kill().expect("SIGKILL");
    engine.wait().expect("reaped");
    std::fs::write(
        flight_path(repo.path(), "pinned"),
        text.replace("version-one", "version-two"),
    )
    .expect("edit the flight");
    let runs = json(&murmur(repo.path(), &["runs", "ls", "--json"]));
    let id = runs[0]["id"].as_str().expect("id").to_owned();
    let resume = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["runs", "resume", &id])
        .current_dir(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("resumes");
    std::fs::write(&go, "go\n").expect("release the agent");
    let resumed = resume.wait_with_output().expect("resume ends");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("changed since run"),
        "{}",
        stderr(&resumed)
    );
    let show = json(&murmur(repo.path(), &["runs", "show", &id, "--json"]));
    assert_eq!(show["agents"][0]["response"], "version-one");
    assert_eq!(
        show["agents"][0]["attempts"], 1,
        "first had finished before the kill"
    );
    assert_eq!(show["agents"][1]["response"], "second saw version-one");
}
