//! `murmur flight run --server` and `murmur runs … --server` with the real binary against a
//! real `murmur serve` on 127.0.0.1, including a server killed and restarted mid-run.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{murmur, serve, serve_on, setup};

fn remote(repo: &Path, token: &str, url: &str, args: &[&str]) -> Command {
    let mut command = murmur(repo);
    command
        .args(args)
        .args(["--server", url])
        .env("MURMUR_TOKEN", token);
    command
}

fn output(mut command: Command) -> Output {
    command.output().expect("murmur runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stop(mut server: Child) {
    server.kill().expect("stop");
    server.wait().expect("reaped");
}

#[test]
fn a_run_on_a_server_is_followed_and_inspected_like_a_local_one() {
    let (repo, token) = setup(
        "---\nruntime: exec\ninputs:\n  who: { default: world }\n---\n# Job\n\n## one\n> command: echo \"hello ${{ inputs.who }}\"\n\n## two\n> needs: one\n> command: echo second\n",
    );
    let (server, address) = serve(repo.path());
    let url = format!("http://{address}");
    let run = |args: &[&str]| output(remote(repo.path(), &token, &url, args));
    let started = run(&["flight", "run", "job", "--input", "who=remote"]);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started.stderr));
    let log = text(&started.stdout);
    assert!(
        log.contains("| hello remote") && log.contains("run              completed"),
        "{log}"
    );
    assert!(
        text(&started.stderr).contains("run "),
        "{}",
        text(&started.stderr)
    );

    let listed = run(&["runs", "ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = listed[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(listed[0]["status"], "completed");
    let shown = run(&["runs", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown["inputs"]["who"], "remote");
    assert_eq!(shown["agents"][1]["state"], "completed");
    let table = text(&run(&["runs", "show", &id]).stdout);
    assert!(table.contains("status   completed"), "{table}");
    let logs = text(&run(&["runs", "logs", &id, "two"]).stdout);
    assert!(
        logs.contains("| second") && !logs.contains("hello"),
        "{logs}"
    );
    let followed = text(&run(&["runs", "logs", &id, "--follow"]).stdout);
    assert!(followed.contains("| hello remote"), "{followed}");

    assert_eq!(
        run(&["runs", "cancel", &id]).status.code(),
        Some(1),
        "already ended"
    );
    assert_eq!(
        run(&["runs", "retry", &id]).status.code(),
        Some(2),
        "nothing to retry"
    );
    let unknown = run(&["flight", "run", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("no flight `nope`"),
        "{}",
        text(&unknown.stderr)
    );
    let detached = run(&["flight", "run", "job", "--detach"]);
    assert_eq!(detached.status.code(), Some(0));
    assert_eq!(text(&detached.stdout).trim().len(), 32, "the run id");
    stop(server);
}

#[test]
fn a_failed_run_on_a_server_exits_1() {
    let (repo, token) =
        setup("---\nruntime: exec\n---\n# Job\n\n## fail\n> command: echo broken >&2; exit 3\n");
    let (server, address) = serve(repo.path());
    let url = format!("http://{address}");
    let failed = output(remote(
        repo.path(),
        &token,
        &url,
        &["flight", "run", "job", "--json"],
    ));
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let last = text(&failed.stdout)
        .lines()
        .last()
        .map(str::to_owned)
        .unwrap_or_default();
    let last: serde_json::Value = serde_json::from_str(&last).expect("json lines");
    assert_eq!(last["event"]["type"], "run_failed");
    stop(server);
}

/// A port nobody listens on now, for a server that must come back at the same address. It lies
/// below the kernel's ephemeral range (32768 and up): a port from that range can be taken, while the
/// server is down, by any outgoing connection — the follower's own reconnects can even connect to
/// themselves on it — and the second server could not listen there.
fn free_address() -> String {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (start..32_768)
        .chain(20_000..start)
        .map(|port| format!("127.0.0.1:{port}"))
        .find(|address| std::net::TcpListener::bind(address).is_ok())
        .expect("a free port below the ephemeral range")
}

#[test]
fn following_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let flight = support::waiting_flight(&go);
    let (repo, token) = setup(&flight);
    let bind = free_address();
    let (first, address) = serve_on(repo.path(), &bind);
    let url = format!("http://{address}");
    let mut following = remote(repo.path(), &token, &url, &["flight", "run", "job"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur starts");
    let (lines, seen) = mpsc::channel();
    let stdout = following.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("started (attempt 1)"))
    {
        log.push(
            seen.recv_timeout(Duration::from_secs(30))
                .expect("the run starts"),
        );
    }
    stop(first);
    let (second, _) = serve_on(repo.path(), &bind);
    std::fs::write(&go, "go\n").expect("release the agent");
    while !log.iter().any(|l| l.contains("| released")) {
        log.push(
            seen.recv_timeout(Duration::from_secs(60))
                .expect("the run goes on"),
        );
    }
    let status = following.wait().expect("the CLI ends");
    log.extend(seen.try_iter());
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("interrupted by an engine restart"), "{log}");
    assert!(log.contains("run              completed"), "{log}");
    stop(second);
}
