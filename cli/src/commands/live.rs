//! The live view of a run on a terminal: one line per agent with its state, elapsed time and
//! last output line, redrawn in place as events are committed.

use std::collections::HashMap;
use std::time::Instant;

use murmur_engine::Event;
use murmur_engine::event::GateKind;
use murmur_engine::executor::Committed;

pub struct LiveView {
    title: String,
    agents: Vec<Row>,
    index: HashMap<String, usize>,
    run_state: &'static str,
    started: Instant,
    drawn_lines: usize,
    width: usize,
}

struct Row {
    slug: String,
    state: &'static str,
    since: Option<Instant>,
    finished: Option<Instant>,
    last_line: String,
}

impl LiveView {
    pub fn new(title: String, slugs: &[String]) -> Self {
        let mut view = Self {
            title,
            agents: Vec::new(),
            index: HashMap::new(),
            run_state: "queued",
            started: Instant::now(),
            drawn_lines: 0,
            width: terminal_width(),
        };
        for slug in slugs {
            view.row(slug);
        }
        view
    }

    /// The agent's row; fan-out instances get theirs when they first show up.
    fn row(&mut self, slug: &str) -> &mut Row {
        let next = self.agents.len();
        let index = *self.index.entry(slug.to_owned()).or_insert(next);
        if index == next {
            self.agents.push(Row {
                slug: slug.to_owned(),
                state: "pending",
                since: None,
                finished: None,
                last_line: String::new(),
            });
        }
        &mut self.agents[index]
    }

    pub fn record(&mut self, committed: &Committed) {
        let now = Instant::now();
        let event = &committed.event;
        let Some(slug) = event.slug() else {
            self.run_state = match event {
                Event::RunStarted | Event::RunRetried | Event::RunReopened => "running",
                Event::RunCompleted => "completed",
                Event::RunFailed { .. } => "failed",
                Event::RunCanceled => "canceled",
                _ => self.run_state,
            };
            return;
        };
        let row = self.row(slug);
        match event {
            Event::AgentQueued { .. } => row.state = "queued",
            Event::AgentStarted { .. } => {
                row.state = "running";
                row.since = Some(now);
                row.finished = None;
            }
            Event::AgentOutput { line, .. } if !line.trim().is_empty() => {
                row.last_line = line.clone()
            }
            Event::AgentSucceeded { .. } => finish(row, "completed", now),
            Event::AgentFailed { error, .. } => {
                finish(row, "failed", now);
                row.last_line = error.clone();
            }
            Event::AgentInterrupted { .. } => row.state = "queued",
            Event::AgentRetrying { error, .. } => {
                row.state = "queued";
                row.last_line = format!("retrying after: {error}");
            }
            Event::AgentSkipped { because, .. } => {
                row.state = "skipped";
                row.last_line = because.clone();
            }
            Event::AgentCanceled { .. } => finish(row, "canceled", now),
            Event::AgentRetried { .. } => row.state = "pending",
            Event::AgentExpanded { items, .. } => {
                row.state = "fanned-out";
                row.last_line = format!("{} instance(s)", items.len());
            }
            Event::AgentAwaitingGates { .. } => row.state = "checks-pending",
            Event::GateOpened { gate, .. } => row.last_line = gate_waiting(*gate),
            Event::GatePassed { gate, .. } => row.last_line = format!("`{gate}` gate passed"),
            Event::GateFailed { gate, .. } => {
                row.last_line = format!("`{gate}` gate did not pass; feedback goes back")
            }
            Event::AgentFollowUp { .. } => {
                row.state = "queued";
                row.finished = None;
            }
            _ => {}
        }
    }

    /// Draws the next frame below whatever is on screen now (after a question was asked).
    pub fn start_below(&mut self) {
        self.drawn_lines = 0;
    }

