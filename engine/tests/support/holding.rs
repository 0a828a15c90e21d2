//! Agents that hold their machine until told to go, noting in a ledger when they start and
//! end: how tests see how many machines of a pool were in use at once.

use std::path::Path;

use murmur_engine::Event;

/// An agent that notes its start and end in `ledger` and holds its machine until `go` exists;
/// on `pool` when given, else the flight's.
pub fn holding_agent(slug: &str, pool: Option<&str>, ledger: &Path, go: &Path) -> String {
    let directive = pool.map_or(String::new(), |pool| format!("> pool: {pool}\n"));
    format!(
        "## {slug}\n{directive}\n```sh\necho start >> '{ledger}'\necho waiting\nwhile [ ! -e '{go}' ]; do sleep 0.02; done\necho end >> '{ledger}'\n```\n\n",
        ledger = ledger.display(),
        go = go.display(),
    )
}

/// A flight of holding agents named `slugs`, on the flight's pool.
pub fn holding_flight(title: &str, slugs: &[&str], ledger: &Path, go: &Path) -> String {
    let agents: String = slugs
        .iter()
        .map(|slug| holding_agent(slug, None, ledger, go))
        .collect();
    format!("---\nruntime: exec\n---\n# {title}\n\n{agents}")
}

/// A holding agent's first line: it holds its machine now.
pub fn is_waiting(event: &Event) -> bool {
    matches!(event, Event::AgentOutput { line, .. } if line == "waiting")
}

/// The most agents between their `start` and `end` at any point of the ledger.
pub fn peak_concurrency(ledger: &Path) -> usize {
    let text = std::fs::read_to_string(ledger).expect("ledger");
    let (mut now, mut peak) = (0usize, 0usize);
    for line in text.lines() {
        if line == "start" {
            now += 1;
            peak = peak.max(now);
        } else {
            now = now.saturating_sub(1);
        }
    }
    peak
}
