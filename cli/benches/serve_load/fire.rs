//! The load generator: one thread per connection, each with its own token, starting runs back
//! to back on one keep-alive connection, every request with an `Idempotency-Key` of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// When the connections stop starting runs.
#[derive(Clone, Copy)]
pub enum Stop {
    After(Duration),
    /// Once this many requests were sent, over all connections.
    Count(usize),
}

pub struct Load {
    pub url: String,
    pub tokens: Vec<String>,
    pub stop: Stop,
    pub key_prefix: &'static str,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Run id and latency of every `202`.
    accepted: Vec<(String, Duration)>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

/// What all connections saw, and how long they took.
pub struct Fired {
    tallies: Vec<Tally>,
    pub elapsed: Duration,
    /// When the first request was sent and the last answer came.
    pub began: std::time::SystemTime,
    pub ended: std::time::SystemTime,
}

pub fn fire(load: &Load) -> Fired {
    let barrier = Arc::new(Barrier::new(load.tokens.len() + 1));
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = load
        .tokens
        .iter()
        .enumerate()
        .map(|(n, token)| {
            let (url, token) = (load.url.clone(), token.clone());
            let (barrier, sent, stop) = (barrier.clone(), sent.clone(), load.stop);
            let prefix = format!("{}-{}-{n}", load.key_prefix, uuid::Uuid::new_v4().simple());
            std::thread::spawn(move || {
                barrier.wait();
                let deadline = match stop {
                    Stop::After(limit) => Some(Instant::now() + limit),
                    Stop::Count(_) => None,
                };
                let go_on = || match (stop, deadline) {
                    (Stop::Count(limit), _) => sent.fetch_add(1, Ordering::Relaxed) < limit,
                    (_, Some(deadline)) => Instant::now() < deadline,
                    (_, None) => false,
                };
                connection(&url, &token, &prefix, go_on)
            })
        })
        .collect();
    barrier.wait();
    let began = std::time::SystemTime::now();
    let started = Instant::now();
    let tallies = workers
        .into_iter()
        .map(|w| w.join().expect("connection"))
        .collect();
    Fired {
        tallies,
        elapsed: started.elapsed(),
        began,
        ended: std::time::SystemTime::now(),
    }
}

fn connection(url: &str, token: &str, prefix: &str, go_on: impl Fn() -> bool) -> Tally {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let mut tally = Tally::default();
    let mut n = 0u64;
    while go_on() {
        n += 1;
        let sent = Instant::now();
        let response = agent
            .post(url)
            .header("Authorization", &auth)
            .header("Idempotency-Key", &format!("{prefix}-{n}"))
            .send_json(serde_json::json!({"inputs": {}}));
        let Ok(mut response) = response else {
            tally.errors += 1;
            continue;
        };
        let status = response.status().as_u16();
        *tally.statuses.entry(status).or_default() += 1;
        let body: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
        if status == 202
            && let Some(id) = body["run_id"].as_str()
        {
            tally.accepted.push((id.to_owned(), sent.elapsed()));
        }
    }
    tally
}

impl Fired {
    pub fn accepted(&self) -> usize {
        self.tallies.iter().map(|t| t.accepted.len()).sum()
    }

    pub fn accepted_ids(&self) -> Vec<&str> {
        self.tallies
            .iter()
            .flat_map(|t| t.accepted.iter().map(|(id, _)| id.as_str()))
            .collect()
    }

    /// Accepted runs/s, latency percentiles of the accepted starts, and every answer's status.
    pub fn report(&self, phase: &str) {
        let mut latencies: Vec<Duration> = self
            .tallies
            .iter()
            .flat_map(|t| t.accepted.iter().map(|(_, took)| *took))
            .collect();
        latencies.sort_unstable();
        let accepted = latencies.len();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let percentile = |p: f64| {
            let index = ((accepted as f64 * p).ceil() as usize).saturating_sub(1);
            latencies.get(index).map_or(0.0, ms)
        };
        println!(
            "{phase} accepted {accepted} runs in {:.2}s: {:.0} runs/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.elapsed.as_secs_f64(),
            accepted as f64 / self.elapsed.as_secs_f64(),
            percentile(0.50),
            percentile(0.99),
            latencies.last().map_or(0.0, ms),
        );
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        for tally in &self.tallies {
            for (status, count) in &tally.statuses {
                *statuses.entry(*status).or_default() += count;
            }
        }
        let errors: u64 = self.tallies.iter().map(|t| t.errors).sum();
        println!("{phase} answers by status: {statuses:?}; transport errors: {errors}");
    }
}