    /// The frame to print: cursor back over the previous frame, then the new one.
    pub fn frame(&mut self) -> String {
        let mut out = String::new();
        if self.drawn_lines > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn_lines));
        }
        out.push_str("\x1b[J");
        let elapsed = self.started.elapsed().as_secs_f64();
        out.push_str(&format!(
            "{} — {} {}\n",
            self.title,
            self.run_state,
            seconds(elapsed)
        ));
        let shown = self.shown_rows();
        let slug_width = shown.iter().map(|r| r.slug.len()).max().unwrap_or(0);
        for row in &shown {
            let time = match (row.since, row.finished) {
                (Some(since), Some(end)) => seconds(end.duration_since(since).as_secs_f64()),
                (Some(since), None) => seconds(since.elapsed().as_secs_f64()),
                _ => String::new(),
            };
            let line = format!(
                "  {:<slug_width$}  {:<14} {:>7}  {}",
                row.slug, row.state, time, row.last_line
            );
            out.push_str(&clip(&line, self.width));
            out.push('\n');
        }
        let hidden = self.agents.len() - shown.len();
        if hidden > 0 {
            out.push_str(&format!("  … and {hidden} more agents (murmur ls)\n"));
        }
        self.drawn_lines = shown.len() + 1 + usize::from(hidden > 0);
        out
    }

    /// Every row while they fit; beyond that (a wide fan-out) the unfinished ones first.
    fn shown_rows(&self) -> Vec<&Row> {
        if self.agents.len() <= MAX_ROWS {
            return self.agents.iter().collect();
        }
        let (mut shown, finished): (Vec<&Row>, Vec<&Row>) =
            self.agents.iter().partition(|row| row.finished.is_none());
        shown.extend(finished);
        shown.truncate(MAX_ROWS);
        shown
    }
}

/// More rows than this would scroll the view off a terminal.
const MAX_ROWS: usize = 40;

fn gate_waiting(gate: GateKind) -> String {
    match gate {
        GateKind::Approve => "waiting for approval: murmur runs approve RUN SLUG".to_owned(),
        other => format!("checking the `{other}` gate"),
    }
}

fn finish(row: &mut Row, state: &'static str, now: Instant) {
    row.state = state;
    row.finished = Some(now);
}

fn seconds(value: f64) -> String {
    format!("{value:.1}s")
}

fn clip(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut clipped: String = line.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(event: Event) -> Committed {
        Committed {
            seq: 1,
            at: "2026-01-01T00:00:00.000Z".into(),
            event,
        }
    }

    #[test]
    fn rows_follow_the_events_and_redraw_in_place() {
        let mut view = LiveView::new("run x".into(), &["plan".into(), "build".into()]);
        view.record(&committed(Event::RunStarted));
        view.record(&committed(Event::AgentStarted {
            slug: "plan".into(),
            attempt: 1,
        }));
        view.record(&committed(Event::AgentOutput {
            slug: "plan".into(),
            attempt: 1,
            stream: murmur_engine::Stream::Stdout,
            line: "thinking".into(),
        }));
        let first = view.frame();
        assert!(first.contains("run x — running"), "{first}");
        assert!(first.contains("plan   running"), "{first}");
        assert!(first.contains("thinking"), "{first}");
        assert!(first.contains("build  pending"), "{first}");
        view.record(&committed(Event::AgentFailed {
            slug: "plan".into(),
            attempt: 1,
            error: "exit 1".into(),
        }));
        let second = view.frame();
        assert!(second.starts_with("\x1b[3A\x1b[J"), "{second:?}");
        assert!(
            second.contains("plan   failed") && second.contains("exit 1"),
            "{second}"
        );
    }

    #[test]
    fn fan_out_instances_get_rows_and_a_wide_one_is_cut_short() {
        let mut view = LiveView::new("run y".into(), &["docs".into()]);
        let items: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        view.record(&committed(Event::AgentExpanded {
            slug: "docs".into(),
            items: items.clone(),
        }));
        for item in &items {
            view.record(&committed(Event::AgentQueued {
                slug: format!("docs-{item}"),
            }));
        }
        let frame = view.frame();
        assert!(frame.contains("docs      fanned-out"), "{frame}");
        assert!(frame.contains("docs-m0"), "{frame}");
        assert!(frame.contains("… and 61 more agents"), "{frame}");
        assert_eq!(frame.lines().count(), 42);
    }
}
