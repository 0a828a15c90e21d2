//! What every session must show, wherever it was killed: nothing committed was lost, the
//! attempts in flight were interrupted first, and nothing completed ran again.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fixture::{Fixture, Snapshot};
use super::session::{Session, event_slug, kind, never, resume, start};

/// Checks one session against the database before and after it, and returns the snapshot
/// after it:
/// - the events it printed are exactly the stored events that follow `before`, in order,
///   with no gap (a printed event was committed; nothing committed was lost);
/// - it first marked every attempt that was running at `before` as interrupted;
/// - no agent completed at `before` ran again or changed its attempts.
pub fn check_session(
    fixture: &Fixture,
    run: &str,
    label: &str,
    before: &Snapshot,
    session: &Session,
) -> Snapshot {
    let after = fixture.snapshot(run);
    let context = format!("{label}: stderr:\n{}", session.stderr);
    let first = before.logs.len();
    assert!(
        after.logs.len() >= first + session.events.len(),
        "{context}\nprinted {} events after {first}, but only {} are stored",
        session.events.len(),
        after.logs.len()
    );
    assert_eq!(
        &after.logs[..first],
        &before.logs[..],
        "{context}\nthe stored log changed under the session"
    );
    for (offset, event) in session.events.iter().enumerate() {
        check_printed(&context, first + offset, event, &after.logs[first + offset]);
    }
    // The first commit of a resumed process interrupts the attempts that were in flight.
    let running = before.in_flight();
    if !running.is_empty() && after.logs.len() > first {
        let interrupted: BTreeSet<&str> = after.logs[first..first + running.len()]
            .iter()
            .filter(|line| line.contains("was interrupted by an engine restart"))
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect();
        assert_eq!(
            interrupted,
            running,
            "{context}\nthe running attempts were not interrupted first:\n{}",
            after.logs[first..].join("\n")
        );
    }
    for done in before.in_state("completed") {
        assert_eq!(
            after.agents[done], before.agents[done],
            "{context}\n{done} was completed before the session, then changed"
        );
        assert_eq!(
            after.ledger.get(done),
            before.ledger.get(done),
            "{context}\n{done} was completed before the session, then ran again"
        );
    }
    after
}

/// The printed event with sequence number `index + 1` is the stored one, `logged`.
fn check_printed(context: &str, index: usize, event: &Value, logged: &str) {
    let seq = (index + 1) as u64;
    assert_eq!(event["seq"].as_u64(), Some(seq), "{context}\n{event}");
    let at = event["at"].as_str().expect("at");
    let who = event_slug(event).unwrap_or("run");
    assert!(
        logged.starts_with(at.get(11..23).unwrap_or(at))
            && logged.split_whitespace().nth(1) == Some(who),
        "{context}\nevent {seq} printed as {event} but stored as `{logged}`"
    );
    match kind(event) {
        "agent_started" => {
            let attempt = event["event"]["attempt"].as_u64().expect("attempt");
            assert!(logged.contains(&format!("attempt {attempt}")), "{logged}");
        }
        "agent_output" => {
            let text = event["event"]["line"].as_str().expect("line");
            assert!(logged.ends_with(text), "{logged}");
        }
        "agent_failed" | "run_failed" | "run_canceled" | "agent_canceled" => {
            panic!("{context}\nunexpected event {event}")
        }
        _ => {}
    }
}

/// Where a session is killed: a name for messages and the condition on its printed events.
pub type KillPoint = (&'static str, fn(&[Value]) -> bool);

/// Kills the engine driving `flight` at each point in turn (the first one while starting
/// the run, the others while resuming it), then resumes it to the end. Every session is
/// checked with [`check_session`], and every point must be reached before the run ends.
pub fn survive(fixture: &Fixture, flight: &str, kills: &[KillPoint]) -> (String, Snapshot) {
    let (run, session) = start(fixture, flight, kills[0].1);
    let mut state = check_session(fixture, &run, kills[0].0, &Snapshot::default(), &session);
    let mut killed = usize::from(session.killed);
    let mut last = session;
    for (name, kill_when) in &kills[1..] {
        if !last.killed {
            break;
        }
        last = resume(fixture, &run, kill_when);
        state = check_session(fixture, &run, name, &state, &last);
        killed += usize::from(last.killed);
    }
    if last.killed {
        last = resume(fixture, &run, never);
        state = check_session(fixture, &run, "the last resume", &state, &last);
    }
    assert!(
        killed == kills.len(),
        "{flight}: killed {killed} of {} times, the run ended first",
        kills.len()
    );
    assert!(last.status.success(), "{}", last.stderr);
    (run, state)
}
