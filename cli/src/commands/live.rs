//! The live view of a run on a terminal: one line per agent with its state, elapsed time and
//! last output line, redrawn in place as events are committed. Everything an agent wrote is
//! sanitised before it is kept; the layout (`frame`) fits the frame to the terminal's size,
//! read again for every frame.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use murmur_engine::event::GateKind;
use murmur_engine::executor::Committed;
use murmur_engine::{AgentState, Event, RunStatus};

use crate::commands::frame;
use crate::terminal::{self, Size};
use crate::views::AgentView;

pub struct LiveView {
    title: String,
    agents: Vec<Row>,
    index: HashMap<String, usize>,
    run_state: &'static str,
    started: Instant,
    /// The display width of each line of the frame on screen, to move back over it.
    drawn: Vec<usize>,
}

struct Row {
    slug: String,
    state: &'static str,
    since: Option<Instant>,
    finished: Option<Instant>,
    last_line: String,
}

/// How much of an agent's line is kept: more than any terminal shows, far less than the
/// megabyte an agent may print on one line.
const NOTE_COLUMNS: usize = 512;

/// Agent-provided text as it may be shown: sanitised, one line, bounded.
fn note(text: &str) -> String {
    let head = match text.char_indices().nth(NOTE_COLUMNS * 2) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    terminal::clip(&terminal::sanitize(head), NOTE_COLUMNS).into_owned()
}

impl LiveView {
    pub fn new(title: String, slugs: &[String]) -> Self {
        let mut view = Self {
            title: terminal::sanitize(&title).into_owned(),
            agents: Vec::new(),
            index: HashMap::new(),
            run_state: "queued",
            started: Instant::now(),
            drawn: Vec::new(),
        };
        for slug in slugs {
            view.row(slug);
        }
        view
    }

