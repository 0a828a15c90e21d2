//! Idle → sleep → wake through `murmur worker`, with the real Claude Code CLI against the
//! scripted model server: a `murmur serve` and two workers of a `workers` pool. A follow-up
//! wakes the sleeping agent on the worker that ran it, which holds its workspace and session;
//! when that worker was killed, the agent is resurrected on the other one from its branch and
//! the event log names both machines.

#[path = "../cli/tests/claude_project/mod.rs"]
mod claude_project;
#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;

use claude_project::{Project, agent, all_text, commit, text};
use murmur_testkit::{ModelServer, Turn};
use serde_json::Value;
use support::http;
use support::session::DEADLINE;
use support::watched::Watched;

/// The writer works on the workers pool; `other`, on this server's own slots, keeps the run
/// going until the test lets it end.
const CONFIG: &str = "pools:\n  fleet: { placement: workers, max_vms: 2, sleep_after: 1s }\n  local: { max_vms: 2 }\n";

fn flight(release: &str) -> String {
    format!(
        "---\nruntime: claude\npool: fleet\n---\n\n# Sleep and wake on a worker\n\n## writer\n> out: respond\n\nWrite a haiku into haiku.txt and commit it.\n\n\
         ## other\n> runtime: exec\n> pool: local\n\n```sh\nwhile [ ! -f '{release}' ]; do sleep 0.05; done\necho released\n```\n"
    )
}

struct Cluster {
    project: Project,
    model: ModelServer,
    _server: Watched,
    address: String,
    api_token: String,
    worker_token: String,
    dirs: tempfile::TempDir,
    release: PathBuf,
}

impl Cluster {
    fn new(turns: Vec<Turn>) -> Self {
        let dirs = tempfile::tempdir().expect("temp dir");
        let release = dirs.path().join("release");
        let project = Project::with_files(
            &[("haiku", &flight(&release.display().to_string()))],
            &[(".murmur/murmur.yaml", CONFIG)],
        );
        let model = ModelServer::start(turns);
        let token = |args: &[&str]| {
            let out = project.murmur(&model, args).output().expect("token");
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let api_token = token(&["token", "create", "--name", "tests"]);
        let worker_token = token(&[
            "token", "create", "--worker", "--pool", "fleet", "--name", "fleet",
        ]);
        let mut serve = project.murmur(&model, &["serve", "--bind", "127.0.0.1:0"]);
        // Short, so a killed worker is lost within the test's patience.
        serve.env("MURMUR_MACHINE_LEASE_TTL", "2");
        let mut server = Watched::spawn(serve);
        let line = server.wait_for("listening on http://");
        let address = line
            .split("listening on http://")
            .nth(1)
            .expect("address")
            .trim()
            .to_owned();
        Self {
            project,
            model,
            _server: server,
            address,
            api_token,
            worker_token,
            dirs,
            release,
        }
    }

    /// A worker in its own folder, once registered, and its machine's id.
    fn worker(&self, name: &str) -> (Watched, String) {
        let url = format!("http://{}", self.address);
        let mut command = self.project.murmur(
            &self.model,
            &["worker", "--server", &url, "--token", &self.worker_token],
        );
        command.arg("--dir").arg(self.dirs.path().join(name));
        let mut worker = Watched::spawn(command);
        let line = worker.wait_for("registered machine");
        let id = line
            .split("registered machine ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the machine's id")
            .to_owned();
        (worker, id)
    }

    fn start_run(&self) -> String {
        let auth = format!("Bearer {}", self.api_token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (status, body) = http(
            &self.address,
            "POST",
            "/v1/flights/haiku/runs",
            &headers,
            "{}",
        );
        assert!(matches!(status, 201 | 202), "start: {status} {body}");
        let run: Value = serde_json::from_str(&body).expect("json");
        run["run_id"]
            .as_str()
            .or(run["id"].as_str())
            .expect("the run's id")
            .to_owned()
    }

    /// The run's events as they are committed, from its SSE stream.
    fn events(&self, run: &str) -> Events {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        let request = format!(
            "GET /v1/runs/{run}/events HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            self.address, self.api_token
        );
        stream.write_all(request.as_bytes()).expect("send");
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let entry: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                if send.send(entry["event"].clone()).is_err() {
                    return;
                }
            }
        });
        Events {
            receive,
            seen: Vec::new(),
        }
    }

    fn queue_add(&self, run: &str, message: &str) {
        let out = self
            .project
            .murmur(
                &self.model,
                &["queue", "add", "--run", run, "--detach", "writer", message],
            )
            .output()
            .expect("queue add");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    /// The agent's worktree on worker `name`.
    fn worktree(&self, name: &str, run: &str) -> PathBuf {
        self.dirs.path().join(name).join(run).join("writer")
    }
}

