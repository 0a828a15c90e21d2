//! Crash safety, end to end: the real binary is killed with SIGKILL at many points of a run,
//! resumed (sometimes killed again while resuming), and the database and the agents' own
//! ledger must show that no checkpointed event was lost and no completed agent ran again.
//!
//! Everything here waits on events (lines on a pipe, process exits, a fifo closing), never
//! on sleeps. The same body runs on SQLite and, with `MURMUR_TEST_POSTGRES_URL`, PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// Where a fixture's database lives.
enum Backend {
    Sqlite,
    /// The URL of an existing database to connect to for `CREATE DATABASE`.
    Postgres(String),
}

/// A database created for one fixture, dropped with it.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let dropped = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        if !dropped.status.success() {
            eprintln!(
                "cannot drop the test database {}: {}",
                self.name,
                String::from_utf8_lossy(&dropped.stderr)
            );
        }
    }
}

fn psql(url: &str, sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `psql` (is the PostgreSQL client installed?): {e}"))
}

/// `postgres://u:p@host:port/db?x` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// A temporary git repository holding the crash flight, its ledger and its database.
struct Fixture {
    dir: tempfile::TempDir,
    ledger: PathBuf,
    db: String,
    _pg: Option<PgDatabase>,
}

impl Fixture {
    fn new(backend: &Backend, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(git.status.success(), "git init: {git:?}");
        std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
        let ledger = dir.path().join("ledger.txt");
        std::fs::write(
            dir.path().join(".murmur/flights/crash.md"),
            crash_flight(&ledger),
        )
        .expect("write flight");
        let (db, pg) = match backend {
            Backend::Sqlite => (
                dir.path().join(".murmur/murmur.db").display().to_string(),
                None,
            ),
            Backend::Postgres(admin_url) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!("murmur_crash_{}_{label}_{nanos}", std::process::id());
                let created = psql(admin_url, &format!("CREATE DATABASE {name}"));
                assert!(
                    created.status.success(),
                    "CREATE DATABASE {name} failed: {}",
                    String::from_utf8_lossy(&created.stderr)
                );
                let pg = PgDatabase {
                    admin_url: admin_url.clone(),
                    name: name.clone(),
                };
                (with_database(admin_url, &name), Some(pg))
            }
        };
        Self {
            dir,
            ledger,
            db,
            _pg: pg,
        }
    }

    fn repo(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
        command
            .args(args)
            .args(["--db", &self.db])
            .current_dir(self.repo())
            .env("NO_COLOR", "1");
        command
    }

    fn murmur(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    fn show(&self, run: &str) -> Value {
        let out = self.murmur(&["runs", "show", run, "--json"]);
        assert!(out.status.success(), "runs show: {out:?}");
        serde_json::from_slice(&out.stdout).expect("runs show --json is JSON")
    }

    /// `runs logs`: one human-readable line per stored event, in order.
    fn logs(&self, run: &str) -> Vec<String> {
        let out = self.murmur(&["runs", "logs", run]);
        assert!(out.status.success(), "runs logs: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every `AGENT ATTEMPT` line of the ledger, by agent, in order.
    fn ledger(&self) -> BTreeMap<String, Vec<u32>> {
        let text = std::fs::read_to_string(&self.ledger).unwrap_or_default();
        let mut ledger: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for line in text.lines() {
            let (agent, attempt) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("malformed ledger line `{line}`"));
            let attempt = attempt.parse().expect("attempt number");
            ledger.entry(agent.to_owned()).or_default().push(attempt);
        }
        ledger
    }

    fn snapshot(&self, run: &str) -> Snapshot {
        let show = self.show(run);
        let agents = show["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| {
                let slug = a["slug"].as_str().expect("slug").to_owned();
                let state = a["state"].as_str().expect("state").to_owned();
                let attempts = a["attempts"].as_u64().expect("attempts") as u32;
                (slug, (state, attempts))
            })
            .collect();
        Snapshot {
            status: show["status"].as_str().expect("status").to_owned(),
            agents,
            ledger: self.ledger(),
            logs: self.logs(run),
        }
    }
}

