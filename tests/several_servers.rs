//! Several `murmur serve` processes on one store (PostgreSQL, and one SQLite file): they split the runs, one of them is killed
//! with SIGKILL mid-way and another starts later, and still every run completes, no agent that
//! completed runs again, no agent runs in two places at once, and the pool's `max_vms` holds
//! across the servers. The agents' own ledger says what ran where; the figures are printed.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::beacon::Beacon;
use support::db::Backend;
use support::fixture::Fixture;
use support::http;

const RUNS: usize = 60;
const MAX_VMS: usize = 4;
const DEADLINE: Duration = Duration::from_secs(240);

/// Five agents (a diamond and a tail) that note `start|end SLUG RUN PID SERVER` in the
/// ledger (the agent's parent is the server that runs it); the last one also runs `told`.
fn flight(ledger: &std::path::Path, told: &str) -> String {
    let agent = |slug: &str, needs: &str, then: &str| {
        let note = |what: &str| {
            format!(
                "echo \"{what} {slug} $MURMUR_RUN_ID $$ $PPID\" >> {}",
                ledger.display()
            )
        };
        format!(
            "## {slug}\n{needs}> command: {}; sleep 0.1; {}{then}\n\n",
            note("start"),
            note("end")
        )
    };
    format!(
        "---\nruntime: exec\non:\n  http: {{}}\n---\n# Five\n\n{}{}{}{}{}",
        agent("plan", "", ""),
        agent("left", "> needs: plan\n", ""),
        agent("right", "> needs: plan\n", ""),
        agent("join", "> needs: left, right\n", ""),
        agent("ship", "> needs: join\n", &format!("; {told}")),
    )
}

struct Server {
    child: Child,
    address: String,
}

fn start_server(fixture: &Fixture) -> Server {
    let mut child = fixture
        .command(&["serve", "--bind", "127.0.0.1:0"])
        // Long enough that a loaded machine renews in time: the killed server's runs are taken
        // over at once anyway, its driver being proven gone on this host.
        .env("MURMUR_LEASE_TTL", "10s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("serve says where it listens")
            .expect("line");
        if let Some(address) = line.split("listening on http://").nth(1) {
            break address.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, address }
}

fn completed_runs(fixture: &Fixture) -> BTreeSet<String> {
    let out = fixture.murmur(&["runs", "ls", "--json", "--limit", "1000"]);
    assert!(out.status.success(), "{out:?}");
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    runs.iter()
        .filter(|run| run["status"] == "completed")
        .filter_map(|run| run["id"].as_str().map(str::to_owned))
        .collect()
}

/// Kills the servers if the runs have not completed within [`DEADLINE`], so that a hung run
/// fails the test instead of hanging it (the event streams end with their servers).
struct Watchdog {
    disarm: std::sync::mpsc::Sender<()>,
    fired: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn arm(pids: Vec<u32>) -> Self {
        let (disarm, disarmed) = std::sync::mpsc::channel::<()>();
        let fired = std::thread::spawn(move || {
            let timed_out = disarmed.recv_timeout(DEADLINE).is_err();
            if timed_out {
                for pid in pids {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
            timed_out
        });
        Self { disarm, fired }
    }

    /// Whether it had to kill the servers.
    fn disarm(self) -> bool {
        let _ = self.disarm.send(());
        self.fired.join().expect("watchdog")
    }
}

/// One ledger line: what happened, to which agent of which run, in which process.
struct Entry {
    start: bool,
    agent: (String, String),
    pid: String,
    server: String,
}

fn ledger(path: &std::path::Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .expect("ledger")
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (what, slug, run) = (words.next()?, words.next()?, words.next()?);
            let (pid, server) = (words.next()?, words.next()?);
            Some(Entry {
                start: what == "start",
                agent: (run.to_owned(), slug.to_owned()),
                pid: pid.to_owned(),
                server: server.to_owned(),
            })
        })
        .collect()
}

/// The run's log: each agent succeeded exactly once, and nothing of it started afterwards.
fn completed_once(address: &str, auth: &str, run: &str) {
    let path = format!("/v1/runs/{run}/events");
    let (status, body) = http(address, "GET", &path, &[("Authorization", auth)], "");
    assert_eq!(status, 200, "{body}");
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON log");
    let mut succeeded = BTreeSet::new();
    for entry in &events {
        let event = &entry["event"];
        let slug = event["slug"].as_str().unwrap_or_default().to_owned();
        match event["type"].as_str() {
            Some("agent_started") => {
                assert!(
                    !succeeded.contains(&slug),
                    "{run}/{slug} ran again after it completed"
                )
            }
            Some("agent_succeeded") => assert!(
                succeeded.insert(slug.clone()),
                "{run}/{slug} completed twice"
            ),
            _ => {}
        }
    }
    assert_eq!(succeeded.len(), 5, "{run}: every agent completed");
}

/// The agents' pids that the killed server ran.
fn killed_pids<'a>(entries: &'a [Entry], server: &str) -> BTreeSet<&'a str> {
    entries
        .iter()
        .filter(|entry| entry.server == server)
        .map(|entry| entry.pid.as_str())
        .collect()
}

