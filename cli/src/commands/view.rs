//! How runs and their events look on a terminal: one line per event, and summary tables.
//! What agents wrote (output, responses, errors, feedback) is untrusted: every line printed
//! here goes through `terminal::sanitize`, so one event is one line and no escape sequence
//! reaches the terminal.

use murmur_engine::Event;
use murmur_engine::executor::Committed;
use murmur_engine::store::EventRow;

use crate::terminal::{self, sanitize};
use crate::views::{AgentView, RunDetail, RunSummary};

/// One line for an event: time, agent, what happened.
pub fn event_line(at: &str, event: &Event) -> String {
    let time = at.get(11..23).unwrap_or(at);
    let who = event.slug().unwrap_or("run");
    let what = match event {
        Event::RunStarted => "started".to_owned(),
        Event::AgentQueued { .. } => "queued, waiting for a machine".to_owned(),
        Event::AgentStarted { attempt, .. } => {
            format!("started (attempt {attempt}): claiming a machine, preparing the workspace")
        }
        Event::AgentRunning { .. } => "running".to_owned(),
        Event::AgentResurrected { from, machine, .. } => {
            format!("machine {from} is gone: resumed on {machine} from its branch")
        }
        Event::GateInterrupted { gate, .. } => {
            format!("the `{gate}` check stopped with its engine; it runs again")
        }
        Event::AgentOutput { line, stream, .. } => match stream {
            murmur_engine::Stream::Stdout => format!("| {line}"),
            murmur_engine::Stream::Stderr => format!("! {line}"),
        },
        Event::AgentSucceeded {
            response,
            delivered,
            ..
        } => match &delivered.branch {
            Some(branch) => format!(
                "completed on {branch} ({} commits): {}",
                delivered.commits,
                first_line(response)
            ),
            None => format!("completed: {}", first_line(response)),
        },
        Event::AgentSession { session_id, .. } => format!("session {session_id}"),
        Event::AgentPlaced { machine, .. } => format!("on machine {machine}"),
        Event::AgentIdle { response, .. } => {
            format!("idle on its machine: {}", first_line(response))
        }
        Event::AgentSlept { .. } => {
            "asleep: its machine is free, its workspace and session kept".to_owned()
        }
        Event::AgentWoke { .. } => "woke on its machine".to_owned(),
        Event::AgentReleased { .. } => "completed: its machine let go".to_owned(),
        Event::SleepRequested { .. } => "asked to sleep".to_owned(),
        Event::WakeRequested { .. } => "asked to wake".to_owned(),
        Event::AgentFailed { error, .. } => format!("failed: {error}"),
        Event::AgentRetrying {
            error,
            not_before,
            attempt,
            ..
        } => {
            format!("attempt {attempt} failed ({error}); retrying at {not_before}")
        }
        Event::AgentInterrupted { attempt, .. } => {
            format!("attempt {attempt} was interrupted by an engine restart; it will run again")
        }
        Event::AgentSkipped { because, .. } => format!("skipped: {because}"),
        Event::AgentCanceled { .. } => "canceled".to_owned(),
        Event::RunCompleted => "completed".to_owned(),
        Event::RunFailed { reason } => format!("failed: {reason}"),
        Event::RunCanceled { by: None } => "canceled".to_owned(),
        Event::RunCanceled { by: Some(by) } => format!("canceled by {by}"),
        Event::AgentRetried { .. } => "will run again (runs retry)".to_owned(),
        Event::RunRetried => "retried: failed, skipped and canceled agents run again".to_owned(),
        Event::AgentExpanded { items, .. } => {
            format!(
                "fans out over {} item(s): {}",
                items.len(),
                items.join(", ")
            )
        }
        Event::AgentAwaitingGates { response, .. } => {
            format!("turn done, checking gates: {}", first_line(response))
        }
        Event::GateOpened {
            gate: murmur_engine::event::GateKind::Approve,
            ..
        } => "waiting for approval (murmur runs approve RUN SLUG)".to_owned(),
        Event::GateOpened { gate, .. } => format!("checking the `{gate}` gate"),
        Event::GatePassed { gate, note, .. } => match note.lines().next() {
            Some(note) => format!("`{gate}` gate passed: {note}"),
            None => format!("`{gate}` gate passed"),
        },
        Event::GateFailed { gate, feedback, .. } => {
            format!("`{gate}` gate did not pass: {}", first_line(feedback))
        }
        Event::AgentFollowUp { text, .. } => {
            format!("works on a follow-up: {}", first_line(text))
        }
        Event::FollowUpQueued { text, .. } => format!("follow-up queued: {}", first_line(text)),
        Event::RunReopened => "reopened: an agent has a follow-up".to_owned(),
    };
    // A server's events are as untrusted as an agent's text: the slug is escaped too.
    format!(
        "{}  {:<16} {}",
        sanitize(time),
        sanitize(who),
        sanitize(&what)
    )
}