/// What the database and the ledger say at one moment between processes.
#[derive(Default)]
struct Snapshot {
    status: String,
    agents: BTreeMap<String, (String, u32)>,
    ledger: BTreeMap<String, Vec<u32>>,
    logs: Vec<String>,
}

impl Snapshot {
    fn in_state(&self, state: &str) -> BTreeSet<&str> {
        self.agents
            .iter()
            .filter(|(_, (s, _))| s == state)
            .map(|(slug, _)| slug.as_str())
            .collect()
    }
}

/// One `murmur` process that drives the run, as seen from outside.
struct Session {
    /// The committed events it printed, parsed.
    events: Vec<Value>,
    status: ExitStatus,
    killed: bool,
    stderr: String,
}

/// The run id from `run <ID> of <name> (...)`.
fn run_id_of(line: &str) -> String {
    line.strip_prefix("run ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("expected `run ID of …` on stderr, got `{line}`"))
        .to_owned()
}

fn drain(stderr: ChildStderr, already: String) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = already;
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    })
}

/// How long one engine process may take. Normal sessions take well under a second; the bound
/// only turns a hung engine into a failure instead of a hung test.
const DEADLINE: Duration = Duration::from_secs(60);

/// Kills the process `pid` unless stood down within [`DEADLINE`] (or when dropped without
/// standing down: the test is panicking and must not leave the engine running).
struct Watchdog {
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    /// The process must not be reaped before [`Watchdog::stand_down`] returns, so its pid
    /// cannot have been reused when the watchdog fires.
    fn new(pid: u32) -> Self {
        let (done, stand_down) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let outcome = stand_down.recv_timeout(DEADLINE);
            if outcome.is_err() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            outcome == Err(RecvTimeoutError::Timeout)
        });
        Self { done, thread }
    }

    /// Whether it had to kill the process.
    fn stand_down(self) -> bool {
        let _ = self.done.send(());
        self.thread.join().expect("watchdog")
    }
}

/// Reads the child's event lines and sends SIGKILL as soon as `kill_when` holds for the
/// events read so far (checked before the first line too). Then reads what the process
/// printed before it died, up to EOF.
fn follow(
    mut child: Child,
    mut kill_when: impl FnMut(&[Value]) -> bool,
    stderr: String,
) -> Session {
    let watchdog = Watchdog::new(child.id());
    let stderr = drain(child.stderr.take().expect("stderr"), stderr);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut events = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        if kill_when(&events) {
            child.kill().expect("SIGKILL");
            killed = true;
            break;
        }
        line.clear();
        if stdout.read_line(&mut line).expect("read stdout") == 0 {
            break;
        }
        events.push(serde_json::from_str(&line).expect("an event line is JSON"));
    }
    // Lines printed before the kill landed; a torn last line was never fully printed.
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    for line in rest.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        events.push(serde_json::from_str(line).expect("an event line is JSON"));
    }
    let hung = watchdog.stand_down();
    let status = child.wait().expect("wait");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        !hung,
        "the engine did not finish within {DEADLINE:?} and was killed; it printed {} events; \
         stderr:\n{stderr}",
        events.len()
    );
    Session {
        events,
        status,
        killed,
        stderr,
    }
}

