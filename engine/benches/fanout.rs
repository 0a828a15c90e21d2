//! Fan-out scheduling, printed rather than asserted.
//!
//! `cargo bench -p murmur-engine --bench fanout` runs a 1,000-item fan-out on a pool of 8:
//! - the run model alone (decide and apply, every instance finishing at once), which is the
//!   engine's scheduling cost per instance;
//! - end to end on SQLite with every instance running `true` through the real `exec` runtime,
//!   next to 1,000 plain agents on the same pool, so the difference is what fan-out adds.

mod support;

use std::time::Instant;

use murmur_engine::model::RunPolicy;
use murmur_engine::{Event, RunModel, RunStatus};
use murmur_parser::Dag;
use tokio::sync::mpsc;

const ITEMS: usize = 1_000;
const POOL: usize = 8;
const NOW: &str = "2026-01-01T00:00:00.000Z";

fn fan_out(items: usize) -> String {
    let list: Vec<String> = (0..items).map(|i| format!("item{i}")).collect();
    format!(
        "---\nruntime: exec\n---\n# Fan\n\n## each-item\n> each: [{}]\n> command: true\n\n## join\n> needs: each-item\n> command: true\n",
        list.join(", ")
    )
}

fn wide(agents: usize) -> String {
    let mut text = String::from("---\nruntime: exec\n---\n# Wide\n");
    for i in 0..agents {
        text.push_str(&format!("\n## a{i}\n> command: true\n"));
    }
    text
}

/// Drives the model to the end with `POOL` machines, finishing every started attempt at once.
fn schedule_only(text: &str) -> (f64, usize) {
    let flight = murmur_parser::parse(text, "bench").flight.expect("flight");
    let dag = Dag::build(&flight.agents).expect("dag");
    let started = Instant::now();
    let mut model = RunModel::new(&flight.agents, &dag, RunPolicy::default());
    let mut events = 0;
    while !model.status().is_terminal() {
        let free = POOL.saturating_sub(model.running());
        let mut decided = model.decide(free, NOW);
        let running: Vec<(String, u32)> = model
            .agents()
            .iter()
            .filter(|agent| agent.state.holds_machine())
            .map(|agent| (agent.slug.clone(), agent.attempt))
            .collect();
        if decided.is_empty() {
            decided = finish(running);
        }
        for event in &decided {
            model.apply(event).expect("legal");
        }
        events += decided.len();
    }
    (started.elapsed().as_secs_f64(), events)
}

fn finish(running: Vec<(String, u32)>) -> Vec<Event> {
    running
        .into_iter()
        .map(|(slug, attempt)| Event::AgentSucceeded {
            slug,
            attempt,
            response: String::new(),
            delivered: Default::default(),
        })
        .collect()
}

async fn end_to_end(dir: &std::path::Path, text: &str) -> f64 {
    let executor = support::executor(dir, POOL).await;
    let id = support::create(&executor, text).await;
    let (observer, _events) = mpsc::unbounded_channel();
    let started = Instant::now();
    let status = executor.drive(&id, observer).await.expect("drive");
    assert_eq!(status, RunStatus::Completed);
    started.elapsed().as_secs_f64()
}

fn main() {
    let (seconds, events) = schedule_only(&fan_out(ITEMS));
    println!(
        "run model only: {ITEMS}-item fan-out on {POOL} machines: {:.1} ms, {:.1} µs per instance ({events} events)",
        seconds * 1e3,
        seconds * 1e6 / ITEMS as f64
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fan = tempfile::tempdir().expect("temp dir");
    let fanned = runtime.block_on(end_to_end(fan.path(), &fan_out(ITEMS)));
    let plain = tempfile::tempdir().expect("temp dir");
    let flat = runtime.block_on(end_to_end(plain.path(), &wide(ITEMS)));
    println!(
        "end to end on SQLite, `true` per agent, {POOL} machines: fan-out {:.2} s ({:.2} ms per instance), {ITEMS} plain agents {:.2} s ({:.2} ms per agent); fan-out adds {:.3} ms per instance",
        fanned,
        fanned * 1e3 / ITEMS as f64,
        flat,
        flat * 1e3 / ITEMS as f64,
        (fanned - flat) * 1e3 / ITEMS as f64
    );
}
