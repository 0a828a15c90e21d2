//! Crash safety, end to end: the real binary is killed with SIGKILL at many points of a run,
//! resumed (sometimes killed again while resuming), and the database and the agents' own
//! ledger must show that no checkpointed event was lost and no completed agent ran again.
//!
//! Everything here waits on events (lines on a pipe, process exits, a fifo closing), never
//! on sleeps. The same body runs on SQLite and, with `MURMUR_TEST_POSTGRES_URL`, PostgreSQL.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use serde_json::Value;
use support::beacon::Beacon;
use support::check::check_session;
use support::db::Backend;
use support::fixture::{Fixture, Snapshot};
use support::session::{DEADLINE, Session, after, event_slug, kind, last_is, never, resume};

const AGENTS: usize = 20;

fn slug(i: usize) -> String {
    format!("a{i:02}")
}

/// Agent `i` (1-based) needs `i-1` unless `i` starts a new chain (i % 4 == 1), and also
/// `i-3` when `i` is a multiple of 3: roots a01, a05, a13, a17; fan-ins a06, a12, a15, a18.
fn needs(i: usize) -> Vec<usize> {
    let mut needs = Vec::new();
    if i % 4 != 1 {
        needs.push(i - 1);
    }
    if i > 3 && i.is_multiple_of(3) {
        needs.push(i - 3);
    }
    needs
}

fn crash_flight(ledger: &Path) -> String {
    let mut text = String::from(
        "---\nruntime: exec\n---\n\n# Crash\n\nTwenty exec agents in chains and fan-ins; each \
         appends `AGENT ATTEMPT` to a ledger, so every execution leaves a trace.\n",
    );
    for i in 1..=AGENTS {
        text.push_str(&format!("\n## {}\n", slug(i)));
        let needs: Vec<String> = needs(i).into_iter().map(slug).collect();
        if !needs.is_empty() {
            text.push_str(&format!("> needs: {}\n", needs.join(", ")));
        }
        text.push_str(&format!(
            "\nRecord this execution.\n\n```sh\necho \"begin $MURMUR_AGENT\"\n\
             echo \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{}'\necho \"end $MURMUR_AGENT\"\n```\n",
            ledger.display()
        ));
    }
    text
}

/// A repository holding the crash flight.
fn crash_fixture(backend: &Backend, label: &str) -> Fixture {
    let fixture = Fixture::new(backend, label);
    fixture.write_flight("crash", &crash_flight(&fixture.ledger));
    fixture
}

/// `murmur flight run crash --json`, killed when `kill_when` holds.
fn start(fixture: &Fixture, kill_when: impl FnMut(&[Value]) -> bool) -> (String, Session) {
    support::session::start(fixture, "crash", kill_when)
}

/// The end state every run must reach, however often it was killed.
fn check_finished(final_state: &Snapshot, label: &str) {
    assert_eq!(final_state.status, "completed", "{label}");
    assert_eq!(final_state.agents.len(), AGENTS, "{label}");
    for i in 1..=AGENTS {
        let slug = slug(i);
        let (state, attempts) = &final_state.agents[&slug];
        assert_eq!(state, "completed", "{label}: {slug}");
        let ran = final_state
            .ledger
            .get(&slug)
            .unwrap_or_else(|| panic!("{label}: {slug} never ran"));
        // Each execution had its own attempt number, and the last one is the one that
        // completed (its ledger line was written before it exited).
        assert!(
            ran.windows(2).all(|w| w[0] < w[1]),
            "{label}: {slug} ran {ran:?}"
        );
        assert_eq!(ran.last(), Some(attempts), "{label}: {slug} ran {ran:?}");
    }
    let last: Vec<&str> = final_state
        .logs
        .last()
        .map(|line| line.split_whitespace().skip(1).collect())
        .unwrap_or_default();
    assert_eq!(last, ["run", "completed"], "{label}");
}

