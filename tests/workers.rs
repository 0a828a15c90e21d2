//! `murmur worker` end to end, real processes: a `murmur serve` with a `workers` pool and
//! workers in folders of their own. Agents run on both workers and never more than the pool's
//! two at once; a worker killed mid-agent has that attempt retried on the other; a worker
//! paused past its lease is told to stop when it comes back, and nothing it sends afterwards
//! is committed; wrong tokens, other pools and a server that is down.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::beacon::Beacon;
use support::db::Backend;
use support::fixture::Fixture;
use support::serve;
use support::watched::Watched;

const CONFIG: &str = "pools:\n  fleet: { placement: workers, max_vms: 2 }\n";

/// A server with a short lease, whose repository's flight `job` waits for the file `go`.
struct Cluster(serve::Cluster<Fixture>);

impl std::ops::Deref for Cluster {
    type Target = serve::Cluster<Fixture>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Cluster {
    /// A worker of pool `fleet` in its own folder, once it registered.
    fn worker(&self, name: &str) -> Watched {
        self.0.worker(name).0
    }

    fn start_worker(&self, name: &str, token: &str, pool: Option<&str>) -> Watched {
        let mut command = self.worker_command(name, token);
        if let Some(pool) = pool {
            command.args(["--pool", pool]);
        }
        Watched::spawn(command)
    }

    fn fixture(&self) -> &Fixture {
        &self.murmur
    }

    fn ledger(&self) -> Vec<String> {
        std::fs::read_to_string(&self.fixture().ledger)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The ledger's `start` lines of attempts that ran below worker `name`'s folder.
    fn starts_on(&self, name: &str) -> Vec<String> {
        let dir = self.worker_dir(name).display().to_string();
        self.ledger()
            .into_iter()
            .filter(|line| line.starts_with("start ") && line.contains(&dir))
            .collect()
    }
}

/// An agent of pool `fleet` that notes where it runs, reports, waits for `go`, and notes its end.
fn agent(slug: &str, ledger: &Path, beacon: &Beacon, go: &Path) -> String {
    format!(
        "## {slug}\n> retries: 1\n> command: echo \"start {slug} $MURMUR_ATTEMPT $PWD\" >> {ledger}; {signal}; until [ -e {go} ]; do sleep 0.05; done; echo \"output-of-attempt-$MURMUR_ATTEMPT\"; echo \"end {slug}\" >> {ledger}\n\n",
        ledger = ledger.display(),
        signal = beacon.signal(),
        go = go.display(),
    )
}

fn flight(agents: &str) -> String {
    format!("---\nruntime: exec\npool: fleet\n---\n# Job\n\n{agents}")
}

/// A cluster on `backend` whose flight has the agents `slugs`, all waiting for the same `go` file.
fn cluster_on(backend: &Backend, slugs: &[&str], beacon: &Beacon) -> (Cluster, PathBuf) {
    let fixture = Fixture::with_history(backend, "workers");
    fixture.write_config(CONFIG);
    let go = fixture.path("go");
    let agents: String = slugs
        .iter()
        .map(|slug| agent(slug, &fixture.ledger, beacon, &go))
        .collect();
    fixture.write_flight("job", &flight(&agents));
    let cluster = serve::Cluster::start(fixture, "fleet", serve::short_lease());
    (Cluster(cluster), go)
}

fn cluster_with(slugs: &[&str], beacon: &Beacon) -> (Cluster, PathBuf) {
    cluster_on(&Backend::Sqlite, slugs, beacon)
}

fn touch(path: &Path) {
    std::fs::write(path, "").expect("touch");
}

every_backend!(
    agents_run_on_both_workers_never_more_than_two_at_once,
    a_killed_worker_s_attempt_is_retried_on_the_other,
);

fn agents_run_on_both_workers_never_more_than_two_at_once(backend: &Backend) {
    let beacon = Beacon::bind();
    let (cluster, go) = cluster_on(backend, &["a", "b", "c", "d"], &beacon);
    let _one = cluster.worker("one");
    let _two = cluster.worker("two");
    let run = cluster.api.start_run("job");
    beacon.wait("a first agent");
    beacon.wait("a second agent");
    touch(&go);
    for _ in 0..2 {
        beacon.wait("a later agent");
    }
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");

    let (mut running, mut most) = (0i32, 0i32);
    for line in cluster.ledger() {
        running += if line.starts_with("start ") { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!(most, 2, "two at once, never more: {:#?}", cluster.ledger());
    assert!(
        !cluster.starts_on("one").is_empty(),
        "{:#?}",
        cluster.ledger()
    );
    assert!(
        !cluster.starts_on("two").is_empty(),
        "{:#?}",
        cluster.ledger()
    );
    let shown = cluster.fixture().show(&run);
    let machines: Vec<&str> = shown["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|agent| agent["machine"].as_str())
        .collect();
    assert_eq!(
        machines.len(),
        4,
        "each agent's machine is recorded: {shown:#}"
    );
    let distinct: std::collections::BTreeSet<&str> = machines.into_iter().collect();
    assert_eq!(distinct.len(), 2, "{shown:#}");
}

fn a_killed_worker_s_attempt_is_retried_on_the_other(backend: &Backend) {
    let beacon = Beacon::bind();
    let (cluster, go) = cluster_on(backend, &["a"], &beacon);
    let mut one = cluster.worker("one");
    let mut two = cluster.worker("two");
    let run = cluster.api.start_run("job");
    beacon.wait("the first attempt");
    let (victim, survivor) = if cluster.starts_on("one").is_empty() {
        (&mut two, "one")
    } else {
        (&mut one, "two")
    };
    victim.signal("-KILL");
    touch(&go);
    let events = cluster.api.events_until_ended(&run);
    let logs = cluster.fixture().logs(&run).join("\n");
    assert!(events.contains("event: run_completed"), "{logs}");
    beacon.wait("the retried attempt");
    let retried = cluster.starts_on(survivor);
    assert_eq!(retried.len(), 1, "{:#?}", cluster.ledger());
    assert!(retried[0].starts_with("start a 2 "), "{retried:?}");
}

#[test]
fn a_paused_worker_is_told_to_stop_and_what_it_sends_later_is_not_committed() {
    let beacon = Beacon::bind();
    let (cluster, go) = cluster_with(&["a"], &beacon);
    let mut one = cluster.worker("one");
    let mut two = cluster.worker("two");
    let run = cluster.api.start_run("job");
    beacon.wait("the first attempt");
    let paused = if cluster.starts_on("one").is_empty() {
        &mut two
    } else {
        &mut one
    };
    paused.signal("-STOP");
    // Its lease runs out; the attempt starts again on the other worker.
    beacon.wait("the retried attempt");
    touch(&go);
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");

    // The first attempt finished meanwhile; its worker learns that it is no longer its own.
    paused.signal("-CONT");
    paused.wait_for("no longer takes updates of attempt");
    let logs = cluster.fixture().logs(&run).join("\n");
    assert!(logs.contains("output-of-attempt-2"), "{logs}");
    assert!(!logs.contains("output-of-attempt-1"), "{logs}");
}

#[test]
fn a_wrong_token_is_refused_with_401_and_tried_again() {
    let beacon = Beacon::bind();
    let (cluster, _go) = cluster_with(&["a"], &beacon);
    let mut worker = cluster.start_worker("one", "murw_wrong", None);
    let first = worker.wait_for("refused the worker token (401)");
    assert!(first.contains("murmur token create --worker"), "{first}");
    worker.wait_for("refused the worker token (401)");
    assert!(
        worker.child.try_wait().expect("wait").is_none(),
        "it keeps trying"
    );
}

#[test]
fn a_worker_of_another_pool_is_refused() {
    let beacon = Beacon::bind();
    let (cluster, _go) = cluster_with(&["a"], &beacon);
    let mut worker = cluster.start_worker("one", &cluster.worker_token, Some("gpu"));
    let refusal = worker.wait_for("error:");
    assert!(refusal.contains("403"), "{refusal}");
    assert!(
        refusal.contains("pool `fleet` only, not `gpu`"),
        "{refusal}"
    );
    let status = worker.child.wait().expect("the worker ends");
    assert_eq!(status.code(), Some(2));
}

#[test]
fn a_worker_reconnects_to_a_server_that_was_down() {
    let beacon = Beacon::bind();
    let (mut cluster, go) = cluster_with(&["a"], &beacon);
    let mut worker = cluster.worker("one");
    cluster.kill_server();
    worker.wait_for("cannot ask for work");
    cluster.serve_again();
    touch(&go);
    let run = cluster.api.start_run("job");
    beacon.wait("the agent on the reconnected worker");
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    assert_eq!(cluster.starts_on("one").len(), 1, "{:#?}", cluster.ledger());
}
