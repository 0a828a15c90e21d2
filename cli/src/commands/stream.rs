//! A run's live event stream from a server, delivered the way the local driver's observer
//! channel delivers committed events, so the same live view and line log render it. A dropped
//! connection is resumed with `Last-Event-ID`; the stream is done once the run has ended and
//! every event up to then has arrived.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use murmur_engine::executor::Committed;
use murmur_engine::{Event, RunStatus};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::remote::{Refusal, Remote};

/// How long the server may stay unreachable before following gives up.
const PATIENCE: Duration = Duration::from_secs(120);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Entry {
    seq: i64,
    at: String,
    event: Value,
}

/// Follows run `id` on a thread of its own (a blocking reader must not hold up Ctrl-C): its
/// events arrive on the first channel, the outcome on the second when the run has ended.
pub fn spawn(
    remote: Remote,
    id: String,
) -> (
    mpsc::UnboundedReceiver<Committed>,
    oneshot::Receiver<anyhow::Result<()>>,
) {
    let (events, received) = mpsc::unbounded_channel();
    let (done, outcome) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(follow(&remote, &id, &events));
    });
    (received, outcome)
}

/// Sends every event of run `id` to `events` until the run has ended.
fn follow(
    remote: &Remote,
    id: &str,
    events: &mpsc::UnboundedSender<Committed>,
) -> anyhow::Result<()> {
    let mut seen = 0;
    let mut backoff = Duration::from_millis(250);
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let read = remote
            .events(id, seen)
            .and_then(|stream| read_stream(stream, &mut seen, events));
        let ended = read.and_then(|()| ended(remote, id));
        match ended {
            // The stream closes once the run has ended; one more pass after a drop picks up
            // what was committed while reconnecting, then the server closes it at once.
            Ok(true) => return drain(remote, id, &mut seen, events),
            Ok(false) => unreachable_since = None,
            Err(error) if error.is::<Refusal>() => return Err(error),
            Err(error) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > PATIENCE {
                    return Err(error.context(format!(
                        "lost the server for {}s while following run {id}",
                        PATIENCE.as_secs()
                    )));
                }
            }
        }
        if events.is_closed() {
            return Ok(());
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn drain(
    remote: &Remote,
    id: &str,
    seen: &mut i64,
    events: &mpsc::UnboundedSender<Committed>,
) -> anyhow::Result<()> {
    let stream = remote.events(id, *seen)?;
    read_stream(stream, seen, events)
}

fn ended(remote: &Remote, id: &str) -> anyhow::Result<bool> {
    let run = remote.get(&format!("/v1/runs/{id}"))?;
    let status = run["status"].as_str().and_then(RunStatus::parse);
    Ok(status.is_some_and(RunStatus::is_terminal))
}

/// Reads SSE until the server closes the stream: `data:` lines are the log's entries, `id:` is
/// the entry's `seq`. Keep-alive comments and unknown fields are skipped.
fn read_stream(
    stream: impl Read,
    seen: &mut i64,
    events: &mpsc::UnboundedSender<Committed>,
) -> anyhow::Result<()> {
    let mut data = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.is_empty() {
            dispatch(&std::mem::take(&mut data), seen, events);
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    Ok(())
}

fn dispatch(data: &str, seen: &mut i64, events: &mpsc::UnboundedSender<Committed>) {
    let Ok(entry) = serde_json::from_str::<Entry>(data) else {
        return;
    };
    if entry.seq <= *seen {
        return;
    }
    *seen = entry.seq;
    if let Some(committed) = committed(entry) {
        let _ = events.send(committed);
    }
}

/// An event this CLI does not know (from a newer server) is skipped, not fatal.
fn committed(entry: Entry) -> Option<Committed> {
    let event = serde_json::from_value::<Event>(entry.event).ok()?;
    Some(Committed {
        seq: entry.seq,
        at: entry.at,
        event,
    })
}

/// The JSON event log (`GET /v1/runs/{id}/events`) as committed events.
pub fn entries(log: Value) -> Vec<Committed> {
    let entries: Vec<Entry> = serde_json::from_value(log).unwrap_or_default();
    entries.into_iter().filter_map(committed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_entries_become_committed_events_once() {
        let text = ": keep-alive\n\nid: 1\nevent: run_started\ndata: {\"seq\":1,\"at\":\"t1\",\"event\":{\"type\":\"run_started\"}}\n\n\
                    id: 2\nevent: mystery\ndata: {\"seq\":2,\"at\":\"t2\",\"event\":{\"type\":\"from_the_future\"}}\n\n\
                    id: 1\ndata: {\"seq\":1,\"at\":\"t1\",\"event\":{\"type\":\"run_started\"}}\n\n\
                    id: 3\ndata: {\"seq\":3,\"at\":\"t3\",\"event\":{\"type\":\"run_completed\"}}\n\n";
        let (events, mut received) = mpsc::unbounded_channel();
        let mut seen = 0;
        read_stream(text.as_bytes(), &mut seen, &events).expect("reads");
        assert_eq!(seen, 3);
        let first = received.try_recv().expect("first");
        assert_eq!(
            (first.seq, first.at.as_str(), first.event),
            (1, "t1", Event::RunStarted)
        );
        let next = received.try_recv().expect("next");
        assert_eq!(
            (next.seq, next.event),
            (3, Event::RunCompleted),
            "unknown and repeated events are skipped"
        );
        assert!(received.try_recv().is_err());
    }
}