/// 0, 1, 2, 3, 5, 8, 13, … below `total`, and `total - 1` (every agent has finished).
fn kill_points(total: usize) -> Vec<usize> {
    let mut points = vec![0];
    let (mut a, mut b) = (1, 2);
    while a < total {
        points.push(a);
        (a, b) = (b, a + b);
    }
    if points.last() != Some(&(total - 1)) {
        points.push(total - 1);
    }
    points
}

fn crash_and_resume_everywhere(backend: &Backend, name: &str) {
    let clock = Instant::now();

    // One uninterrupted run: how many checkpoints a full run has, and every agent once.
    let full = crash_fixture(backend, "full");
    let (run, session) = start(&full, never);
    assert!(
        session.status.success(),
        "{name}: full run: {}",
        session.stderr
    );
    let done = check_session(&full, &run, name, &Snapshot::default(), &session);
    check_finished(&done, &format!("{name} full run"));
    for i in 1..=AGENTS {
        assert_eq!(done.ledger[&slug(i)], [1], "{name}: {} ran once", slug(i));
    }
    let total = session.events.len();
    assert_eq!(total, done.logs.len());
    assert_eq!(kind(&session.events[total - 1]), "run_completed");

    let points = kill_points(total);
    for (n, &k) in points.iter().enumerate() {
        let fixture = crash_fixture(backend, &format!("k{k}"));
        let label = format!("{name}, killed after {k} of {total} events");
        let (run, session) = start(&fixture, after(k));
        assert!(session.killed, "{label}: {}", session.stderr);
        let mut state = check_session(&fixture, &run, &label, &Snapshot::default(), &session);
        // Every other kill point also crashes the first resume, early in its recovery.
        let kills = if n % 2 == 1 {
            vec![3, usize::MAX]
        } else {
            vec![usize::MAX]
        };
        for (attempt, kill) in kills.into_iter().enumerate() {
            let label = format!("{label}, resume {}", attempt + 1);
            let session = resume(&fixture, &run, after(kill));
            state = check_session(&fixture, &run, &label, &state, &session);
            if !session.killed {
                assert!(session.status.success(), "{label}: {}", session.stderr);
                break;
            }
        }
        check_finished(&state, &label);
    }
    eprintln!(
        "{name}: {total} events per run; killed after {points:?}; {:.1?}",
        clock.elapsed()
    );
}

#[test]
fn sqlite_runs_survive_sigkill_at_every_checkpoint() {
    crash_and_resume_everywhere(&Backend::Sqlite, "sqlite");
}

#[test]
fn postgres_runs_survive_sigkill_at_every_checkpoint() {
    if let Some(backend) = Backend::postgres() {
        crash_and_resume_everywhere(&backend, "postgres");
    }
}

/// Opens `fifo` for reading on a thread: reports once a writer has opened it, and again at
/// EOF, when every process holding it for writing is gone.
fn watch_writers(fifo: PathBuf) -> (mpsc::Receiver<()>, mpsc::Receiver<()>) {
    let (opened_tx, opened) = mpsc::channel();
    let (gone_tx, gone) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::fs::File::open(&fifo).expect("open the fifo");
        let _ = opened_tx.send(());
        let _ = reader.read_to_end(&mut Vec::new());
        let _ = gone_tx.send(());
    });
    (opened, gone)
}

