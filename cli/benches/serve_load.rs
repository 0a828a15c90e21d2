//! Load on `murmur serve`: a server on SQLite, run starts of a one-agent `exec` flight fired
//! from 64 connections for 20 seconds, then every accepted run id checked against the store.
//!
//! `cargo bench -p murmur --bench serve_load` (`BENCH_SECONDS`, `BENCH_CONNECTIONS` change the
//! defaults). Each connection has its own API token: the rate limit is per token, and 64
//! clients are what is measured, not one client over its limit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use murmur_engine::{Clock, Store, SystemClock};

const FLIGHT: &str = "---\nruntime: exec\n---\n# Load\n\n## one\n> command: echo done\n";

/// What one connection saw.
#[derive(Default)]
struct Tally {
    accepted: Vec<(String, Duration)>,
    statuses: HashMap<u16, u64>,
    errors: u64,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = setting("BENCH_SECONDS", 20);
    let connections = setting("BENCH_CONNECTIONS", 64) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(repo.join(".git")).expect("mkdir");
    std::fs::write(repo.join(".murmur/flights/load.md"), FLIGHT).expect("flight");
    let db = repo.join(".murmur/murmur.db").display().to_string();
    let tokens = runtime().block_on(create_tokens(&db, connections));
    let (mut server, address) = serve(repo);
    println!("murmur serve on {address} (SQLite {db}), {connections} connections, {seconds}s");

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let barrier = Arc::new(Barrier::new(connections));
    let started = Instant::now();
    let workers: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(n, token)| {
            let url = format!("http://{address}/v1/flights/load/runs");
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                fire(&url, &token, n, deadline)
            })
        })
        .collect();
    let tallies: Vec<Tally> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    let elapsed = started.elapsed();
    report(&tallies, elapsed);
    let verified = runtime().block_on(verify(&db, &tallies));
    server.kill().expect("stop the server");
    server.wait().expect("reaped");
    if !verified {
        std::process::exit(1);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

async fn create_tokens(db: &str, count: usize) -> Vec<String> {
    let store = Store::open(db).await.expect("store");
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let token = format!("mur_bench_{n}_{}", uuid::Uuid::new_v4().simple());
        store
            .add_token(&format!("bench-{n}"), &token, &SystemClock.stamp())
            .await
            .expect("token");
        tokens.push(token);
    }
    tokens
}

fn serve(repo: &Path) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(repo)
        .env_remove("MURMUR_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur serve starts");
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("line");
        if let Some(address) = line.split("listening on http://").nth(1) {
            break address.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (server, address)
}

/// Starts runs back to back on one keep-alive connection until the deadline.
fn fire(url: &str, token: &str, connection: usize, deadline: Instant) -> Tally {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let mut tally = Tally::default();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let sent = Instant::now();
        let response = agent
            .post(url)
            .header("Authorization", &auth)
            .header("Idempotency-Key", &format!("bench-{connection}-{n}"))
            .send_json(serde_json::json!({"inputs": {}}));
        let mut response = match response {
            Ok(response) => response,
            Err(_) => {
                tally.errors += 1;
                continue;
            }
        };
        let status = response.status().as_u16();
        *tally.statuses.entry(status).or_default() += 1;
        if status == 202 {
            let body: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
            if let Some(id) = body["run_id"].as_str() {
                tally.accepted.push((id.to_owned(), sent.elapsed()));
            }
        }
    }
    tally
}

fn report(tallies: &[Tally], elapsed: Duration) {
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.accepted.iter().map(|(_, took)| *took))
        .collect();
    latencies.sort_unstable();
    let mut statuses: HashMap<u16, u64> = HashMap::new();
    for tally in tallies {
        for (status, count) in &tally.statuses {
            *statuses.entry(*status).or_default() += count;
        }
    }
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let accepted = latencies.len();
    let percentile = |p: f64| {
        let index = ((accepted as f64 * p).ceil() as usize).saturating_sub(1);
        latencies
            .get(index)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "accepted {accepted} runs in {:.1}s: {:.1} runs/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    let mut statuses: Vec<_> = statuses.into_iter().collect();
    statuses.sort_unstable();
    println!("responses by status: {statuses:?}; transport errors: {errors}");
}

/// Every accepted id is in the store exactly once, and the store holds no run nobody was told of.
async fn verify(db: &str, tallies: &[Tally]) -> bool {
    let store = Store::open(db).await.expect("store");
    let stored = store.runs(u64::MAX >> 1).await.expect("runs");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for run in &stored {
        *counts.entry(run.id.as_str()).or_default() += 1;
    }
    let accepted: Vec<&str> = tallies
        .iter()
        .flat_map(|t| t.accepted.iter().map(|(id, _)| id.as_str()))
        .collect();
    let missing = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .count();
    let doubled = accepted
        .iter()
        .filter(|id| counts.get(*id).is_some_and(|&c| c > 1))
        .count();
    let mut distinct = accepted.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let repeated_ids = accepted.len() - distinct.len();
    let unreported = stored.len().saturating_sub(distinct.len());
    println!(
        "verified against the store: {} accepted ids, {} runs stored; missing {missing}, stored twice {doubled}, \
         one id given twice {repeated_ids}, stored but never answered {unreported}",
        accepted.len(),
        stored.len()
    );
    missing == 0 && doubled == 0 && repeated_ids == 0
}
