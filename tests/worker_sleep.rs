//! Idle → sleep → wake through `murmur worker`, with the real Claude Code CLI against the
//! scripted model server: a `murmur serve` and two workers of a `workers` pool. A follow-up
//! wakes the sleeping agent on the worker that ran it, which holds its workspace and session;
//! when that worker was killed, the agent is resurrected on the other one from its branch and
//! the event log names both machines. On SQLite and PostgreSQL.

#[path = "../cli/tests/claude_project/mod.rs"]
mod claude_project;
#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

use claude_project::{Project, agent, all_text, commit, text};
use murmur_testkit::{ModelServer, Turn};
use serde_json::Value;
use support::db::{Backend, PgDatabase};
use support::serve::{self, Events, Murmur};

/// The writer works on the workers pool; `other`, on this server's own slots, keeps the run
/// going until the test lets it end.
const CONFIG: &str = "pools:\n  fleet: { placement: workers, max_vms: 2, sleep_after: 1s }\n  local: { max_vms: 2 }\n";

fn flight(release: &str) -> String {
    format!(
        "---\nruntime: claude\npool: fleet\n---\n\n# Sleep and wake on a worker\n\n## writer\n> out: respond\n\nWrite a haiku into haiku.txt and commit it.\n\n\
         ## other\n> runtime: exec\n> pool: local\n\n```sh\nwhile [ ! -f '{release}' ]; do sleep 0.05; done\necho released\n```\n"
    )
}

/// The project and its model server, as every `murmur` of the test runs against them, and the
/// file whose existence lets `other` end.
struct Claude {
    project: Project,
    model: ModelServer,
    release: PathBuf,
    _release_dir: tempfile::TempDir,
    _database: Option<PgDatabase>,
}

impl serve::Murmur for Claude {
    fn command(&self, args: &[&str]) -> Command {
        self.project.murmur(&self.model, args)
    }
}

type Cluster = serve::Cluster<Claude>;

fn cluster(backend: &Backend, turns: Vec<Turn>) -> Cluster {
    let release_dir = tempfile::tempdir().expect("temp dir");
    let release = release_dir.path().join("release");
    let mut project = Project::with_files(
        &[("haiku", &flight(&release.display().to_string()))],
        &[(".murmur/murmur.yaml", CONFIG)],
    );
    let database = support::db::created(backend, "sleep").map(|(database, url)| {
        project.use_database(url);
        database
    });
    let claude = Claude {
        project,
        model: ModelServer::start(turns),
        release,
        _release_dir: release_dir,
        _database: database,
    };
    serve::Cluster::start(claude, "fleet", serve::short_lease())
}

fn queue_add(cluster: &Cluster, run: &str, message: &str) {
    let out = cluster
        .murmur
        .command(&["queue", "add", "--run", run, "--detach", "writer", message])
        .output()
        .expect("queue add");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The agent's worktree on worker `name`.
fn worktree(cluster: &Cluster, name: &str, run: &str) -> PathBuf {
    cluster.path(name).join(run).join("writer")
}

/// The writer's events of type `kind` seen so far.
fn of<'e>(events: &'e Events, kind: &str) -> Vec<&'e Value> {
    events
        .seen
        .iter()
        .filter(|e| e["type"] == kind && e["slug"] == "writer")
        .collect()
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

/// The writer's turns: it commits a first haiku, answers with it, then writes a second.
fn two_haikus() -> Vec<Turn> {
    vec![
        commit("first haiku", "haiku.txt", "Autumn moonlight"),
        Turn::text("Autumn moonlight, a worm digs silently."),
        Turn::text("Second haiku: the old pond, a frog jumps in."),
    ]
}

every_backend!(
    a_follow_up_wakes_the_agent_on_its_worker_in_its_session,
    an_agent_whose_worker_was_killed_is_resurrected_on_the_other_from_its_branch,
);

fn a_follow_up_wakes_the_agent_on_its_worker_in_its_session(backend: &Backend) {
    let cluster = cluster(backend, two_haikus());
    let (_one, one) = cluster.worker("one");
    let (_two, two) = cluster.worker("two");
    let run = cluster.api.start_run("haiku");
    let mut events = cluster.api.events(&run);
    let first = asleep_on(&mut events, [&one, &two]);

    queue_add(&cluster, &run, "Now write a second one.");
    events.until(|e| is(e, "agent_started") && e["attempt"] == 2);
    let woken = events.until(|e| is(e, "agent_placed") || is(e, "agent_resurrected"));
    assert_eq!(woken["type"], "agent_placed", "{woken}");
    assert_eq!(
        woken["machine"],
        [&one, &two][first].as_str(),
        "woken on its worker"
    );
    events.until(|e| is(e, "agent_idle") && e["attempt"] == 2);
    std::fs::write(&cluster.murmur.release, "").expect("release");
    events.until(|e| e["type"] == "run_completed");

    let sessions: Vec<&Value> = of(&events, "agent_session")
        .iter()
        .map(|e| &e["session_id"])
        .collect();
    assert!(
        sessions.len() >= 2 && sessions.iter().all(|s| *s == sessions[0]),
        "the same session: {sessions:?}"
    );
    let calls = cluster.murmur.model.scripted_requests();
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
    let show = cluster.murmur.project.show(&cluster.murmur.model, &run);
    let writer = agent(&show, "writer");
    assert_eq!(writer["machine"], [&one, &two][first].as_str(), "{writer}");
    assert_eq!(
        writer["response"],
        "Second haiku: the old pond, a frog jumps in."
    );
}

fn an_agent_whose_worker_was_killed_is_resurrected_on_the_other_from_its_branch(backend: &Backend) {
    let cluster = cluster(backend, two_haikus());
    let (one_process, one) = cluster.worker("one");
    let (two_process, two) = cluster.worker("two");
    let run = cluster.api.start_run("haiku");
    let mut events = cluster.api.events(&run);
    let first = asleep_on(&mut events, [&one, &two]);
    let processes = [one_process, two_process];
    processes[first].signal("-KILL");
    let (dead, survivor) = ([&one, &two][first], [&one, &two][1 - first]);
    let survivor_dir = ["one", "two"][1 - first];

    queue_add(&cluster, &run, "Now write a second one.");
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
    std::fs::write(&cluster.murmur.release, "").expect("release");
    events.until(|e| e["type"] == "run_completed");

    // Its branch came along: the first turn's commit is in the new worktree.
    let log = git_log(&worktree(&cluster, survivor_dir, &run));
    assert!(log.contains("first haiku"), "{log}");
    let show = cluster.murmur.project.show(&cluster.murmur.model, &run);
    let writer = agent(&show, "writer");
    assert_eq!(writer["machine"], survivor.as_str(), "{writer}");
    assert_eq!(
        writer["response"],
        "Second haiku: the old pond, a frog jumps in."
    );
}