struct Events {
    receive: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Events {
    /// Events up to (and including) the first that `wanted` accepts; panics after the deadline.
    fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .receive
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no matching event; seen: {:#?}", self.seen));
            self.seen.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    fn of(&self, kind: &str) -> Vec<&Value> {
        self.seen
            .iter()
            .filter(|e| e["type"] == kind && e["slug"] == "writer")
            .collect()
    }
}

fn is(event: &Value, kind: &str) -> bool {
    event["type"] == kind && event["slug"] == "writer"
}

fn git_log(worktree: &std::path::Path) -> String {
    let out = Command::new("git")
        .args(["log", "--format=%s"])
        .current_dir(worktree)
        .output()
        .expect("git log");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asleep on the worker that ran it: which of the two that was.
fn asleep_on(events: &mut Events, machines: [&str; 2]) -> usize {
    let placed = events.until(|e| is(e, "agent_placed"));
    events.until(|e| is(e, "agent_running"));
    events.until(|e| is(e, "agent_idle"));
    events.until(|e| is(e, "agent_slept"));
    let machine = placed["machine"].as_str().expect("a machine");
    machines
        .iter()
        .position(|m| *m == machine)
        .unwrap_or_else(|| panic!("placed on {machine}, not one of {machines:?}"))
}

#[test]
fn a_follow_up_wakes_the_agent_on_its_worker_in_its_session() {
    let cluster = Cluster::new(vec![
        commit("first haiku", "haiku.txt", "Autumn moonlight"),
        Turn::text("Autumn moonlight, a worm digs silently."),
        Turn::text("Second haiku: the old pond, a frog jumps in."),
    ]);
    let (_one, one) = cluster.worker("one");
    let (_two, two) = cluster.worker("two");
    let run = cluster.start_run();
    let mut events = cluster.events(&run);
    let first = asleep_on(&mut events, [&one, &two]);

    cluster.queue_add(&run, "Now write a second one.");
    events.until(|e| is(e, "agent_started") && e["attempt"] == 2);
    let woken = events.until(|e| is(e, "agent_placed") || is(e, "agent_resurrected"));
    assert_eq!(woken["type"], "agent_placed", "{woken}");
    assert_eq!(
        woken["machine"],
        [&one, &two][first].as_str(),
        "woken on its worker"
    );
    events.until(|e| is(e, "agent_idle") && e["attempt"] == 2);
    std::fs::write(&cluster.release, "").expect("release");
    events.until(|e| e["type"] == "run_completed");

    let sessions: Vec<&Value> = events
        .of("agent_session")
        .iter()
        .map(|e| &e["session_id"])
        .collect();
    assert!(
        sessions.len() >= 2 && sessions.iter().all(|s| *s == sessions[0]),
        "the same session: {sessions:?}"
    );
    let calls = cluster.model.scripted_requests();
    assert_eq!(
        calls.len(),
        3,
        "two calls for the first turn, one for the second"
    );
    let history = all_text(&calls[2]);
    assert!(
        history.contains("Autumn moonlight, a worm") && history.contains("Now write a second one."),
        "the follow-up continues the conversation: {history}"
    );
    let show = cluster.project.show(&cluster.model, &run);
    let writer = agent(&show, "writer");
    assert_eq!(writer["machine"], [&one, &two][first].as_str(), "{writer}");
    assert_eq!(
        writer["response"],
        "Second haiku: the old pond, a frog jumps in."
    );
}

#[test]
fn an_agent_whose_worker_was_killed_is_resurrected_on_the_other_from_its_branch() {
    let cluster = Cluster::new(vec![
        commit("first haiku", "haiku.txt", "Autumn moonlight"),
        Turn::text("Autumn moonlight, a worm digs silently."),
        Turn::text("Second haiku: the old pond, a frog jumps in."),
    ]);
    let (one_process, one) = cluster.worker("one");
    let (two_process, two) = cluster.worker("two");
    let run = cluster.start_run();
    let mut events = cluster.events(&run);
    let first = asleep_on(&mut events, [&one, &two]);
    let processes = [one_process, two_process];
    processes[first].signal("-KILL");
    let (dead, survivor) = ([&one, &two][first], [&one, &two][1 - first]);
    let survivor_dir = ["one", "two"][1 - first];

    cluster.queue_add(&run, "Now write a second one.");
    // The killed worker's long poll may still be open on the server when the follow-up is
    // queued, so the attempt can be handed to it before it is known to be gone: that attempt
    // is lost with the machine, and the next one is the resurrection.
    let moved = events.until(|e| {
        is(e, "agent_resurrected")
            || (is(e, "agent_placed") && e["machine"].as_str() != Some(dead.as_str()))
    });
    assert_eq!(
        moved["type"], "agent_resurrected",
        "{moved}: the killed worker was {dead}, the other {survivor}"
    );
    assert_eq!(
        (moved["from"].as_str(), moved["machine"].as_str()),
        (Some(dead.as_str()), Some(survivor.as_str()))
    );
    let attempt = moved["attempt"].as_u64().expect("attempt");
    assert!(attempt >= 2, "{moved}");
    events.until(|e| is(e, "agent_idle") && e["attempt"] == attempt);
    std::fs::write(&cluster.release, "").expect("release");
    events.until(|e| e["type"] == "run_completed");

    // Its branch came along: the first turn's commit is in the new worktree.
    let log = git_log(&cluster.worktree(survivor_dir, &run));
    assert!(log.contains("first haiku"), "{log}");
    let show = cluster.project.show(&cluster.model, &run);
    let writer = agent(&show, "writer");
    assert_eq!(writer["machine"], survivor.as_str(), "{writer}");
    assert_eq!(
        writer["response"],
        "Second haiku: the old pond, a frog jumps in."
    );
}