every_backend!(three_servers_survive_a_kill_and_share_the_pool);

/// On PostgreSQL the servers of a fleet; on SQLite several processes on one file (the same
/// guarantees hold, with commits of other processes found by looking again).
fn three_servers_survive_a_kill_and_share_the_pool(backend: &Backend) {
    let fixture = Fixture::new(backend, "several_servers");
    fixture.write_config(&format!("pools:\n  local: {{ max_vms: {MAX_VMS} }}\n"));
    let shipped = Beacon::bind();
    fixture.write_flight("five", &flight(&fixture.ledger, &shipped.signal()));
    let token = fixture.murmur(&["token", "create", "--name", "load"]);
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let auth = format!("Bearer {token}");
    let mut servers: Vec<Server> = (0..3).map(|_| start_server(&fixture)).collect();

    let started = Instant::now();
    let mut runs = Vec::new();
    for index in 0..RUNS {
        let server = &servers[index % servers.len()];
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (status, body) = http(
            &server.address,
            "POST",
            "/v1/flights/five/runs",
            &headers,
            "{}",
        );
        assert_eq!(status, 202, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        runs.push(answer["run_id"].as_str().expect("run id").to_owned());
    }
    // Kill one server while its runs are in flight (a quarter of the runs shipped); a fourth
    // joins later.
    for _ in 0..RUNS / 4 {
        shipped.wait("a run's last agent");
    }
    let mut killed = servers.remove(0);
    let killed_pid = killed.child.id().to_string();
    killed.child.kill().expect("SIGKILL");
    killed.child.wait().expect("reaped");
    let killed_at = Instant::now();
    // Every line after this one was written after the kill: its agents died with it.
    let kill_line = ledger(&fixture.ledger).len();
    let done_at_kill = completed_runs(&fixture).len();
    servers.push(start_server(&fixture));
    let pids: Vec<u32> = servers.iter().map(|server| server.child.id()).collect();
    let watchdog = Watchdog::arm(pids);
    for run in &runs {
        // A run's event stream ends once the run has ended, whichever server drives it.
        let events = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
        ];
        let path = format!("/v1/runs/{run}/events");
        let (status, stream) = http(&servers[0].address, "GET", &path, &events, "");
        assert_eq!(status, 200, "{stream}");
        assert!(stream.contains("event: run_completed"), "{run}: {stream}");
    }
    assert!(
        !watchdog.disarm(),
        "the runs did not complete within {DEADLINE:?}"
    );
    assert_eq!(completed_runs(&fixture).len(), RUNS, "every run completed");
    let finished = killed_at.elapsed();
    for run in &runs {
        completed_once(&servers[0].address, &auth, run);
    }
    for mut server in servers {
        let _ = server.child.kill();
        let _ = server.child.wait();
    }

    let entries = ledger(&fixture.ledger);
    let killed_agents = killed_pids(&entries, &killed_pid);
    // Per agent: the pids of its attempts still running, and whether one ran to its end. An
    // attempt that ended but whose end was never committed (its server was killed, or lost the
    // lease) is done again: the log (`completed_once`) says no committed success was.
    let mut open: BTreeMap<&(String, String), BTreeSet<&str>> = BTreeMap::new();
    let mut ended: BTreeSet<&(String, String)> = BTreeSet::new();
    let (mut peak, mut restarted) = (0usize, 0usize);
    for (line, entry) in entries.iter().enumerate() {
        if line == kill_line {
            // The killed server's agents died with it.
            for pids in open.values_mut() {
                pids.retain(|pid| !killed_agents.contains(pid));
            }
        }
        let pids = open.entry(&entry.agent).or_default();
        if entry.start {
            assert!(
                pids.is_empty(),
                "{:?} runs in two places at once",
                entry.agent
            );
            if ended.contains(&entry.agent) {
                restarted += 1;
            }
            pids.insert(&entry.pid);
        } else {
            assert!(
                pids.remove(entry.pid.as_str()),
                "{:?} ended twice",
                entry.agent
            );
            ended.insert(&entry.agent);
        }
        peak = peak.max(open.values().map(BTreeSet::len).sum());
    }
    assert_eq!(
        ended.len(),
        RUNS * 5,
        "every agent of every run ran to its end"
    );
    assert!(open.values().all(BTreeSet::is_empty));
    assert!(
        peak <= MAX_VMS,
        "at most {MAX_VMS} agents at once across servers, saw {peak}"
    );
    eprintln!(
        "several servers: {RUNS} runs, {} agents, {done_at_kill} runs done when one server was killed, \
         {restarted} finished-but-uncommitted attempts done again elsewhere, every run completed {:.1} s after the kill, \
         peak {peak} agents at once (max_vms {MAX_VMS}), {:.1} s in all",
        RUNS * 5,
        finished.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
