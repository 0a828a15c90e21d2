//! Agents that spawn agents, with the real binary and real processes: an `exec` agent whose
//! script runs `murmur spawn` and `murmur wait` inside the run (its attempt's identity in its
//! environment, the driving process serving the agent API), the refusals, a kill of the parent
//! taking its children's processes down, and a SIGKILL of the engine while the parent waits.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;
use support::beacon::Beacon;
use support::murmur_output as murmur;
use support::session::DEADLINE;

const BIN: &str = env!("CARGO_BIN_EXE_murmur");
/// Children take machines of their pool like every agent: enough for a parent and two.
const SLOTS: &str = "pools:\n  local:\n    max_vms: 4\n";

fn repo(flight: &str, config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::write(dir.path().join(".murmur/flights/parent.md"), flight).expect("flight");
    if let Some(config) = config {
        std::fs::write(dir.path().join(".murmur/murmur.yaml"), config).expect("config");
    }
    dir
}

/// A one-agent `exec` flight whose agent `lead` runs `script` (one line).
fn parent_flight(script: &str) -> String {
    format!("---\nruntime: exec\n---\n# Parent\n\n## lead\n> command: {script}\n")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// The run of the flight `parent` (children are runs of their own).
fn parent_run(dir: &Path) -> String {
    let runs = json(&murmur(dir, &["runs", "ls", "--json"]));
    let runs = runs.as_array().expect("runs");
    let parent = runs.iter().find(|run| run["flight"] == "parent");
    parent.expect("the parent's run")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Every agent of every run, as `murmur ls --all --json` lists them.
fn all_agents(dir: &Path) -> Vec<Value> {
    let all = json(&murmur(dir, &["ls", "--all", "--json"]));
    all.as_array().cloned().unwrap_or_default()
}

fn lead_of(dir: &Path, run: &str) -> Value {
    let shown = json(&murmur(dir, &["runs", "show", run, "--json"]));
    shown["agents"][0].clone()
}

#[test]
fn an_exec_agent_spawns_two_children_and_gets_their_answers() {
    let script = format!(
        "ca=$({BIN} spawn child-a --runtime exec echo answer-a) && cb=$({BIN} spawn child-b --runtime exec echo answer-b) && a=$({BIN} wait $ca) && b=$({BIN} wait $cb) && n=$({BIN} ls --json | grep -c '\"parent\"') && echo \"got $a and $b from $n children\""
    );
    let dir = repo(&parent_flight(&script), None);
    let run = murmur(dir.path(), &["flight", "run", "parent"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let id = parent_run(dir.path());
    let lead = lead_of(dir.path(), &id);
    assert_eq!(
        lead["response"], "got answer-a and answer-b from 2 children",
        "{lead}"
    );
    let children: Vec<Value> = all_agents(dir.path())
        .into_iter()
        .filter(|agent| agent["run"] != id.as_str())
        .collect();
    let mut names: Vec<&str> = children.iter().filter_map(|c| c["slug"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["child-a", "child-b"], "{children:?}");
    for child in &children {
        assert_eq!(child["parent"], format!("{id}/lead"), "{child}");
        assert_eq!(child["state"], "completed", "{child}");
        let run = child["run"].as_str().expect("the child's run");
        let shown = json(&murmur(dir.path(), &["runs", "show", run, "--json"]));
        assert_eq!(
            shown["agents"][0]["parent"],
            format!("{id}/lead"),
            "{shown}"
        );
    }
    assert_eq!(lead["parent"], Value::Null, "{lead}");
}

#[test]
fn a_child_is_refused_outside_its_subtree_and_past_the_depth_limit() {
    // The child tries to kill its own parent, and to spawn a grandchild past max_depth 1.
    let child = format!(
        "{BIN} kill $MURMUR_RUN_ID/lead 2>&1; {BIN} spawn grand --runtime exec echo no 2>&1; echo child-done"
    );
    let script =
        format!("{BIN} spawn child --runtime exec \"{child}\" >/dev/null && {BIN} wait child");
    let dir = repo(&parent_flight(&script), Some("agents:\n  max_depth: 1\n"));
    let run = murmur(dir.path(), &["flight", "run", "parent"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lead = lead_of(dir.path(), &parent_run(dir.path()));
    let answer = lead["response"].as_str().unwrap_or_default();
    assert!(
        answer.contains("not in this agent's subtree"),
        "the kill was refused: {answer}"
    );
    assert!(
        answer.contains("levels below a run's agents") && answer.contains("max_depth"),
        "the spawn was refused: {answer}"
    );
    assert!(answer.ends_with("child-done"), "{answer}");
    let agents = all_agents(dir.path());
    assert!(
        agents.iter().all(|agent| agent["slug"] != "grand"),
        "no grandchild was recorded: {agents:?}"
    );
}

#[test]
fn the_agent_commands_outside_an_agent_say_so() {
    let dir = repo(&parent_flight("echo hi"), None);
    let mcp = support::murmur(dir.path())
        .arg("mcp")
        .env_remove("MURMUR_AGENT_TOKEN")
        .env_remove("MURMUR_API_URL")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(mcp.status.code(), Some(2), "{}", text(&mcp));
    assert!(
        text(&mcp).contains("runs outside one: MURMUR_AGENT_TOKEN is not set"),
        "{}",
        text(&mcp)
    );
}

/// Whether process `pid` still exists (a zombie counts as gone: it runs nothing).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    !stat.is_empty() && state != Some("Z")
}

fn pid_in(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path).expect("pid file");
    text.trim().parse().expect("a pid")
}

#[test]
fn killing_the_parent_takes_its_children_down() {
    let beacon = Beacon::bind();
    let signal = beacon.signal();
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).expect("mkdir");
    let child = |name: &str| {
        format!(
            "{BIN} spawn {name} --runtime exec \"echo \\$\\$ > {}/{name}; {signal}; sleep 600\"",
            pids.display()
        )
    };
    let script = format!(
        "echo $$ > {}/lead; {} && {} && {BIN} wait child-a",
        pids.display(),
        child("child-a"),
        child("child-b")
    );
    let repo = repo(&parent_flight(&script), Some(SLOTS));
    let mut driving = support::murmur(repo.path())
        .args(["flight", "run", "parent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    beacon.wait("the first child");
    beacon.wait("the second child");
    let id = parent_run(repo.path());
    let killed = murmur(repo.path(), &["kill", "lead", "--run", &id]);
    assert_eq!(killed.status.code(), Some(0), "{}", text(&killed));
    let started = Instant::now();
    for name in ["lead", "child-a", "child-b"] {
        let pid = pid_in(&pids.join(name));
        while alive(pid) {
            assert!(started.elapsed() < DEADLINE, "{name} ({pid}) still runs");
            std::thread::yield_now();
        }
    }
    let status = driving.wait().expect("the driver ends");
    assert_eq!(status.code(), Some(1), "the run ended as after a failure");
    for agent in all_agents(repo.path()) {
        assert_eq!(agent["state"], "canceled", "{agent}");
    }
}

#[test]
fn a_parent_waiting_through_an_engine_kill_gets_both_answers_and_no_child_runs_twice() {
    let beacon = Beacon::bind();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, go) = (dir.path().join("ledger"), dir.path().join("go"));
    let child_b = format!(
        "echo child-b >> {ledger}; {signal}; until [ -e {go} ]; do sleep 0.05; done; echo released",
        ledger = ledger.display(),
        signal = beacon.signal(),
        go = go.display()
    );
    let script = format!(
        "{BIN} spawn child-a --runtime exec 'echo child-a >> {ledger}; echo answer-a' >/dev/null && a=$({BIN} wait child-a) && {BIN} spawn child-b --runtime exec \"{child_b}\" >/dev/null && b=$({BIN} wait child-b) && echo \"got $a and $b\"",
        ledger = ledger.display()
    );
    let repo = repo(&parent_flight(&script), Some(SLOTS));
    let mut engine = support::murmur(repo.path())
        .args(["flight", "run", "parent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    beacon.wait("child-b");
    let id = parent_run(repo.path());
    // child-a has answered (the parent spawns child-b only after); child-b holds.
    let waited = Command::new("kill")
        .args(["-9", &engine.id().to_string()])
        .status()
        .expect("kill");
    assert!(waited.success());
    let _ = engine.wait();
    std::fs::write(&go, "").expect("release child-b");
    let resumed = murmur(repo.path(), &["runs", "resume", &id]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let lead = lead_of(repo.path(), &id);
    assert_eq!(lead["response"], "got answer-a and released", "{lead}");
    let ledger = std::fs::read_to_string(&ledger).expect("ledger");
    assert_eq!(
        ledger.lines().filter(|line| *line == "child-a").count(),
        1,
        "child-a ran once: {ledger}"
    );
    let children: Vec<Value> = all_agents(repo.path())
        .into_iter()
        .filter(|agent| agent["run"] != id.as_str())
        .collect();
    assert_eq!(
        children.len(),
        2,
        "two children, each recorded once: {children:?}"
    );
}

#[test]
fn under_murmur_serve_an_agent_spawns_a_child_through_the_server() {
    let script = format!(
        "{BIN} spawn helper --runtime exec echo served-answer >/dev/null && echo \"got $({BIN} wait helper)\""
    );
    let (repo, token) = support::setup(&parent_flight(&script));
    std::fs::write(repo.path().join(".murmur/murmur.yaml"), SLOTS).expect("config");
    let (mut server, address) = support::serve(repo.path());
    let auth = format!("Bearer {token}");
    let start = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = support::http(&address, "POST", "/v1/flights/job/runs", &start, "{}");
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("JSON")["run_id"]
        .as_str()
        .expect("run_id")
        .to_owned();
    let stream = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
    ];
    let path = format!("/v1/runs/{id}/events");
    let (_, events) = support::http(&address, "GET", &path, &stream, "");
    assert!(events.contains("event: run_completed"), "{events}");
    let (_, shown) = support::http(
        &address,
        "GET",
        &format!("/v1/runs/{id}"),
        &[("Authorization", auth.as_str())],
        "",
    );
    let shown: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(
        shown["agents"][0]["response"], "got served-answer",
        "{shown}"
    );
    server.kill().expect("stop");
    let _ = server.wait();
}

/// `sh SCRIPT`, the script written to a file next to the repository: no quoting of the
/// script inside the flight's one command line.
fn script_flight(dir: &Path, script: &str) -> String {
    let path = dir.join("lead.sh");
    std::fs::write(&path, script).expect("script");
    parent_flight(&format!("sh {}", path.display()))
}

#[test]
fn spawn_each_makes_one_child_per_item_once_and_the_items_stay_data() {
    let scripts = tempfile::tempdir().expect("temp dir");
    let items = scripts.path().join("items");
    std::fs::write(&items, "alpha\nBeta Two\n$(touch pwned)\nalpha\n").expect("items");
    let spawn = format!(
        "{BIN} spawn rev --each --runtime exec 'echo got-{{}}' < {} | paste -sd, -",
        items.display()
    );
    let script = format!(
        "set -e\nfirst=$({spawn})\nagain=$({spawn})\na=$({BIN} wait rev-alpha)\nb=$({BIN} wait rev-beta-two)\nc=$({BIN} wait rev-touch-pwned)\nn=$({BIN} ls --json | grep -c '\"parent\"')\necho \"first=$first again=$again answers=$a|$b|$c children=$n\"\n"
    );
    let dir = repo(&script_flight(scripts.path(), &script), Some(SLOTS));
    let run = murmur(dir.path(), &["flight", "run", "parent"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lead = lead_of(dir.path(), &parent_run(dir.path()));
    let names = "rev-alpha,rev-beta-two,rev-touch-pwned";
    assert_eq!(
        lead["response"],
        format!(
            "first={names} again={names} answers=got-alpha|got-Beta Two|got-$(touch pwned) children=3"
        ),
        "{lead}"
    );
    let found = Command::new("find")
        .arg(dir.path())
        .args(["-name", "pwned"])
        .output()
        .expect("find");
    assert!(
        found.stdout.is_empty(),
        "an item ran as shell text: {}",
        text(&found)
    );
}

#[test]
fn spawn_each_refuses_items_that_share_a_name_and_a_prompt_without_the_item() {
    let scripts = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "printf 'a b\\na-b\\n' | {BIN} spawn rev --each --runtime exec 'echo {{}}' 2>&1; echo \"exit $?\"; echo one | {BIN} spawn rev --each --runtime exec 'echo same' 2>&1; echo \"exit $?\"; {BIN} ls --json\n"
    );
    let dir = repo(&script_flight(scripts.path(), &script), None);
    let run = murmur(dir.path(), &["flight", "run", "parent"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lead = lead_of(dir.path(), &parent_run(dir.path()));
    let answer = lead["response"].as_str().unwrap_or_default();
    assert!(
        answer.contains("would both be the child `rev-a-b`") && answer.contains("exit 2"),
        "{answer}"
    );
    assert!(
        answer.contains("put {} (or ${{ item }}) in the prompt"),
        "{answer}"
    );
    assert!(answer.ends_with("[]"), "nothing was spawned: {answer}");
}

#[test]
fn an_agent_spawns_a_whole_flight_with_inputs() {
    let script = format!(
        "{BIN} spawn --flight greet --input name=world >/dev/null && echo \"got $({BIN} wait greet)\""
    );
    let dir = repo(&parent_flight(&script), Some(SLOTS));
    let greet = "---\nruntime: exec\ninputs:\n  name:\n    required: true\n---\n# Greet\n\n## hello\n> command: echo \"hello ${{ inputs.name }}\"\n";
    std::fs::write(dir.path().join(".murmur/flights/greet.md"), greet).expect("flight");
    let run = murmur(dir.path(), &["flight", "run", "parent"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let id = parent_run(dir.path());
    let lead = lead_of(dir.path(), &id);
    assert_eq!(lead["response"], "got hello world", "{lead}");
    let hello = all_agents(dir.path())
        .into_iter()
        .find(|agent| agent["slug"] == "hello")
        .expect("the child flight's agent");
    assert_eq!(hello["parent"], format!("{id}/lead"), "{hello}");
}

#[test]
fn top_level_spawn_of_a_flight_takes_its_inputs() {
    let dir = repo(&parent_flight("echo unused"), None);
    let greet = "---\nruntime: exec\ninputs:\n  name:\n    required: true\n---\n# Greet\n\n## hello\n> command: echo \"hello ${{ inputs.name }}\"\n";
    std::fs::write(dir.path().join(".murmur/flights/greet.md"), greet).expect("flight");
    let run = murmur(
        dir.path(),
        &["spawn", "--flight", "greet", "--input", "name=world"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let hello = all_agents(dir.path())
        .into_iter()
        .find(|agent| agent["slug"] == "hello")
        .expect("the flight's agent");
    assert_eq!(hello["response"], "hello world", "{hello}");
}
