//! The one driver of headless coding-agent CLIs (Claude Code, Codex): it starts the CLI
//! contained in the agent's worktree, reads its JSON line stream as it arrives (reporting
//! the session id the moment it is seen), trips an idle watchdog, honours a stop, waits out
//! an overloaded model with backoff, and turns the transcript into the turn's outcome.
//!
//! What differs between CLIs (the command line, how a line maps to updates and the answer,
//! how each words a busy model) is an [`Agent`]; `claude` and `codex` are such adapters.

mod error;
mod stream;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

pub use error::{Error, Program};
pub(crate) use stream::{Verdict, conclude, read, tail};

use crate::lines::send_line;
use crate::process::{Cli, StartError};
use crate::{Stream, Update};

/// How a turn waits out an overloaded or rate-limited model: it parks for `backoff`, then
/// tries again, doubling the wait each time, `tries` times in all before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overload {
    pub backoff: Duration,
    pub tries: u32,
}

impl Default for Overload {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(30),
            tries: 5,
        }
    }
}

/// How one CLI run is started.
pub(crate) struct Invocation<'a> {
    pub binary: &'a Path,
    pub args: Vec<String>,
    pub workdir: &'a Path,
    pub env: &'a [(String, String)],
    /// Written to the CLI's stdin, which is then closed; `None`: stdin is `/dev/null`.
    pub stdin: Option<String>,
    /// Silence (no progress line) longer than this is a hang: the CLI is killed.
    pub idle_timeout: Duration,
}

/// What one agent CLI does differently: an adapter for the driver.
pub(crate) trait Agent: Clone {
    type Event;
    type Events: IntoIterator<Item = Self::Event>;
    type Malformed: std::fmt::Display;
    /// What the stream said so far, as far as the outcome needs it.
    type Transcript: Default;
    type Outcome;

    const PROGRAM: &'static Program;

    fn invocation(&self) -> Invocation<'_>;
    /// The session this run continues, if any.
    fn resume(&self) -> Option<&str>;
    /// The same request in a new session (the one to resume was never saved).
    fn fresh(&self) -> Self;
    fn parse(line: &str) -> Result<Self::Events, Self::Malformed>;
    /// Whether the event shows the agent moving on (resets the idle watchdog).
    fn is_progress(_event: &Self::Event) -> bool {
        true
    }
    /// Sends the event's readable lines, and the session the moment it is known.
    fn report(&self, event: &Self::Event, updates: &mpsc::UnboundedSender<Update>);
    fn record(transcript: &mut Self::Transcript, event: Self::Event);
    /// The turn's result once the CLI exited, from its transcript and stderr.
    fn verdict(transcript: Self::Transcript, stderr: &str) -> Verdict<Self::Outcome>;
}

/// Runs the CLI once, to the end of its turn. `stop` is borrowed so that a caller may run
/// another turn under the same stop signal.
pub(crate) async fn run<A: Agent>(
    agent: &A,
    updates: &mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<A::Outcome, Error> {
    let invocation = agent.invocation();
    let program = A::PROGRAM;
    let mut cli = Cli::start(
        invocation.binary,
        &invocation.args,
        invocation.workdir,
        invocation.env,
        invocation.stdin.is_some(),
    )
    .map_err(|e| match e {
        StartError::Missing(binary) => Error::Missing { program, binary },
        StartError::Spawn(source) => Error::Spawn { program, source },
    })?;
    let child = &mut cli.child;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), invocation.stdin) {
        // A CLI that exits early closes the pipe; its exit status tells why, not this write.
        tokio::spawn(async move {
            let _ = pipe.write_all(input.as_bytes()).await;
        });
    }
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(crate::lines::read_stderr(err, updates.clone())));
    let stdout = child.stdout.take().ok_or(Error::NoResult(program))?;
    let read = tokio::select! {
        read = read(agent, stdout, updates, invocation.idle_timeout) => read,
        _ = stop => { cli.kill_tree(); let _ = cli.child.wait().await; return Err(Error::Stopped); }
    };
    if matches!(read, Err(Error::Idle(_))) {
        cli.kill_tree();
    }
    let status = cli
        .child
        .wait()
        .await
        .map_err(|source| Error::Io { program, source })?;
    let stderr_text = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    conclude::<A>(read?, status, &stderr_text, agent.resume())
}

/// Runs a whole turn: while the model is overloaded or rate limited, parks (waits, doubling
/// the wait each time) and tries again instead of failing, up to `overload.tries` runs; a
/// session the CLI never saved (it was killed before its first reply) is replaced by a new
/// one in the same worktree, which keeps whatever an earlier attempt committed. A stop ends
/// a wait too.
pub(crate) async fn turn<A: Agent>(
    mut agent: A,
    overload: Overload,
    updates: &mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<A::Outcome, Error> {
    let mut wait = overload.backoff;
    let mut tries = 1;
    loop {
        match run_saved(&mut agent, updates, stop).await {
            Err(Error::Overloaded(message)) if tries < overload.tries => {
                let text = format!(
                    "murmur: {message}; parked, trying again in {}s ({tries} of {})",
                    wait.as_secs(),
                    overload.tries
                );
                send_line(updates, Stream::Stderr, text);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = &mut *stop => return Err(Error::Stopped),
                }
                wait = wait.saturating_mul(2);
                tries += 1;
            }
            Err(Error::Overloaded(message)) => return Err(Error::StayedOverloaded(message)),
            other => return other,
        }
    }
}

/// One run; when its session was never saved, one more in a new session (kept in `agent`,
/// so that a parked retry does not ask for the missing session again).
async fn run_saved<A: Agent>(
    agent: &mut A,
    updates: &mpsc::UnboundedSender<Update>,
    stop: &mut oneshot::Receiver<()>,
) -> Result<A::Outcome, Error> {
    match run(agent, updates, stop).await {
        Err(Error::SessionNotFound(session)) => {
            let word = A::PROGRAM.session;
            let text = format!(
                "murmur: {word} {session} was never saved; starting a new {word} in the same worktree"
            );
            send_line(updates, Stream::Stderr, text);
            *agent = agent.fresh();
            run(agent, updates, stop).await
        }
        other => other,
    }
}
