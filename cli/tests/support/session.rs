//! One `murmur` process driving a run with `--json`, followed from outside: its event lines
//! are read as they are committed, and it is killed with SIGKILL the moment a condition on
//! them holds. Everything waits on lines and exits, never on sleeps.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

use super::fixture::Fixture;

/// How long one engine process may take. Normal sessions take a few seconds at most; the
/// bound only turns a hung engine into a failure instead of a hung test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// One `murmur` process that drove the run, as seen from outside.
pub struct Session {
    /// The committed events it printed, parsed.
    pub events: Vec<Value>,
    pub status: ExitStatus,
    pub killed: bool,
    pub stderr: String,
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
/// printed before it died, up to EOF. `stderr` is what was already read of its stderr.
pub fn follow(
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
pub fn after(k: usize) -> impl FnMut(&[Value]) -> bool {
    move |events| events.len() == k
}

pub fn never(_: &[Value]) -> bool {
    false
}

/// A started `murmur flight run FLIGHT --json` whose run exists: its id, the process, and
/// the stderr line that named the run.
pub struct Launched {
    pub run: String,
    pub child: Child,
    pub stderr: String,
}

impl Launched {
    pub fn follow(self, kill_when: impl FnMut(&[Value]) -> bool) -> Session {
        follow(self.child, kill_when, self.stderr)
    }
}

/// Starts `murmur flight run FLIGHT --json` and returns once it has created the run.
pub fn launch(fixture: &Fixture, flight: &str) -> Launched {
    let mut child = spawn(fixture.command(&["flight", "run", flight, "--json"]));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("read stderr");
    let run = run_id_of(first.trim_end());
    child.stderr = Some(stderr.into_inner());
    Launched {
        run,
        child,
        stderr: first,
    }
}

/// `murmur flight run FLIGHT --json`, killed when `kill_when` holds. Returns the run id and
/// the session.
pub fn start(
    fixture: &Fixture,
    flight: &str,
    kill_when: impl FnMut(&[Value]) -> bool,
) -> (String, Session) {
    let launched = launch(fixture, flight);
    let run = launched.run.clone();
    (run, launched.follow(kill_when))
}

/// `murmur runs resume RUN --json`, killed when `kill_when` holds.
pub fn resume(fixture: &Fixture, run: &str, kill_when: impl FnMut(&[Value]) -> bool) -> Session {
    let child = spawn(fixture.command(&["runs", "resume", run, "--json"]));
    follow(child, kill_when, String::new())
}

pub fn kind(event: &Value) -> &str {
    event["event"]["type"].as_str().expect("event type")
}

pub fn event_slug(event: &Value) -> Option<&str> {
    event["event"]["slug"].as_str()
}

/// Whether the last event read is `kind` of agent `slug`.
pub fn last_is(events: &[Value], wanted: &str, slug: &str) -> bool {
    events
        .last()
        .is_some_and(|event| kind(event) == wanted && event_slug(event) == Some(slug))
}
