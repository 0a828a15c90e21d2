//! Idle → sleep → wake with the real Claude Code CLI: an agent whose turn is done stays idle on
//! its machine, sleeps after its pool's `sleep_after` (its machine goes to another agent), and a
//! follow-up wakes it on the same machine in the same session, history and all.

mod claude_project;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use claude_project::{Project, agent, all_text, text};
use murmur_testkit::{ModelServer, Turn};
use serde_json::Value;

const CONFIG: &str = "pools:\n  local: { max_vms: 1, sleep_after: 1s }\n";

fn flight(release: &str) -> String {
    format!(
        "---\nruntime: claude\n---\n\n# Sleep and wake\n\n## writer\n> out: respond\n\nWrite a haiku.\n\n\
         ## other\n> runtime: exec\n\n```sh\necho started\nwhile [ ! -f '{release}' ]; do sleep 0.05; done\necho released\n```\n"
    )
}

/// The `event` objects of `flight run --json`, as they are printed.
fn events_of(child: &mut std::process::Child) -> mpsc::Receiver<Value> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if tx.send(value["event"].clone()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Events up to (and including) the first that `wanted` accepts; panics after a minute.
fn until(events: &mpsc::Receiver<Value>, seen: &mut Vec<Value>, wanted: impl Fn(&Value) -> bool) {
    loop {
        let event = events
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no matching event; seen: {seen:#?}"));
        let found = wanted(&event);
        seen.push(event);
        if found {
            return;
        }
    }
}

fn is(event: &Value, kind: &str, slug: &str) -> bool {
    event["type"] == kind && event["slug"] == slug
}

#[test]
fn an_idle_agent_sleeps_frees_its_machine_and_wakes_in_its_session() {
    let scratch = tempfile::tempdir().expect("scratch");
    let release = scratch.path().join("release");
    let release_path = release.display().to_string();
    let project = Project::with_files(
        &[("haiku", &flight(&release_path))],
        &[(".murmur/murmur.yaml", CONFIG)],
    );
    let server = ModelServer::start(vec![
        Turn::text("Autumn moonlight, a worm digs silently."),
        Turn::text("Second haiku: the old pond, a frog jumps in."),
    ]);
    let mut run = project
        .murmur(&server, &["flight", "run", "haiku", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let events = events_of(&mut run);
    let mut seen = Vec::new();
    until(&events, &mut seen, |e| is(e, "agent_idle", "writer"));
    until(&events, &mut seen, |e| is(e, "agent_slept", "writer"));
    // One machine: `other` could start only once `writer` slept and let it go.
    assert!(
        !seen.iter().any(|e| is(e, "agent_started", "other")),
        "`other` started while `writer` held the only machine: {seen:#?}"
    );
    until(&events, &mut seen, |e| is(e, "agent_started", "other"));

    let queued = project
        .murmur(
            &server,
            &["queue", "add", "writer", "Now write a second one."],
        )
        .output()
        .expect("queue add");
    assert_eq!(queued.status.code(), Some(0), "{}", text(&queued));
    std::fs::write(&release, "").expect("release");
    until(&events, &mut seen, |e| {
        e["type"] == "agent_started" && e["slug"] == "writer" && e["attempt"] == 2
    });
    let status = run.wait().expect("the run ends");
    while let Ok(event) = events.recv_timeout(Duration::from_secs(5)) {
        seen.push(event);
    }
    assert!(status.success(), "the run completes: {seen:#?}");

    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 2, "one call per turn");
    let woken = all_text(&calls[1]);
    assert!(
        woken.contains("Autumn moonlight") && woken.contains("Now write a second one."),
        "the follow-up continues the conversation: {woken}"
    );
    let machines: Vec<&Value> = seen
        .iter()
        .filter(|e| is(e, "agent_placed", "writer"))
        .map(|e| &e["machine"])
        .collect();
    assert_eq!(machines.len(), 2, "{seen:#?}");
    assert_eq!(machines[0], machines[1], "woken on the same machine");
    let sessions: Vec<&Value> = seen
        .iter()
        .filter(|e| is(e, "agent_session", "writer"))
        .map(|e| &e["session_id"])
        .collect();
    assert!(
        sessions.len() >= 2 && sessions.iter().all(|s| *s == sessions[0]),
        "{sessions:?}"
    );

    let show = project.show(&server, &project.latest_run(&server));
    let writer = agent(&show, "writer");
    assert_eq!(writer["state"], "completed", "{writer}");
    assert_eq!(
        writer["response"],
        "Second haiku: the old pond, a frog jumps in."
    );
    assert_eq!(writer["machine"], *machines[0]);
}
