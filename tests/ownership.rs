//! One driver per run, between real `murmur` processes: a live run refuses `runs resume`, a
//! cancel from another terminal ends the foreground run as canceled, a killed driver's run
//! shows as interrupted (and `runs logs --follow` says so), and a driver paused past its
//! lease loses the run to another process, stops its agent and commits nothing more.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;
use support::fixture::Fixture;
use support::session::kind;

every_backend!(
    a_live_run_refuses_resume_and_a_cancel_from_elsewhere_ends_it,
    a_killed_driver_leaves_an_interrupted_run_that_resume_continues,
    a_driver_paused_past_its_lease_loses_the_run_and_commits_nothing,
);

/// An agent that records its start and end (with its pid) and waits for `go` in between.
fn ledger_flight(fixture: &Fixture) -> String {
    let (go, ledger) = (fixture.path("go"), fixture.ledger.clone());
    format!(
        "---\nruntime: exec\n---\n# Job\n\n## wait\n> command: echo \"start $$\" >> {ledger}; until [ -e {go} ]; do sleep 0.05; done; echo \"end $$\" >> {ledger}; echo released\n",
        ledger = ledger.display(),
        go = go.display(),
    )
}

/// A `murmur` process printing committed events as JSON lines, read as they come; its
/// stderr is collected in the background (the first line names a new run).
struct Driving {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    stderr: std::thread::JoinHandle<String>,
    run: String,
}

impl Driving {
    /// `murmur flight run … --json`: returns once the run exists.
    fn launch(command: Command) -> Self {
        Self::spawn(command, None)
    }

    /// `murmur runs resume RUN --json`.
    fn resume(command: Command, run: &str) -> Self {
        Self::spawn(command, Some(run.to_owned()))
    }

