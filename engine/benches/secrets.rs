//! What encryption adds to an attempt's start: prints figures rather than asserting them.
//!
//! `cargo bench -p murmur-engine --bench secrets` measures, on a SQLite store with a local
//! key-encryption key:
//! - the secret steps of one attempt, as the engine and the machine do them: open the
//!   agent's secrets (read the ciphertexts and the wrapped data key, unwrap it, decrypt),
//!   seal them to the machine's ephemeral key (HPKE), and open them on the machine, for 1, 3
//!   and 10 secrets (`BENCH_ROUNDS` times each, 300 unless set); with no secrets none of this
//!   runs;
//! - whole one-agent runs of `exec true` (commit, spawn, exit, commit) without secrets and
//!   with 3, `BENCH_RUNS` times each (40 unless set), for the share of an attempt's start.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use murmur_engine::RunStatus;
use murmur_engine::executor::{AgentEnvironment, Executor};
use murmur_engine::secrets::Secrets;
use murmur_protocol::AttemptKey;
use murmur_vault::{Kek, Keyring, LocalKek, MachineKey, SecretValue};
use tokio::sync::mpsc;

const AT: &str = "2026-01-01T00:00:00.000Z";
const FLIGHT: &str = "---\nruntime: exec\n---\n# One\n\n## a\n> command: true\n";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median and the 90th percentile, in microseconds.
fn quantiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9))
}

/// An executor whose agents get `names`, each a secret of 40 bytes in its store.
async fn with_secrets(dir: &std::path::Path, names: &[String]) -> Executor {
    let mut executor = support::executor(dir, 2).await;
    let keyring = Arc::new(Keyring::new(Kek::Local(LocalKek::generate().expect("kek"))));
    let secrets = Secrets::new(&executor.store, &keyring);
    for name in names {
        let value = SecretValue::new(vec![b'v'; 40]);
        secrets.set(name, &value, "bench", AT).await.expect("set");
    }
    executor.environment = AgentEnvironment {
        secrets: names.to_vec(),
        keyring: Ok(keyring),
        ..AgentEnvironment::default()
    };
    executor
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SECRET_{i}")).collect()
}

/// The secret steps of one attempt, timed as a whole and split into the engine's opening
/// and the HPKE seal and open.
async fn secret_steps(n: usize, rounds: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let executor = with_secrets(dir.path(), &names(n)).await;
    let machine = MachineKey::generate();
    let public = machine.public();
    let (mut whole, mut opening, mut sealing) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let key = AttemptKey {
            run_id: format!("run{round}"),
            slug: "a".to_owned(),
            attempt: 1,
        };
        let started = Instant::now();
        let set = executor
            .environment
            .open(&executor.store)
            .await
            .expect("open");
        let opened_at = Instant::now();
        let sealed = murmur_attempt::secrets::seal(&public, &set, &key).expect("seal");
        let on_machine =
            murmur_attempt::secrets::open(Some(&machine), &sealed, &key).expect("open");
        let done = Instant::now();
        assert_eq!(on_machine.len(), n);
        whole.push(done - started);
        opening.push(opened_at - started);
        sealing.push(done - opened_at);
    }
    let (median, p90) = quantiles(whole);
    let (open_median, _) = quantiles(opening);
    let (seal_median, _) = quantiles(sealing);
    println!(
        "{n:>2} secrets: {median:>7.0} µs median ({p90:.0} µs p90) per attempt = \
         {open_median:.0} µs opening from the store + {seal_median:.0} µs HPKE seal and open"
    );
}

/// Median wall time of a one-agent run, with `n` secrets for its agent.
async fn one_agent_runs(n: usize, runs: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("dir");
    let executor = with_secrets(dir.path(), &names(n)).await;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let id = support::create(&executor, FLIGHT).await;
        let started = Instant::now();
        let status = executor
            .drive(&id, mpsc::unbounded_channel().0)
            .await
            .expect("drive");
        samples.push(started.elapsed());
        assert_eq!(status, RunStatus::Completed);
    }
    quantiles(samples)
}

#[tokio::main]
async fn main() {
    let rounds = count("BENCH_ROUNDS", 300);
    println!(
        "the secret steps of one attempt ({rounds} rounds each; none of them without secrets):"
    );
    for n in [1, 3, 10] {
        secret_steps(n, rounds).await;
    }
    let runs = count("BENCH_RUNS", 40);
    let (plain, plain_p90) = one_agent_runs(0, runs).await;
    let (sealed, sealed_p90) = one_agent_runs(3, runs).await;
    println!("one-agent `exec true` runs ({runs} each):");
    println!(
        "   no secrets: {:>7.2} ms median ({:.2} ms p90)",
        plain / 1e3,
        plain_p90 / 1e3
    );
    println!(
        "    3 secrets: {:>7.2} ms median ({:.2} ms p90)",
        sealed / 1e3,
        sealed_p90 / 1e3
    );
    println!(
        "   difference: {:>7.2} ms of the median ({:+.1}%)",
        (sealed - plain) / 1e3,
        (sealed - plain) / plain * 100.0
    );
}
