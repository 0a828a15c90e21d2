//! An agent's process never outlives a killed engine: this test binary runs itself as the
//! "engine", which starts an agent through the exec runtime; the test kills it with SIGKILL
//! and the agent must die with it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use murmur_runtime::{ExecRequest, Update};
use tokio::sync::{mpsc, oneshot};

const ENGINE: &str = "MURMUR_TEST_CONTAINED_ENGINE";

/// The engine's side: only does something when started by the test below.
#[tokio::test]
async fn engine_side() {
    if std::env::var_os(ENGINE).is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (lines, mut seen) = mpsc::unbounded_channel();
    let (_stop, stopped) = oneshot::channel();
    let request = ExecRequest {
        // `exec` keeps the pid, and with it the parent-death signal.
        script: "echo $$; exec sleep 300".to_owned(),
        prompt: String::new(),
        workdir: dir.path().to_path_buf(),
        env: Vec::new(),
    };
    let agent = tokio::spawn(murmur_runtime::exec::run(request, lines, stopped));
    if let Some(Update::Line(line)) = seen.recv().await {
        println!("AGENT {}", line.text);
    }
    let _ = agent.await;
}

#[test]
fn an_agent_dies_with_a_killed_engine() {
    let mut engine = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "engine_side", "--nocapture", "--test-threads=1"])
        .env(ENGINE, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("engine starts");
    let stdout = engine.stdout.take().expect("stdout");
    let agent: i32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints `test engine_side ... ` without a newline first.
        .find_map(|line| line.split_once("AGENT ")?.1.trim().parse().ok())
        .expect("the agent's pid");
    let exited = ExitWatch::new(agent);
    engine.kill().expect("SIGKILL");
    engine.wait().expect("wait");
    assert!(exited.wait(), "agent {agent} outlived the killed engine");
}

/// A pidfd for a process that is not our child: readable once the process has exited.
struct ExitWatch(Option<i32>);

impl ExitWatch {
    #[allow(unsafe_code)]
    fn new(pid: i32) -> Self {
        // SAFETY: pidfd_open(2) takes two integers and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Self(i32::try_from(fd).ok().filter(|&fd| fd >= 0))
    }

    /// Blocks until the process exits (at most 10 s); true when it did.
    #[allow(unsafe_code)]
    fn wait(self) -> bool {
        let Some(fd) = self.0 else { return true };
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` points at one valid pollfd for the duration of the call, and the
        // fd is ours; it is closed right after.
        let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
        unsafe { libc::close(fd) };
        ready == 1
    }
}
