//! How fast accepted runs are done: the drain of many small runs, next to one wide flight of
//! the same number of agents on the same server. Times come from the runs' own
//! `created_at`/`finished_at` in the store, so polling for the end adds nothing to them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use murmur_engine::Store;

use super::fire::Fired;
use super::server::{Fixture, Server, runtime};

pub struct Drained {
    pub runs_per_second: f64,
    pub all_completed: bool,
}

pub struct Wide {
    pub agents_per_second: f64,
}

fn stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn seconds_between(from: SystemTime, to: DateTime<Utc>) -> f64 {
    let from: DateTime<Utc> = from.into();
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Waits until no run is queued or running, at most `limit`; false when time ran out.
async fn until_idle(store: &Store, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let counts = store.run_counts().await.expect("counts");
        let busy: i64 = counts
            .iter()
            .filter(|(status, _)| status == "queued" || status == "running")
            .map(|(_, count)| count)
            .sum();
        if busy == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            println!("gave up waiting: {counts:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for every accepted run to end; prints the drain rate (accepted runs over the time
/// from the first request to the last run's end) and the runs' end statuses.
pub fn drain(fixture: &Fixture, fired: &Fired, limit: Duration) -> Option<Drained> {
    let runs = runtime().block_on(async {
        let store = fixture.store().await;
        let idle = until_idle(&store, limit).await;
        idle.then_some(store.runs(u64::MAX >> 1).await.expect("runs"))
    })?;
    let accepted: std::collections::HashSet<&str> = fired.accepted_ids().into_iter().collect();
    let mine: Vec<_> = runs
        .iter()
        .filter(|r| accepted.contains(r.id.as_str()))
        .collect();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &mine {
        *statuses.entry(run.status.as_str()).or_default() += 1;
    }
    let last = mine
        .iter()
        .filter_map(|r| r.finished_at.as_deref().and_then(stamp))
        .max()?;
    let took = seconds_between(fired.began, last);
    let after_load = seconds_between(fired.ended, last);
    let runs_per_second = mine.len() as f64 / took;
    println!(
        "[executing] drain: {} runs done {took:.2}s after the first request ({after_load:.2}s after the last answer): \
         {runs_per_second:.0} runs/s; end statuses {statuses:?}",
        mine.len()
    );
    Some(Drained {
        runs_per_second,
        all_completed: statuses.len() == 1 && statuses.contains_key("completed"),
    })
}

fn wide_flight(agents: usize) -> String {
    let mut text = String::from("---\nruntime: exec\n---\n# Wide\n");
    for i in 0..agents {
        text.push_str(&format!("\n## a{i}\n> command: true\n"));
    }
    text
}

/// One run of a flight of `agents` independent agents on the same server; its agents/s from
/// the run's creation to its end.
pub fn wide(fixture: &Fixture, server: &Server, agents: usize) -> Option<Wide> {
    fixture.write_flight("wide", &wide_flight(agents));
    let run_id = server.start_one(&fixture.tokens[0], "wide");
    let run = runtime().block_on(async {
        let store = fixture.store().await;
        until_idle(&store, Duration::from_secs(900)).await;
        store.run(&run_id).await.expect("run")
    });
    let created = stamp(&run.created_at)?;
    let finished = run.finished_at.as_deref().and_then(stamp)?;
    let took = (finished - created).num_milliseconds() as f64 / 1000.0;
    let agents_per_second = agents as f64 / took;
    println!(
        "[executing] one wide flight of {agents} agents: {} in {took:.2}s, {agents_per_second:.0} agents/s",
        run.status
    );
    (run.status == "completed").then_some(Wide { agents_per_second })
}
