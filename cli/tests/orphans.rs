//! No orphans, end to end with the real binary: an exec agent starts a daemon (`setsid`,
//! then a shell that forks it and exits, so it leaves the agent's process group and session
//! and is re-parented) and a plain background job. After a `kill -9` of the engine and
//! `runs resume`, after a cancel, and after a `timeout`, no process of the attempt remains.
//!
//! Both processes run a symlink to `sleep` whose path is unique to the test, so the process
//! table can be searched for them; each also holds a fifo open, whose reader sees EOF once
//! it is gone and which proves that it started. Nothing sleeps to wait.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use serde_json::Value;
use support::db::Backend;
use support::fixture::Fixture;
use support::session::{DEADLINE, event_slug, kind, launch, never, resume, start};

/// The two processes an attempt leaves behind, named by a symlink unique to the test.
struct Spread {
    sleep: PathBuf,
    daemon: PathBuf,
    background: PathBuf,
}

impl Spread {
    fn new(fixture: &Fixture, label: &str) -> Self {
        let sleep = fixture.path(&format!("orphan-{label}-{}-sleep", std::process::id()));
        let real = murmur_runtime_find("sleep");
        std::os::unix::fs::symlink(real, &sleep).expect("symlink sleep");
        let daemon = fixture.path("daemon.fifo");
        let background = fixture.path("background.fifo");
        for fifo in [&daemon, &background] {
            let made = Command::new("mkfifo").arg(fifo).output().expect("mkfifo");
            assert!(made.status.success(), "mkfifo: {made:?}");
        }
        Self {
            sleep,
            daemon,
            background,
        }
    }

    /// Shell lines that start both and print `waiting`; neither holds the output pipe. The
    /// script names the `sleep` in two pieces, so that only the two processes have its
    /// whole path on their command lines.
    fn script(&self) -> String {
        format!(
            "s={sleep}\n\
             setsid sh -c 'nohup \"$0\" 300 4>\"$1\" >/dev/null 2>&1 &' \"$s\" '{daemon}'\n\
             \"$s\" 300 4>'{background}' >/dev/null 2>&1 &\n\
             echo waiting\n",
            sleep = split_name(&self.sleep),
            daemon = self.daemon.display(),
            background = self.background.display(),
        )
    }

    /// Watches both fifos: one receiver that fires once both were opened, one once both are
    /// closed again (their holders gone).
    fn watch(&self) -> (mpsc::Receiver<()>, mpsc::Receiver<()>) {
        let (opened_tx, opened) = mpsc::channel();
        let (gone_tx, gone) = mpsc::channel();
        for fifo in [self.daemon.clone(), self.background.clone()] {
            let (opened_tx, gone_tx) = (opened_tx.clone(), gone_tx.clone());
            std::thread::spawn(move || {
                let mut reader = std::fs::File::open(&fifo).expect("open the fifo");
                let _ = opened_tx.send(());
                let _ = reader.read_to_end(&mut Vec::new());
                let _ = gone_tx.send(());
            });
        }
        (opened, gone)
    }

    /// Processes whose command line names the test's `sleep`.
    fn running(&self) -> Vec<String> {
        let name = self.sleep.display().to_string();
        processes(|cmdline, _| cmdline.contains(&name))
    }
}

