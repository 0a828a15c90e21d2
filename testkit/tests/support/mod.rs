//! Harness for driving the real Claude Code CLI from tests: an isolated home and git
//! repository, and a child process whose stdout lines are read with a bounded wait.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use murmur_testkit::ModelServer;
use murmur_testkit::claude_cli::claude_command;
use serde_json::Value;

/// Far above the ~1 s a run takes; only reached when something is broken.
pub const SAFETY_NET: Duration = Duration::from_secs(120);
pub const MODEL: &str = "claude-sonnet-4-5";

/// A temporary home (CLI config and sessions) and a git repository to work in.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        Sandbox {
            _dir: dir,
            home,
            repo,
        }
    }

    pub fn claude(&self, server: &ModelServer, args: &[&str]) -> Command {
        let mut cmd = claude_command(&server.url(), &self.home);
        cmd.current_dir(&self.repo)
            .args(args)
            .args(["--output-format", "stream-json", "--verbose"])
            .args(["--allowedTools", "Bash Edit Write Read", "--model", MODEL]);
        cmd
    }
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A running CLI whose stdout lines arrive on a channel, so reads can be bounded in time.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

pub fn spawn(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn claude");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Running {
        child,
        lines,
        stderr,
    }
}

impl Running {
    /// The next stdout line, or `None` at end of output. Fails the test past the safety net.
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        match self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("claude printed nothing for {SAFETY_NET:?}");
            }
        }
    }

    /// Reads stdout to its end and waits for the exit.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + SAFETY_NET;
        let mut raw = Vec::new();
        while let Some(line) = self.next_line(deadline) {
            raw.push(line);
        }
        let status = self.child.wait().expect("wait for claude");
        let stderr = self.stderr.join().unwrap();
        Finished::new(status, raw, stderr)
    }
}

/// A finished CLI run: exit status and the stream-json transcript.
pub struct Finished {
    pub status: ExitStatus,
    pub raw: Vec<String>,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Finished {
    pub fn new(status: ExitStatus, raw: Vec<String>, stderr: String) -> Finished {
        let events = raw
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        Finished {
            status,
            raw,
            events,
            stderr,
        }
    }

    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "claude exited {:?}\nstderr: {}\nstdout:\n{}",
            self.status,
            self.stderr,
            self.raw.join("\n")
        );
    }

    pub fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == ty).collect()
    }

    pub fn init(&self) -> &Value {
        let first = self.events.first().expect("a transcript");
        assert_eq!(
            (&first["type"], &first["subtype"]),
            (&"system".into(), &"init".into()),
            "the transcript opens with system/init"
        );
        first
    }

    pub fn session_id(&self) -> String {
        self.init()["session_id"]
            .as_str()
            .expect("init has session_id")
            .to_owned()
    }

    pub fn result(&self) -> &Value {
        let last = self.events.last().expect("a transcript");
        assert_eq!(
            last["type"], "result",
            "the transcript closes with a result"
        );
        last
    }
}

/// With `MURMUR_RECORD_CLAUDE_FIXTURE` set, saves the run's stdout as a parser fixture.
pub fn record(name: &str, run: &Finished) {
    if std::env::var_os("MURMUR_RECORD_CLAUDE_FIXTURE").is_some() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        std::fs::write(fixture, run.raw.join("\n") + "\n").unwrap();
    }
}

pub fn run(cmd: Command) -> Finished {
    spawn(cmd).finish()
}
