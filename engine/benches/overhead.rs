//! Engine overhead, durable on SQLite: prints figures rather than asserting them.
//!
//! `cargo bench -p murmur-engine --bench overhead` runs: a bare fsync'd SQLite commit (the floor),
//! a 200-agent chain, a 1,000-agent wide flight, and the peak memory of a 10,000-agent run.
//! Agents run `true` through the real `exec` runtime, so a process spawn is part of each agent.

mod support;

use std::time::Instant;

use murmur_engine::RunStatus;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::mpsc;

fn chain(agents: usize) -> String {
    let mut text = String::from("---\nruntime: exec\n---\n# Chain\n");
    for i in 0..agents {
        text.push_str(&format!("\n## a{i}\n"));
        if i > 0 {
            text.push_str(&format!("> needs: a{}\n", i - 1));
        }
        text.push_str("> command: true\n");
    }
    text
}

fn wide(agents: usize) -> String {
    let mut text = String::from("---\nruntime: exec\n---\n# Wide\n");
    for i in 0..agents {
        text.push_str(&format!("\n## a{i}\n> command: true\n"));
    }
    text
}

/// What one flight took: wall time, committed events, and CPU time of this process and of
/// the agents it reaped (the machine is shared, so CPU time is the steadier figure).
struct Timing {
    seconds: f64,
    cpu_seconds: f64,
    events: usize,
    /// Store transactions (fsyncs) the run's checkpoints took.
    transactions: u64,
}

async fn run_flight(dir: &std::path::Path, text: &str, slots: usize) -> Timing {
    let executor = support::executor(dir, slots).await;
    let id = support::create(&executor, text).await;
    let (observer, mut events) = mpsc::unbounded_channel();
    let counting = tokio::spawn(async move {
        let mut count = 0;
        while events.recv().await.is_some() {
            count += 1;
        }
        count
    });
    let written = executor.store.write_stats();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let status = executor.drive(&id, observer).await.expect("drive");
    let transactions = executor.store.write_stats().transactions - written.transactions;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    assert_eq!(status, RunStatus::Completed);
    Timing {
        seconds,
        cpu_seconds,
        events: counting.await.unwrap_or(0),
        transactions,
    }
}

/// User + system time of this process and its reaped children, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    stat_seconds(11..15)
}

/// User + system time of the reaped children alone: what the agents' processes cost.
fn children_cpu_seconds() -> f64 {
    stat_seconds(13..15)
}

