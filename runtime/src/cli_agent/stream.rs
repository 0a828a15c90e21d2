//! An agent CLI's stdout, one JSON line at a time, and what its end means.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Agent, Error};
use crate::lines::send_line;
use crate::{Stream, Update};

/// What a finished CLI's transcript says about its turn.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict<O> {
    /// The turn completed with this outcome.
    Answered(O),
    /// The CLI reported that the turn failed, with its message.
    Failed(String),
    /// The stream ended before the turn did; `busy` is the CLI's own message when it said
    /// the model was overloaded or rate limited.
    Unfinished { busy: Option<String> },
}

/// Reads stdout until it closes, reporting as it goes; `Err(Idle)` after `idle` without a
/// progress line. Lines that are not JSON are reported as skipped and are no progress.
pub(crate) async fn read<A: Agent>(
    agent: &A,
    stdout: impl AsyncRead + Unpin,
    updates: &mpsc::UnboundedSender<Update>,
    idle: Duration,
) -> Result<A::Transcript, Error> {
    let mut lines = BufReader::new(stdout).lines();
    let mut transcript = A::Transcript::default();
    let mut deadline = Instant::now() + idle;
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Err(_) => return Err(Error::Idle(idle)),
            Ok(line) => line.map_err(|source| Error::Io {
                program: A::PROGRAM,
                source,
            })?,
        };
        let Some(line) = line else {
            return Ok(transcript);
        };
        if line.trim().is_empty() {
            continue;
        }
        match A::parse(&line) {
            Ok(events) => {
                let mut progress = true;
                for event in events {
                    progress &= A::is_progress(&event);
                    agent.report(&event, updates);
                    A::record(&mut transcript, event);
                }
                if progress {
                    deadline = Instant::now() + idle;
                }
            }
            Err(malformed) => send_line(
                updates,
                Stream::Stderr,
                format!("murmur: skipped a line: {malformed}"),
            ),
        }
    }
}

/// Turns the transcript, the exit status and stderr into the turn's outcome.
pub(crate) fn conclude<A: Agent>(
    transcript: A::Transcript,
    status: ExitStatus,
    stderr: &str,
    resume: Option<&str>,
) -> Result<A::Outcome, Error> {
    let program = A::PROGRAM;
    if let Some(session) = resume
        && stderr.contains(program.unknown_session)
    {
        return Err(Error::SessionNotFound(session.to_owned()));
    }
    match A::verdict(transcript, stderr) {
        Verdict::Answered(outcome) => Ok(outcome),
        Verdict::Failed(message) if program.says_overloaded(&message) => {
            Err(Error::Overloaded(message))
        }
        Verdict::Failed(message) => Err(Error::Reported(message)),
        Verdict::Unfinished {
            busy: Some(message),
        } => Err(Error::Overloaded(message)),
        Verdict::Unfinished { busy: None } => match status.code() {
            Some(0) | None => Err(Error::NoResult(program)),
            Some(code) => Err(Error::Exit {
                program,
                code,
                detail: tail(stderr, program.exit_detail_lines)
                    .unwrap_or_else(|| "no output".to_owned()),
            }),
        },
    }
}

/// The last `lines` non-empty lines of `text`, trimmed, if any.
pub(crate) fn tail(text: &str, lines: usize) -> Option<String> {
    let mut last: Vec<&str> = text
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(lines)
        .collect();
    last.reverse();
    (!last.is_empty()).then(|| last.join("\n"))
}