fn murmur_runtime_find(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{program}` is on PATH"))
}

/// `pid cmdline` of every live process for which `wanted(cmdline, environ)` holds (zombies
/// have neither and are skipped: they run nothing).
fn processes(wanted: impl Fn(&str, &[&str]) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let read = |file: &str| std::fs::read(entry.path().join(file)).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let environ = read("environ");
        let environ = String::from_utf8_lossy(&environ);
        let vars: Vec<&str> = environ.split('\0').collect();
        if !cmdline.is_empty() && wanted(&cmdline, &vars) {
            found.push(format!("{pid} {cmdline}"));
        }
    }
    found
}

/// Processes of attempt `attempt` of `run`, by the variables the engine set for them.
fn of_attempt(run: &str, attempt: u32) -> Vec<String> {
    let run = format!("MURMUR_RUN_ID={run}");
    let attempt = format!("MURMUR_ATTEMPT={attempt}");
    processes(|_, vars| vars.contains(&run.as_str()) && vars.contains(&attempt.as_str()))
}

fn said_waiting(events: &[Value]) -> bool {
    events.last().is_some_and(|event| {
        kind(event) == "agent_output"
            && event_slug(event) == Some("work")
            && event["event"]["line"] == "waiting"
    })
}

/// Output lines of agent `work`, as the store has them.
fn work_lines(fixture: &Fixture, run: &str) -> String {
    let logs = fixture.murmur(&["runs", "logs", run, "work"]);
    String::from_utf8_lossy(&logs.stdout).into_owned()
}

/// `'PATH-BUT-THE-LAST'C`: the path for the shell, but not in one piece.
fn split_name(path: &Path) -> String {
    let name = path.display().to_string();
    let (stem, last) = name.split_at(name.len() - 1);
    format!("'{stem}'{last}")
}

/// The retried attempt looks for the first one's processes before it finishes; `grep`'s
/// pattern does not match its own command line, nor the agent's script.
fn retried_checks(sleep: &Path) -> String {
    let name = sleep.display().to_string();
    let (stem, last) = name.split_at(name.len() - 1);
    format!(
        "if grep -l '{stem}[{last}]' /proc/[0-9]*/cmdline 2>/dev/null; then echo leftover; fi\n\
         echo finished\n"
    )
}

#[test]
fn after_a_kill_and_resume_no_process_of_the_first_attempt_remains() {
    let fixture = Fixture::new(&Backend::Sqlite, "orphans_kill");
    let spread = Spread::new(&fixture, "kill");
    let flight = format!(
        "---\nruntime: exec\n---\n\n# Orphans\n\n## work\n\n```sh\n\
         if [ \"$MURMUR_ATTEMPT\" = 1 ]; then\n{}  wait\nfi\n{}```\n",
        spread.script(),
        retried_checks(&spread.sleep),
    );
    fixture.write_flight("orphans", &flight);
    let (opened, gone) = spread.watch();
    let ready = |events: &[Value]| {
        let waiting = said_waiting(events);
        if waiting {
            for _ in 0..2 {
                opened
                    .recv_timeout(DEADLINE)
                    .expect("both processes started");
            }
        }
        waiting
    };
    let (run, first) = start(&fixture, "orphans", ready);
    assert!(first.killed, "the run ended early: {}", first.stderr);

    let session = resume(&fixture, &run, never);
    assert!(session.status.success(), "resume: {}", session.stderr);
    assert_eq!(
        spread.running(),
        Vec::<String>::new(),
        "left after the resume"
    );
    assert_eq!(
        of_attempt(&run, 1),
        Vec::<String>::new(),
        "attempt 1 after the resume"
    );
    for _ in 0..2 {
        gone.recv_timeout(DEADLINE)
            .expect("both processes are gone");
    }
    let show = fixture.show(&run);
    assert_eq!(show["status"], "completed", "{show:#}");
    let lines = work_lines(&fixture, &run);
    assert!(lines.contains("started (attempt 2)"), "{lines}");
    assert!(lines.contains("| finished"), "{lines}");
    assert!(
        !lines.contains("leftover"),
        "attempt 2 saw attempt 1's processes: {lines}"
    );
}

#[test]
fn a_cancel_kills_the_daemonised_grandchild() {
    let fixture = Fixture::new(&Backend::Sqlite, "orphans_cancel");
    let spread = Spread::new(&fixture, "cancel");
    let flight = format!(
        "---\nruntime: exec\n---\n\n# Orphans\n\n## work\n\n```sh\n{}wait\n```\n",
        spread.script()
    );
    fixture.write_flight("orphans", &flight);
    let (opened, gone) = spread.watch();
    let launched = launch(&fixture, "orphans");
    let run = launched.run.clone();
    let canceling = |events: &[Value]| {
        if said_waiting(events) {
            for _ in 0..2 {
                opened
                    .recv_timeout(DEADLINE)
                    .expect("both processes started");
            }
            let canceled = fixture.murmur(&["runs", "cancel", &run]);
            assert!(canceled.status.success(), "cancel: {canceled:?}");
        }
        false
    };
    let session = launched.follow(canceling);
    assert_eq!(
        session.status.code(),
        Some(1),
        "canceled: {}",
        session.stderr
    );
    // The driver waits until its stopped agents' trees are gone before it exits.
    assert_eq!(
        spread.running(),
        Vec::<String>::new(),
        "left after the cancel"
    );
    for _ in 0..2 {
        gone.recv_timeout(DEADLINE)
            .expect("both processes are gone");
    }
    assert_eq!(fixture.show(&run)["status"], "canceled");
}

#[test]
fn a_timeout_kills_the_daemonised_grandchild() {
    let fixture = Fixture::new(&Backend::Sqlite, "orphans_timeout");
    let spread = Spread::new(&fixture, "timeout");
    let flight = format!(
        "---\nruntime: exec\n---\n\n# Orphans\n\n## work\n> timeout: 3s\n\n```sh\n{}wait\n```\n",
        spread.script()
    );
    fixture.write_flight("orphans", &flight);
    let (opened, gone) = spread.watch();
    let (run, session) = start(&fixture, "orphans", never);
    assert_eq!(
        session.status.code(),
        Some(1),
        "timed out: {}",
        session.stderr
    );
    for _ in 0..2 {
        opened
            .try_recv()
            .expect("both processes started before the timeout");
    }
    assert_eq!(
        spread.running(),
        Vec::<String>::new(),
        "left after the timeout"
    );
    for _ in 0..2 {
        gone.recv_timeout(DEADLINE)
            .expect("both processes are gone");
    }
    let lines = work_lines(&fixture, &run);
    assert!(lines.contains("timed out after"), "{lines}");
}