    fn spawn(mut command: Command, run: Option<String>) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("murmur starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        let run = run.unwrap_or_else(|| {
            stderr.read_line(&mut first).expect("stderr");
            first
                .strip_prefix("run ")
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("expected `run ID of …`, got `{first}`"))
                .to_owned()
        });
        let stderr = std::thread::spawn(move || {
            let mut text = first;
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        Self {
            child,
            lines,
            stderr,
            run,
        }
    }

    /// Reads events until one of `wanted` kind for the agent's attempt `attempt`.
    fn until(&mut self, wanted: &str, attempt: u64) -> Value {
        for line in self.lines.by_ref() {
            let event: Value = serde_json::from_str(&line.expect("line")).expect("JSON");
            if kind(&event) == wanted && event["event"]["attempt"].as_u64() == Some(attempt) {
                return event;
            }
        }
        panic!("the process ended before `{wanted}` of attempt {attempt}");
    }

    /// Reads events until the run's own event of `wanted` kind.
    fn run_event(&mut self, wanted: &str) -> Value {
        for line in self.lines.by_ref() {
            let event: Value = serde_json::from_str(&line.expect("line")).expect("JSON");
            if kind(&event) == wanted {
                return event;
            }
        }
        panic!("the process ended before `{wanted}`");
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    fn wait(mut self) -> (i32, String) {
        self.lines.for_each(drop);
        let status = self.child.wait().expect("wait");
        (
            status.code().unwrap_or(-1),
            self.stderr.join().expect("stderr"),
        )
    }
}

fn status_of(fixture: &Fixture, run: &str) -> String {
    fixture.show(run)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn a_live_run_refuses_resume_and_a_cancel_from_elsewhere_ends_it(backend: &support::db::Backend) {
    let fixture = Fixture::new(backend, "own_live");
    fixture.write_flight("job", &ledger_flight(&fixture));
    let mut driving = Driving::launch(fixture.command(&["flight", "run", "job", "--json"]));
    driving.until("agent_started", 1);
    let run = driving.run.clone();

    let refused = fixture.murmur(&["runs", "resume", &run]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {run} is driven by murmur flight run (pid {} on ",
            driving.child.id()
        )),
        "{stderr}"
    );
    assert_eq!(status_of(&fixture, &run), "running");

    let canceled = fixture.murmur(&["runs", "cancel", &run]);
    assert!(canceled.status.success(), "{canceled:?}");
    let by = driving.run_event("run_canceled")["event"]["by"].clone();
    assert!(
        by.as_str()
            .is_some_and(|by| by.starts_with("murmur runs cancel (pid ")),
        "the foreground run is told who canceled it: {by}"
    );
    let (code, stderr) = driving.wait();
    assert_eq!(code, 1, "a canceled run exits 1: {stderr}");
    assert!(!stderr.contains("changed by someone else"), "{stderr}");
    assert_eq!(status_of(&fixture, &run), "canceled");
}

fn a_killed_driver_leaves_an_interrupted_run_that_resume_continues(backend: &support::db::Backend) {
    let fixture = Fixture::new(backend, "own_killed");
    fixture.write_flight("job", &ledger_flight(&fixture));
    let mut driving = Driving::launch(fixture.command(&["flight", "run", "job", "--json"]));
    driving.until("agent_started", 1);
    let run = driving.run.clone();
    driving.signal("-KILL");
    driving.wait();

    // The driver is proven gone (its pid and start time), so no need to wait for expiry.
    assert_eq!(status_of(&fixture, &run), "interrupted");
    let follow = fixture.murmur(&["runs", "logs", &run, "--follow"]);
    assert_eq!(follow.status.code(), Some(3), "{follow:?}");
    assert!(String::from_utf8_lossy(&follow.stderr).contains("no process drives it"));

    std::fs::write(fixture.path("go"), "").expect("go");
    let resumed = fixture.murmur(&["runs", "resume", &run]);
    assert!(resumed.status.success(), "{resumed:?}");
    assert_eq!(status_of(&fixture, &run), "completed");
    let follow = fixture.murmur(&["runs", "logs", &run, "--follow"]);
    assert_eq!(follow.status.code(), Some(0));
}

fn a_driver_paused_past_its_lease_loses_the_run_and_commits_nothing(
    backend: &support::db::Backend,
) {
    let fixture = Fixture::new(backend, "own_paused");
    fixture.write_flight("job", &ledger_flight(&fixture));
    let mut paused = fixture.command(&["flight", "run", "job", "--json"]);
    paused.env("MURMUR_LEASE_TTL", "1s");
    let mut paused = Driving::launch(paused);
    // Paused once its agent runs, not while it is starting: a driver stopped inside a store
    // transaction would hold the store's lock (SQLite) or the run's row (PostgreSQL).
    paused.until("agent_running", 1);
    let run = paused.run.clone();
    paused.signal("-STOP");
    // `runs logs --follow` follows the run while its lease is held, and stops with 3 once
    // nobody drives it: here, when the paused driver's lease has expired.
    let follow = fixture.murmur(&["runs", "logs", &run, "--follow"]);
    assert_eq!(follow.status.code(), Some(3), "{follow:?}");
    assert_eq!(status_of(&fixture, &run), "interrupted");

    let mut taking_over =
        Driving::resume(fixture.command(&["runs", "resume", &run, "--json"]), &run);
    // Its agent's phases ride its next checkpoint: counted once they are committed too.
    taking_over.until("agent_running", 2);
    let seq_at_takeover = fixture.logs(&run).len();
    paused.signal("-CONT");
    let (code, stderr) = paused.wait();
    assert_ne!(code, 0, "the paused driver gives the run up: {stderr}");
    assert!(
        stderr.contains("taken over") || stderr.contains("driven by another"),
        "{stderr}"
    );
    assert_eq!(
        fixture.logs(&run).len(),
        seq_at_takeover,
        "the paused driver committed nothing after it lost the lease"
    );

    std::fs::write(fixture.path("go"), "").expect("go");
    let (code, stderr) = taking_over.wait();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status_of(&fixture, &run), "completed");
    let ledger = std::fs::read_to_string(&fixture.ledger).expect("ledger");
    let ends = ledger
        .lines()
        .filter(|line| line.starts_with("end "))
        .count();
    assert_eq!(
        ends, 1,
        "only the new driver's attempt ran to its end:\n{ledger}"
    );
}
