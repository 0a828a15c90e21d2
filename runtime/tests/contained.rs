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
    let exited = murmur_testkit::process::ExitWatch::new(agent);
    engine.kill().expect("SIGKILL");
    engine.wait().expect("wait");
    assert!(exited.wait(), "agent {agent} outlived the killed engine");
}
