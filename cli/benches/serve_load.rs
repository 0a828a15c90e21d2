//! Load on `murmur serve`, driven from outside over HTTP, on SQLite and (with
//! `MURMUR_TEST_POSTGRES_URL`) PostgreSQL. For each store, two servers of their own:
//!
//! 1. **queueing**: one run of a `max_concurrent: 1` flight holds its only place, then 64
//!    connections start runs of that flight for `BENCH_SECONDS`: every accepted run waits.
//! 2. **executing**: 64 connections start `BENCH_RUNS` runs of a one-agent `exec` flight
//!    while the same server executes them; then the time until every accepted run has
//!    completed (the drain), and one wide flight with as many agents as there were runs,
//!    started on the same server, for the agents/s the engine reaches on one run.
//!
//! Each phase prints accepted runs/s and p50/p99/max latency of the accepted starts, checks
//! that every accepted run id is stored exactly once (and nothing else was stored), and exits
//! 1 when a check fails. `cargo bench -p murmur --bench serve_load`; settings:
//! `BENCH_SECONDS` (10), `BENCH_RUNS` (5000), `BENCH_CONNECTIONS` (64), `BENCH_SLOTS` (the
//! local pool's machines, 16), `BENCH_BACKENDS` (`sqlite,postgres`; PostgreSQL needs
//! `MURMUR_TEST_POSTGRES_URL`, a role that may `CREATE DATABASE`). Each connection has its
//! own API token, as 64 separate clients would.

#[allow(dead_code, reason = "the tests' helper; the bench uses part of it")]
#[path = "../tests/support/db.rs"]
mod db;
#[path = "serve_load/drain.rs"]
mod drain;
#[path = "serve_load/fire.rs"]
mod fire;
#[path = "serve_load/server.rs"]
mod server;

use std::time::Duration;

use fire::{Load, Stop};
use server::{Backend, Fixture};

struct Settings {
    seconds: u64,
    runs: usize,
    connections: usize,
    slots: usize,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn backends() -> Vec<Backend> {
    let wanted = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let postgres = std::env::var("MURMUR_TEST_POSTGRES_URL").ok();
    let mut backends = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match (name, &postgres) {
            ("sqlite", _) => backends.push(Backend::Sqlite),
            ("postgres", Some(url)) => backends.push(Backend::Postgres(url.clone())),
            ("postgres", None) => {
                println!("PostgreSQL skipped: MURMUR_TEST_POSTGRES_URL is not set")
            }
            (other, _) => println!("unknown backend `{other}` in BENCH_BACKENDS, skipped"),
        }
    }
    backends
}

fn main() {
    let settings = Settings {
        seconds: setting("BENCH_SECONDS", 10),
        runs: setting("BENCH_RUNS", 5000) as usize,
        connections: setting("BENCH_CONNECTIONS", 64) as usize,
        slots: setting("BENCH_SLOTS", 16) as usize,
    };
    let mut passed = true;
    for backend in backends() {
        println!("\n== {} ==", backend.name());
        passed &= queueing(&settings, &backend);
        passed &= executing(&settings, &backend);
    }
    if !passed {
        println!("\nFAILED: a check above did not hold");
        std::process::exit(1);
    }
}

/// Starts runs that all have to wait behind one holding the flight's only place.
fn queueing(settings: &Settings, backend: &Backend) -> bool {
    let fixture = Fixture::new(backend, settings.slots, settings.connections);
    let server = fixture.serve();
    let holder = server.start_one(&fixture.tokens[0], "queued");
    fixture.wait_until_running(&holder, Duration::from_secs(60));
    println!(
        "[queueing] murmur serve on {} ({}), {} connections for {}s; run {holder} holds the flight's place",
        server.address,
        fixture.describe(),
        settings.connections,
        settings.seconds
    );
    let load = Load {
        url: server.url("queued"),
        tokens: fixture.tokens.clone(),
        stop: Stop::After(Duration::from_secs(settings.seconds)),
        key_prefix: "queued",
    };
    let fired = fire::fire(&load);
    fired.report("[queueing]");
    let verified = fixture.verify("[queueing]", &fired, &[holder]);
    server.stop();
    verified
}

/// Starts runs while the server executes them, waits for all of them, then runs one wide
/// flight of the same number of agents on the same server.
fn executing(settings: &Settings, backend: &Backend) -> bool {
    let fixture = Fixture::new(backend, settings.slots, settings.connections);
    let server = fixture.serve();
    println!(
        "[executing] murmur serve on {} ({}), {} connections, {} runs of a one-agent flight, {} machines",
        server.address,
        fixture.describe(),
        settings.connections,
        settings.runs,
        settings.slots
    );
    let load = Load {
        url: server.url("one"),
        tokens: fixture.tokens.clone(),
        stop: Stop::Count(settings.runs),
        key_prefix: "one",
    };
    let fired = fire::fire(&load);
    fired.report("[executing]");
    let drained = drain::drain(&fixture, &fired, Duration::from_secs(900));
    let verified = fixture.verify("[executing]", &fired, &[]);
    let wide = drain::wide(&fixture, &server, fired.accepted().max(1));
    if let (Some(drained), Some(wide)) = (&drained, &wide) {
        println!(
            "[executing] many small runs drain at {:.0}% of one wide flight's agents/s",
            drained.runs_per_second / wide.agents_per_second * 100.0
        );
    }
    server.stop();
    verified && drained.is_some_and(|d| d.all_completed) && wide.is_some()
}