/// The sum of `/proc/self/stat` time fields `range` (0 is the field after the command name).
fn stat_seconds(range: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which may contain spaces, start at its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14 to 17 of proc(5), in clock ticks.
    let ticks: f64 = range
        .filter_map(|i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

async fn fsync_floor(dir: &std::path::Path, commits: usize) -> f64 {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("floor.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("pool");
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT)")
        .execute(&pool)
        .await
        .expect("table");
    let started = Instant::now();
    for i in 0..commits {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("INSERT INTO t (id, data) VALUES (?, 'x')")
            .bind(i as i64)
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
    started.elapsed().as_secs_f64() / commits as f64
}

/// What one `exec` agent costs without the engine: spawning `sh -c true` and reading it out.
async fn spawn_floor(dir: &std::path::Path, runs: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..runs {
        let (lines, _) = mpsc::unbounded_channel();
        let (_stop, stopped) = tokio::sync::oneshot::channel();
        let request = murmur_runtime::ExecRequest {
            script: "true".to_owned(),
            prompt: String::new(),
            workdir: dir.to_path_buf(),
            env: Vec::new(),
        };
        murmur_runtime::exec::run(request, lines, stopped)
            .await
            .expect("sh runs");
    }
    started.elapsed().as_secs_f64() / runs as f64
}

/// Several chains at once on one store: how many checkpoints each transaction carried.
async fn concurrent_runs(runs: usize, agents: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let executor = support::executor(dir.path(), runs).await;
    let store = executor.store.clone();
    let text = chain(agents);
    let mut ids = Vec::new();
    for _ in 0..runs {
        ids.push(support::create(&executor, &text).await);
    }
    let before = store.write_stats();
    let started = Instant::now();
    let drives: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let executor = executor.clone();
            tokio::spawn(async move { executor.drive(&id, mpsc::unbounded_channel().0).await })
        })
        .collect();
    for drive in drives {
        assert_eq!(
            drive.await.expect("task").expect("drive"),
            RunStatus::Completed
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = store.write_stats();
    let checkpoints = after.checkpoints - before.checkpoints;
    let transactions = after.transactions - before.transactions;
    println!(
        "{runs} concurrent {agents}-agent chains: {seconds:.2} s, {checkpoints} checkpoints in {transactions} \
         transactions ({:.1} per fsync)",
        checkpoints as f64 / transactions.max(1) as f64
    );
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("overhead: bench");
        return;
    }
    // `cargo bench --bench overhead -- wide` runs only the figures named so (after the floors):
    // `chain`, `wide`, `concurrent`, `10000`.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|only| name.contains(only));
    let dir = tempfile::tempdir().expect("temp dir");
    let floor = fsync_floor(dir.path(), 200).await;
    println!(
        "bare SQLite commit (WAL, synchronous=FULL): {:.3} ms",
        floor * 1e3
    );
    let cpu_before = cpu_seconds();
    let child_before = children_cpu_seconds();
    let spawn = spawn_floor(dir.path(), 200).await;
    let child_cpu = (children_cpu_seconds() - child_before) / 200.0;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // The most agents/s this machine can run at all: every core busy with agents' processes.
    let spawn_bound = cores as f64 / child_cpu.max(1e-6);
    println!(
        "bare `sh -c true` through the exec runtime: {:.3} ms ({:.2} ms CPU, {:.2} ms of it the child's); \
         spawn bound {spawn_bound:.0} agents/s on {cores} cores",
        spawn * 1e3,
        (cpu_seconds() - cpu_before) / 200.0 * 1e3,
        child_cpu * 1e3
    );

    if wanted("chain") {
        chain_figure(floor, spawn).await;
    }
    if wanted("wide") {
        wide_figure(spawn_bound).await;
    }
    if wanted("concurrent") {
        concurrent_runs(20, 50).await;
    }
    if wanted("10000") {
        big_figure().await;
    }
}

async fn chain_figure(floor: f64, spawn: f64) {
    let chain_dir = tempfile::tempdir().expect("temp dir");
    let chain = run_flight(chain_dir.path(), &chain(200), 2).await;
    let per_agent = chain.seconds / 200.0;
    println!(
        "200-agent chain: {:.2} s, {:.3} ms per agent ({:.2} ms CPU, {} events, {:.2} fsyncs per agent); \
         {:.2}x the commit + spawn floor, engine overhead beyond both {:.3} ms per agent",
        chain.seconds,
        per_agent * 1e3,
        chain.cpu_seconds / 200.0 * 1e3,
        chain.events,
        chain.transactions as f64 / 200.0,
        per_agent / (floor + spawn),
        (per_agent - floor - spawn) * 1e3
    );
}

async fn wide_figure(spawn_bound: f64) {
    let wide_dir = tempfile::tempdir().expect("temp dir");
    let wide_run = run_flight(wide_dir.path(), &wide(1000), 64).await;
    println!(
        "1,000-agent wide flight (64 slots): {:.2} s, {:.0} agents/s, {:.0}% of the spawn bound \
         ({:.2} ms CPU per agent, {} events)",
        wide_run.seconds,
        1000.0 / wide_run.seconds,
        1000.0 / wide_run.seconds / spawn_bound * 100.0,
        wide_run.cpu_seconds,
        wide_run.events
    );
}

async fn big_figure() {
    let big_dir = tempfile::tempdir().expect("temp dir");
    let big = run_flight(big_dir.path(), &wide(10_000), 64).await;
    println!(
        "10,000-agent run: {:.2} s ({:.2} ms CPU per agent), peak RSS of this process {:.0} MB",
        big.seconds,
        big.cpu_seconds / 10.0,
        peak_rss_mb()
    );
}