/// An agent killed mid-attempt (with the engine) runs again as attempt 2, and the log says
/// why. Fifos prove that the attempt was running, that its shell died with the engine, and
/// that a command the shell had started (which the parent-death signal does not reach) did
/// not outlive the resume.
#[test]
fn an_attempt_in_flight_is_interrupted_and_runs_again() {
    let fixture = Fixture::new(&Backend::Sqlite, "interrupt");
    let shell = fixture.repo().join("shell.fifo");
    let command = fixture.repo().join("command.fifo");
    let blocked = fixture.repo().join("blocked.fifo");
    for fifo in [&shell, &command, &blocked] {
        let made = Command::new("mkfifo").arg(fifo).output().expect("mkfifo");
        assert!(made.status.success(), "mkfifo: {made:?}");
    }
    let ledger = fixture.ledger.display().to_string();
    let flight = format!(
        "---\nruntime: exec\n---\n\n# Crash\n\n\
         ## first\n\n```sh\necho \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'\necho ok\n```\n\n\
         ## slow\n> needs: first\n\n\
         In its first attempt the shell holds `shell.fifo` open, then runs `cat`, which holds\n\
         only `command.fifo` open and blocks reading a fifo that nobody writes.\n\n\
         ```sh\necho \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'\n\
         if [ \"$MURMUR_ATTEMPT\" = 1 ]; then\n  exec 3>'{shell}'\n  echo waiting\n  \
         cat '{blocked}' 3>&- 4>'{command}'\nfi\necho finished\n```\n\n\
         ## last\n> needs: slow\n\n```sh\necho \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'\necho ok\n```\n",
        shell = shell.display(),
        command = command.display(),
        blocked = blocked.display(),
    );
    std::fs::write(fixture.repo().join(".murmur/flights/crash.md"), flight).expect("write");
    let (_, shell_gone) = watch_writers(shell);
    let (command_started, command_gone) = watch_writers(command);

    // Kill once the shell said it waits and `cat` holds its fifo.
    let waiting = |events: &[Value]| {
        let waiting = events.last().is_some_and(|event| {
            kind(event) == "agent_output"
                && event_slug(event) == Some("slow")
                && event["event"]["line"] == "waiting"
        });
        if waiting {
            command_started
                .recv_timeout(DEADLINE)
                .expect("`cat` of slow's first attempt started");
        }
        waiting
    };
    let (run, first_session) = start(&fixture, waiting);
    assert!(
        first_session.killed,
        "the run ended before `slow` waited: {:#?}\n{}",
        first_session.events, first_session.stderr
    );
    // PR_SET_PDEATHSIG: the attempt's shell dies with the engine. The bound only turns a
    // leaked process into a failure instead of a hang; the wait ends on the fifo's EOF.
    assert!(
        shell_gone.recv_timeout(DEADLINE).is_ok(),
        "the shell of slow's first attempt outlived the engine"
    );

    let killed = fixture.snapshot(&run);
    assert_eq!(killed.agents["first"], ("completed".to_owned(), 1));
    // Killed once its command ran: whether `agent_running` was committed by then is a race.
    assert!(
        matches!(killed.agents["slow"].0.as_str(), "starting" | "running")
            && killed.agents["slow"].1 == 1,
        "{:?}",
        killed.agents["slow"]
    );
    assert_eq!(killed.agents["last"].0, "pending");

    let session = resume(&fixture, &run, never);
    assert!(session.status.success(), "resume: {}", session.stderr);
    assert!(
        command_gone.recv_timeout(DEADLINE).is_ok(),
        "`cat` of slow's first attempt outlived the engine and the resume"
    );
    let done = check_session(&fixture, &run, "interrupt", &killed, &session);
    let kinds: Vec<(&str, Option<&str>)> = session
        .events
        .iter()
        .map(|e| (kind(e), event_slug(e)))
        .take(3)
        .collect();
    assert_eq!(
        kinds,
        [
            ("agent_interrupted", Some("slow")),
            ("agent_started", Some("slow")),
            ("agent_placed", Some("slow")),
        ],
        "first run stderr: {}",
        first_session.stderr
    );
    assert_eq!(session.events[0]["event"]["attempt"], 1);
    assert_eq!(session.events[1]["event"]["attempt"], 2);
    assert_eq!(done.status, "completed");
    assert_eq!(done.agents["first"], ("completed".to_owned(), 1));
    assert_eq!(done.agents["slow"], ("completed".to_owned(), 2));
    assert_eq!(done.agents["last"], ("completed".to_owned(), 1));
    assert_eq!(done.ledger["first"], [1]);
    assert_eq!(done.ledger["slow"], [1, 2]);
    assert_eq!(done.ledger["last"], [1]);
    let logs = fixture.logs(&run).join("\n");
    assert!(
        logs.contains("attempt 1 was interrupted by an engine restart"),
        "{logs}"
    );
    let slow_logs = fixture.murmur(&["runs", "logs", &run, "slow"]);
    let slow_logs = String::from_utf8_lossy(&slow_logs.stdout);
    assert!(slow_logs.contains("started (attempt 2)"), "{slow_logs}");
    assert!(slow_logs.contains("| finished"), "{slow_logs}");
}