pub fn committed_line(committed: &Committed) -> String {
    event_line(&committed.at, &committed.event)
}

pub fn committed_json(committed: &Committed) -> String {
    serde_json::json!({"seq": committed.seq, "at": committed.at, "event": committed.event})
        .to_string()
}

/// A stored event, decoded; rows that do not decode are shown as they are.
pub fn stored_line(row: &EventRow) -> String {
    match serde_json::from_str::<Event>(&row.data) {
        Ok(event) => event_line(&row.at, &event),
        Err(_) => format!("{}  {}", sanitize(&row.at), sanitize(&row.data)),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// One line of an agent's text for a table: sanitised, at most `width` columns.
fn clip(line: &str, width: usize) -> String {
    // Only the start can be shown; a huge line is not escaped whole to find that out.
    let head = match line.char_indices().nth(width * 4) {
        Some((cut, _)) => &line[..cut],
        None => line,
    };
    terminal::clip(&sanitize(head), width).into_owned()
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
}

pub fn agents_table(agents: &[AgentView]) -> String {
    let width = agents
        .iter()
        .map(|a| a.slug.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:<14} {:>8}  {}\n",
        "AGENT", "STATE", "ATTEMPTS", "RESULT"
    );
    for agent in agents {
        let result = agent
            .error
            .as_deref()
            .or(agent.response.as_deref())
            .map(last_line)
            .map(|line| clip(line, 72))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<width$}  {:<14} {:>8}  {}\n",
            sanitize(&agent.slug),
            sanitize(&agent.state),
            agent.attempts,
            result
        ));
    }
    out
}

pub fn runs_table(runs: &[RunSummary]) -> String {
    let mut out = format!(
        "{:<32}  {:<20} {:<10} {}\n",
        "RUN", "FLIGHT", "STATUS", "CREATED"
    );
    for r in runs {
        out.push_str(&format!(
            "{:<32}  {:<20} {:<10} {}\n",
            sanitize(&r.id),
            sanitize(&r.flight),
            sanitize(&r.status),
            sanitize(&r.created_at)
        ));
    }
    out
}

/// `murmur runs show`: the run, then its agents.
pub fn run_text(run: &RunDetail) -> String {
    let summary = &run.summary;
    let mut out = format!(
        "run      {}\nflight   {}\nstatus   {}\ncreated  {}\n",
        sanitize(&summary.id),
        sanitize(&summary.flight),
        sanitize(&summary.status),
        sanitize(&summary.created_at)
    );
    if let Some(finished) = &summary.finished_at {
        out.push_str(&format!("finished {}\n", sanitize(finished)));
    }
    out.push_str(&format!(
        "digest   {}\n\n{}",
        sanitize(&run.digest),
        agents_table(&run.agents)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "2026-01-01T10:00:00.000Z";

    #[test]
    fn an_event_is_one_line_with_what_the_agent_wrote_escaped() {
        let output = Event::AgentOutput {
            slug: "noisy".into(),
            attempt: 1,
            stream: murmur_engine::Stream::Stdout,
            line: "\x1b]0;title\x07\x1b[2J50%\r".into(),
        };
        assert_eq!(
            event_line(AT, &output),
            "10:00:00.000  noisy            | \\x1b]0;title\\x07\\x1b[2J50%"
        );
        let failed = Event::AgentFailed {
            slug: "noisy".into(),
            attempt: 1,
            error: "exit 1\nstderr: \x1b[31mboom\r\n".into(),
        };
        assert_eq!(
            event_line(AT, &failed),
            "10:00:00.000  noisy            failed: exit 1\\nstderr: \\x1b[31mboom"
        );
    }

    #[test]
    fn a_stored_event_that_does_not_decode_is_escaped_too() {
        let row = EventRow {
            run_id: "r".into(),
            seq: 1,
            at: AT.into(),
            kind: "mystery".into(),
            slug: None,
            data: "{\"x\": \"\u{9b}2J\"}".into(),
        };
        assert_eq!(
            stored_line(&row),
            format!("{AT}  {{\"x\": \"\\u{{9b}}2J\"}}")
        );
    }
}