    /// Starts from what the store says (a resumed run, a run followed while in progress), so
    /// that the first frame shows finished agents as finished and the run as it stands.
    pub fn restore(&mut self, run_status: &str, agents: &[AgentView]) {
        self.run_state = match RunStatus::parse(run_status) {
            Some(status) => status.as_str(),
            // What a server shows for a run nobody drives at the moment.
            None if run_status == "interrupted" => "interrupted",
            None => self.run_state,
        };
        let now = Instant::now();
        for agent in agents {
            let state = AgentState::parse(&agent.state);
            let row = self.row(&agent.slug);
            row.state = state.map_or("pending", AgentState::as_str);
            row.since = ago(agent.started_at.as_deref()).and_then(|d| now.checked_sub(d));
            row.finished = ago(agent.finished_at.as_deref()).and_then(|d| now.checked_sub(d));
            let said = match state {
                Some(AgentState::Failed) => agent.error.as_deref(),
                _ => agent.response.as_deref().map(last_line),
            };
            row.last_line = said.map(note).unwrap_or_default();
        }
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
        // When it was committed, not when it arrived: a replayed log (a followed run) keeps
        // its agents' real durations.
        let now = ago(Some(&committed.at))
            .and_then(|ago| Instant::now().checked_sub(ago))
            .unwrap_or_else(Instant::now);
        let event = &committed.event;
        let Some(slug) = event.slug() else {
            self.run_state = match event {
                Event::RunStarted | Event::RunRetried | Event::RunReopened => "running",
                Event::RunCompleted => "completed",
                Event::RunFailed { .. } => "failed",
                Event::RunCanceled { .. } => "canceled",
                _ => self.run_state,
            };
            return;
        };
        let row = self.row(slug);
        match event {
            Event::AgentQueued { .. } => row.state = "queued",
            Event::AgentStarted { .. } => {
                row.state = "starting";
                row.since = Some(now);
                row.finished = None;
            }
            Event::AgentRunning { .. } => row.state = "running",
            Event::AgentOutput { line, .. } if !line.trim().is_empty() => {
                row.last_line = note(line)
            }
            Event::AgentSucceeded { .. } => finish(row, "completed", now),
            Event::AgentFailed { error, .. } => {
                finish(row, "failed", now);
                row.last_line = note(error);
            }
            Event::AgentInterrupted { .. } => row.state = "queued",
            Event::AgentRetrying { error, .. } => {
                row.state = "queued";
                row.last_line = note(&format!("retrying after: {error}"));
            }
            Event::AgentSkipped { because, .. } => {
                row.state = "skipped";
                row.last_line = note(because);
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
        self.drawn.clear();
    }

    /// The frame to print for a terminal of `size`: the cursor back to the top of the
    /// previous frame, each line cleared and written over, then what is left below cleared.
    /// Never a clear from the top-left corner: a terminal may take that for clearing the
    /// screen and keep the old frame in its scrollback (tmux does, with `scroll-on-clear`).
    pub fn frame(&mut self, size: Size) -> String {
        let mut out = String::from("\r");
        let up = rows_taken(&self.drawn, size.columns);
        if up > 0 {
            out.push_str(&format!("\x1b[{up}A"));
        }
        let header = format!(
            "{} — {} {}",
            self.title,
            self.run_state,
            seconds(self.started.elapsed())
        );
        let rows: Vec<frame::Row> = self.agents.iter().map(Row::shown).collect();
        let lines = frame::lines(&header, &rows, size);
        self.drawn = lines.iter().map(|line| terminal::width(line)).collect();
        for line in lines {
            // Cleared before it is written: clearing after a line as wide as the terminal
            // would erase its last character.
            out.push_str("\x1b[K");
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str("\x1b[J");
        out
    }
}

impl Row {
    fn shown(&self) -> frame::Row<'_> {
        let time = match (self.since, self.finished) {
            (Some(since), Some(end)) => seconds(end.saturating_duration_since(since)),
            (Some(since), None) => seconds(since.elapsed()),
            _ => String::new(),
        };
        frame::Row {
            slug: &self.slug,
            state: self.state,
            time,
            note: &self.last_line,
        }
    }
}

/// Screen rows the lines of a frame take now. The same as their number unless the terminal
/// got narrower since, and reflowed a line that was as wide as it then was.
fn rows_taken(widths: &[usize], columns: usize) -> usize {
    widths
        .iter()
        .map(|&width| match columns {
            0 => 1,
            columns => width.div_ceil(columns).max(1),
        })
        .sum()
}

/// How long ago a stored time was; `None` when there is none or it does not read.
fn ago(at: Option<&str>) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(at?).ok()?;
    (chrono::Utc::now() - at.to_utc()).to_std().ok()
}

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

fn seconds(value: Duration) -> String {
    format!("{:.1}s", value.as_secs_f64())
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
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

    const WIDE: Size = Size {
        columns: 100,
        rows: 50,
    };

    fn output(slug: &str, line: &str) -> Committed {
        committed(Event::AgentOutput {
            slug: slug.into(),
            attempt: 1,
            stream: murmur_engine::Stream::Stdout,
            line: line.into(),
        })
    }

    #[test]
    fn an_agent_is_starting_until_its_attempt_runs() {
        let mut view = LiveView::new("run x".into(), &["plan".into()]);
        view.record(&committed(Event::RunStarted));
        view.record(&committed(Event::AgentStarted {
            slug: "plan".into(),
            attempt: 1,
        }));
        let frame = view.frame(WIDE);
        assert!(
            frame.contains("plan") && frame.contains("starting"),
            "{frame}"
        );
    }

    #[test]
    fn rows_follow_the_events_and_redraw_in_place() {
        let mut view = LiveView::new("run x".into(), &["plan".into(), "build".into()]);
        view.record(&committed(Event::RunStarted));
        view.record(&committed(Event::AgentStarted {
            slug: "plan".into(),
            attempt: 1,
        }));
        view.record(&committed(Event::AgentRunning {
            slug: "plan".into(),
            attempt: 1,
        }));
        view.record(&output("plan", "thinking"));
        let first = view.frame(WIDE);
        assert!(first.starts_with("\r\x1b[Krun x"), "{first:?}");
        assert!(first.contains("run x — running"), "{first}");
        assert!(first.contains("plan   running"), "{first}");
        assert!(first.contains("thinking"), "{first}");
        assert!(first.contains("build  pending"), "{first}");
        view.record(&committed(Event::AgentFailed {
            slug: "plan".into(),
            attempt: 1,
            error: "exit 1".into(),
        }));
        let second = view.frame(WIDE);
        assert!(second.starts_with("\r\x1b[3A\x1b[K"), "{second:?}");
        assert!(second.ends_with("\n\x1b[J"), "{second:?}");
        assert!(
            second.contains("plan   failed") && second.contains("exit 1"),
            "{second}"
        );
    }

    #[test]
    fn agent_text_is_escaped_and_cut_to_the_width() {
        let mut view = LiveView::new("run \x1b[31mx".into(), &["noisy".into()]);
        view.record(&output("noisy", "\x1b[2J\x1b[Hgone\r"));
        let frame = view.frame(WIDE);
        assert!(frame.contains("\\x1b[2J\\x1b[Hgone"), "{frame}");
        assert!(frame.contains("run \\x1b[31mx"), "{frame}");
        // The view's own control sequences come first; nothing the agent wrote is one.
        let body = frame.replace("\x1b[K", "").replace("\x1b[J", "");
        assert!(!body[1..].contains(['\x1b', '\r']), "{body:?}");
        view.record(&output("noisy", &"漢".repeat(300)));
        let narrow = Size {
            columns: 50,
            rows: 12,
        };
        let frame = view.frame(narrow).replace("\x1b[K", "");
        for line in frame.lines().skip(1) {
            assert!(terminal::width(line) <= 50, "{line}");
        }
    }

    #[test]
    fn a_narrower_terminal_moves_back_over_the_reflowed_lines() {
        let mut view = LiveView::new("run z".into(), &["a".into()]);
        view.record(&output("a", &"x".repeat(300)));
        view.frame(WIDE);
        let narrow = Size {
            columns: 50,
            rows: 12,
        };
        // The row was 100 columns wide: reflowed to 50 it takes two rows, the header one.
        assert!(view.frame(narrow).starts_with("\r\x1b[3A\x1b[K"));
        assert!(view.frame(narrow).starts_with("\r\x1b[2A\x1b[K"));
    }

    #[test]
    fn a_resumed_view_starts_from_the_stored_states() {
        let mut view = LiveView::new("run r".into(), &["first".into(), "second".into()]);
        let agent = |slug: &str, state: &str, response: Option<&str>| AgentView {
            slug: slug.into(),
            state: state.into(),
            attempts: 1,
            branch: None,
            commits: 0,
            diff_stat: None,
            response: response.map(str::to_owned),
            error: None,
            prs: Vec::new(),
            cost_usd: None,
            turns: None,
            session_id: None,
            machine: None,
            parent: None,
            started_at: Some("2026-01-01T00:00:00.000Z".into()),
            finished_at: Some("2026-01-01T00:00:02.500Z".into()),
        };
        view.restore(
            "running",
            &[
                agent("first", "completed", Some("done\n\x1b[2Jall good\n")),
                agent("second", "queued", None),
            ],
        );
        let frame = view.frame(WIDE);
        assert!(frame.contains("run r — running"), "{frame}");
        assert!(
            frame.contains("first   completed         2.5s  \\x1b[2Jall good"),
            "{frame}"
        );
        assert!(frame.contains("second  queued"), "{frame}");
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
        let frame = view.frame(WIDE);
        assert!(frame.contains("docs      fanned-out"), "{frame}");
        assert!(frame.contains("docs-m0"), "{frame}");
        assert!(frame.contains("… 54 more: 54 queued"), "{frame}");
        assert_eq!(frame.matches('\n').count(), 49);
    }
}