/// The repository's prepare hook, cut short by a kill, runs again before the retried attempt
/// works; once it has completed in the worktree, a later attempt does not run it again.
#[test]
fn a_prepare_hook_cut_short_by_a_kill_runs_again() {
    let beacon = Beacon::bind();
    let fixture = Fixture::new(&Backend::Sqlite, "hook");
    let (hooks, release) = (fixture.path("hooks.txt"), fixture.path("release"));
    std::fs::create_dir_all(fixture.path(".murmur/hooks")).expect("mkdir");
    let hook = format!(
        "echo hook >> '{}'\n{}\nwhile [ ! -f '{}' ]; do sleep 0.05; done\ntouch prepared.txt\n",
        hooks.display(),
        beacon.signal(),
        release.display()
    );
    std::fs::write(fixture.path(".murmur/hooks/prepare-workspace.sh"), hook).expect("hook");
    murmur_testkit::git::git(fixture.repo(), &["add", ".murmur/hooks"]);
    murmur_testkit::git::git(fixture.repo(), &["commit", "-qm", "hook"]);
    let working = fixture.path("working");
    let (ledger, working) = (fixture.ledger.display(), working.display());
    fixture.write_flight(
        "hook",
        &format!(
            "---\nruntime: exec\n---\n\n# Hook\n\n## work\n\n```sh\n\
             echo \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'\n\
             if [ \"$MURMUR_ATTEMPT\" = 2 ]; then\n  echo waiting\n  \
             while [ ! -f '{working}' ]; do sleep 0.05; done\nfi\n\
             test -f prepared.txt && echo prepared\n```\n"
        ),
    );
    let hooked = || std::fs::read_to_string(&hooks).unwrap_or_default();
    let (run, session) = support::session::start(&fixture, "hook", |e| {
        let started = last_is(e, "agent_started", "work");
        if started {
            beacon.wait("the prepare hook");
        }
        started
    });
    assert!(session.killed, "{}", session.stderr);
    let state = check_session(&fixture, &run, "hook", &Snapshot::default(), &session);
    std::fs::write(&release, "").expect("release the hook");
    let waiting = |e: &[Value]| e.last().is_some_and(|e| e["event"]["line"] == "waiting");
    let session = resume(&fixture, &run, waiting);
    assert!(session.killed, "{}", session.stderr);
    let state = check_session(&fixture, &run, "hook, resume 1", &state, &session);
    assert_eq!(hooked(), "hook\nhook\n", "the hook ran again, to its end");
    std::fs::write(fixture.path("working"), "").expect("let the agent finish its turn");
    let session = resume(&fixture, &run, never);
    assert!(session.status.success(), "{}", session.stderr);
    let done = check_session(&fixture, &run, "hook, resume 2", &state, &session);
    assert_eq!(
        hooked(),
        "hook\nhook\n",
        "a completed hook does not run again"
    );
    assert_eq!(
        done.ledger["work"],
        [2, 3],
        "the agent never worked unprepared"
    );
    assert_eq!(done.count("work", "| prepared"), 1);
    assert_eq!(done.status, "completed");
}
