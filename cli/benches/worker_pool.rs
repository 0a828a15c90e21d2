//! Machines from a `workers` pool next to the local pool, measured end to end with real
//! processes: a `murmur serve` and two `murmur worker` on this host run one wide flight whose
//! agents are split between the pool `fleet` (the two workers) and `local` (this host's slots).
//! Prints the run's agents/s, the agents each pool ran, and the claim latency of a warm worker
//! machine (from an attempt's `agent_started` to its `agent_placed`: queued for the pool,
//! taken by an idle worker's poll, claimed in the store), and each pool's own agents/s (its
//! agents over the span from its first start to its last finish). `cargo bench -p murmur
//! --bench worker_pool`; `BENCH_AGENTS` (1000) sets the flight's size.

#[path = "worker_pool/cluster.rs"]
mod cluster;

use std::time::Duration;

use cluster::Cluster;

fn main() {
    let agents: usize = std::env::var("BENCH_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let cluster = Cluster::start(agents);
    let run = cluster.start_run();
    let Some(done) = cluster.wait_for_end(&run, Duration::from_secs(1800)) else {
        eprintln!("the run did not end within 30 minutes");
        std::process::exit(1);
    };
    let figures = cluster.figures(&run);
    println!(
        "{agents}-agent wide flight, half on 2 workers (pool fleet), half on local slots: {} in {:.2}s, {:.0} agents/s",
        done.status,
        done.seconds,
        agents as f64 / done.seconds
    );
    for (pool, (n, seconds)) in &figures.by_pool {
        println!(
            "pool {pool}: {n} agents in {seconds:.2}s (first start to last finish), {:.0} agents/s",
            *n as f64 / seconds
        );
    }
    println!(
        "agents by machine: {}",
        figures
            .by_machine
            .iter()
            .map(|(machine, n)| format!("{machine}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "claim latency of a warm worker machine (agent_started → agent_placed), {} claims: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        figures.claims.len(),
        percentile(&figures.claims, 0.50),
        percentile(&figures.claims, 0.99),
        percentile(&figures.claims, 1.0)
    );
    if done.status != "completed" {
        std::process::exit(1);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}