fn spawn(mut command: Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Kill after `k` event lines (0: as soon as the run exists).
fn after(k: usize) -> impl FnMut(&[Value]) -> bool {
    move |events| events.len() == k
}

fn never(_: &[Value]) -> bool {
    false
}

/// `murmur flight run crash --json`, killed when `kill_when` holds. Returns the run id and
/// the session.
fn start(fixture: &Fixture, kill_when: impl FnMut(&[Value]) -> bool) -> (String, Session) {
    let mut child = spawn(fixture.command(&["flight", "run", "crash", "--json"]));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("read stderr");
    let id = run_id_of(first.trim_end());
    child.stderr = Some(stderr.into_inner());
    (id, follow(child, kill_when, first))
}

fn resume(fixture: &Fixture, run: &str, kill_when: impl FnMut(&[Value]) -> bool) -> Session {
    let child = spawn(fixture.command(&["runs", "resume", run, "--json"]));
    follow(child, kill_when, String::new())
}

fn kind(event: &Value) -> &str {
    event["event"]["type"].as_str().expect("event type")
}

fn event_slug(event: &Value) -> Option<&str> {
    event["event"]["slug"].as_str()
}

/// Checks one session against the database before and after it, and returns the snapshot
/// after it:
/// - the events it printed are exactly the stored events that follow `before`, in order,
///   with no gap (a printed event was committed; nothing committed was lost);
/// - it first marked every attempt that was running at `before` as interrupted;
/// - no agent completed at `before` ran again or changed its attempts.
fn check_session(
    fixture: &Fixture,
    run: &str,
    label: &str,
    before: &Snapshot,
    session: &Session,
) -> Snapshot {
    let after = fixture.snapshot(run);
    let context = format!("{label}: stderr:\n{}", session.stderr);
    let first = before.logs.len();
    assert!(
        after.logs.len() >= first + session.events.len(),
        "{context}\nprinted {} events after {first}, but only {} are stored",
        session.events.len(),
        after.logs.len()
    );
    assert_eq!(
        &after.logs[..first],
        &before.logs[..],
        "{context}\nthe stored log changed under the session"
    );
    for (offset, event) in session.events.iter().enumerate() {
        let seq = (first + offset + 1) as u64;
        assert_eq!(event["seq"].as_u64(), Some(seq), "{context}\n{event}");
        let logged = &after.logs[first + offset];
        let at = event["at"].as_str().expect("at");
        let who = event_slug(event).unwrap_or("run");
        assert!(
            logged.starts_with(at.get(11..23).unwrap_or(at))
                && logged.split_whitespace().nth(1) == Some(who),
            "{context}\nevent {seq} printed as {event} but stored as `{logged}`"
        );
        match kind(event) {
            "agent_started" => {
                let attempt = event["event"]["attempt"].as_u64().expect("attempt");
                assert!(logged.contains(&format!("attempt {attempt}")), "{logged}");
            }
            "agent_output" => {
                let text = event["event"]["line"].as_str().expect("line");
                assert!(logged.ends_with(text), "{logged}");
            }
            "agent_failed" | "run_failed" | "run_canceled" | "agent_canceled" => {
                panic!("{context}\nunexpected event {event}")
            }
            _ => {}
        }
    }
    // The first commit of a resumed process interrupts the attempts that were in flight.
    let running = before.in_state("running");
    if !running.is_empty() && after.logs.len() > first {
        let interrupted: BTreeSet<&str> = after.logs[first..first + running.len()]
            .iter()
            .filter(|line| line.contains("was interrupted by an engine restart"))
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect();
        assert_eq!(
            interrupted,
            running,
            "{context}\nthe running attempts were not interrupted first:\n{}",
            after.logs[first..].join("\n")
        );
    }
    for done in before.in_state("completed") {
        assert_eq!(
            after.agents[done], before.agents[done],
            "{context}\n{done} was completed before the session, then changed"
        );
        assert_eq!(
            after.ledger.get(done),
            before.ledger.get(done),
            "{context}\n{done} was completed before the session, then ran again"
        );
    }
    after
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
    let full = Fixture::new(backend, "full");
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
        let fixture = Fixture::new(backend, &format!("k{k}"));
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
    let Ok(url) = std::env::var("MURMUR_TEST_POSTGRES_URL") else {
        if std::env::var("MURMUR_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("MURMUR_SKIP_POSTGRES=1: skipping the PostgreSQL crash test");
            return;
        }
        panic!(
            "the PostgreSQL crash test needs a server: set MURMUR_TEST_POSTGRES_URL to a URL of \
             a role that may CREATE DATABASE, e.g. \
             MURMUR_TEST_POSTGRES_URL=postgres://murmur:murmur@127.0.0.1:5432/postgres \
             (or set MURMUR_SKIP_POSTGRES=1 to skip this test)"
        );
    };
    crash_and_resume_everywhere(&Backend::Postgres(url), "postgres");
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
    assert_eq!(killed.agents["slow"], ("running".to_owned(), 1));
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
            ("agent_output", Some("slow")),
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
