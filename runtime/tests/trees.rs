//! An agent's whole process tree ends with it: a background job and a daemon that left the
//! process group and session (`setsid`, then a fork whose parent exits) are killed when the
//! agent is stopped, when it exits, and, after a `kill -9` of the engine, by the next
//! engine's `kill_marked`. Pids come from the agents' own output; exits are watched through
//! pidfds, never by sleeping.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use murmur_runtime::{ExecRequest, Update};
use murmur_testkit::process::ExitWatch;
use tokio::sync::{mpsc, oneshot};

const ENGINE: &str = "MURMUR_TEST_TREES_ENGINE";
const RUN: &str = "MURMUR_TEST_TREES_RUN";

/// Prints the pids of a daemonised `sleep` (new session, parent gone) and of a background
/// one, then waits; neither holds the output pipe.
const SPREAD: &str = "setsid sh -c 'sleep 300 >/dev/null 2>&1 & echo $!'\n\
                      sleep 300 >/dev/null 2>&1 &\necho $!\n";

fn request(script: &str, dir: &std::path::Path, run: &str) -> ExecRequest {
    ExecRequest {
        script: script.to_owned(),
        prompt: String::new(),
        workdir: dir.to_path_buf(),
        env: vec![(RUN.to_owned(), run.to_owned())],
    }
}

/// The first `count` pids the agent prints.
async fn pids(lines: &mut mpsc::UnboundedReceiver<Update>, count: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    while pids.len() < count {
        match lines.recv().await {
            Some(Update::Line(line)) => pids.extend(line.text.trim().parse::<i32>().ok()),
            Some(_) => {}
            None => panic!("the agent ended after {} pids", pids.len()),
        }
    }
    pids
}

fn assert_gone(pids: &[i32], when: &str) {
    for &pid in pids {
        assert!(ExitWatch::new(pid).wait(), "{pid} outlived {when}");
    }
}

#[tokio::test]
async fn stopping_an_agent_kills_its_daemonised_grandchildren() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (lines, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel();
    let script = format!("{SPREAD}wait");
    let run = murmur_runtime::exec::run(request(&script, dir.path(), "stop"), lines, stopped);
    let agent = tokio::spawn(run);
    let spread = pids(&mut seen, 2).await;
    stop.send(()).expect("the agent listens");
    let ended = agent.await.expect("the agent task");
    assert!(matches!(ended, Err(murmur_runtime::Error::Stopped)));
    assert_gone(&spread, "the stop");
}

#[tokio::test]
async fn an_agent_that_exits_leaves_nothing_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (lines, mut seen) = mpsc::unbounded_channel();
    let (_stop, stopped) = oneshot::channel();
    let script = format!("{SPREAD}echo\necho finished");
    let run = murmur_runtime::exec::run(request(&script, dir.path(), "exit"), lines, stopped);
    let outcome = run.await.expect("the agent succeeds");
    assert_eq!(outcome.response, "finished");
    let spread = pids(&mut seen, 2).await;
    assert_gone(&spread, "the agent's exit");
}

#[tokio::test]
async fn a_daemon_with_a_cleared_environment_is_found_through_the_cgroup() {
    if !murmur_runtime::contained_by_cgroups() {
        // Without a writable cgroup2 such a process is out of reach; ARCHITECTURE.md says so.
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (lines, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel();
    let script = "setsid env -i sh -c 'sleep 300 >/dev/null 2>&1 & echo $!'\nwait\nsleep 300";
    let run = murmur_runtime::exec::run(request(script, dir.path(), "env"), lines, stopped);
    let agent = tokio::spawn(run);
    let hidden = pids(&mut seen, 1).await;
    stop.send(()).expect("the agent listens");
    let _ = agent.await.expect("the agent task");
    assert_gone(&hidden, "the stop");
}

/// The engine's side of the crash test: only does something when started by it.
#[tokio::test]
async fn engine_side() {
    let Some(run) = std::env::var_os(ENGINE) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (lines, mut seen) = mpsc::unbounded_channel();
    let (_stop, stopped) = oneshot::channel();
    let script = format!("{SPREAD}echo $$\nwait");
    let run = request(&script, dir.path(), &run.to_string_lossy());
    let agent = tokio::spawn(murmur_runtime::exec::run(run, lines, stopped));
    for pid in pids(&mut seen, 3).await {
        println!("TREE {pid}");
    }
    let _ = agent.await;
}

#[test]
fn the_next_engine_ends_what_a_killed_engine_left_running() {
    let run = format!("trees-{}", std::process::id());
    let mut engine = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "engine_side", "--nocapture", "--test-threads=1"])
        .env(ENGINE, &run)
        .stdout(Stdio::piped())
        .spawn()
        .expect("engine starts");
    let stdout = engine.stdout.take().expect("stdout");
    let tree: Vec<i32> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints `test engine_side ... ` without a newline first.
        .filter_map(|line| line.split_once("TREE ")?.1.trim().parse().ok())
        .take(3)
        .collect();
    assert_eq!(tree.len(), 3, "the engine printed its agent's tree");
    let agent = ExitWatch::new(tree[2]);
    engine.kill().expect("SIGKILL");
    engine.wait().expect("wait");
    assert!(agent.wait(), "the agent died with its engine");
    // The kernel does not end the rest (any engine starting on this machine may, by
    // sweeping the dead one's cgroups): the check must, and wait until they are gone.
    murmur_runtime::kill_marked(RUN, &run);
    for &pid in &tree[..2] {
        assert!(!alive(pid), "{pid} outlived the next engine's check");
    }
}

/// Alive and not a zombie (a killed process whose parent has not reaped it yet).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}
