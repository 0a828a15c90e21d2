//! Group commit: one writer task per store takes every checkpoint (and every set of new runs)
//! queued at the moment and writes them in one transaction, so concurrent runs share an fsync
//! instead of paying one each. A savepoint per checkpoint keeps one run's version conflict
//! from failing the others, and one per creation keeps a lost claim from keeping anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::backend::{Backend, Built, Tx};
pub(super) use super::checkpoints::Checkpoint;
use super::creation::{Created, Creation};
use super::notify::Notifier;
use super::{Error, classify};
use crate::histogram::{Histogram, Snapshot};

/// At most this many checkpoints share a transaction, so one group's latency stays bounded.
const GROUP_LIMIT: usize = 128;

/// What the writer is asked to write, with where its outcome goes.
enum Request {
    Checkpoint {
        checkpoint: Box<Checkpoint>,
        reply: oneshot::Sender<Result<i64, Error>>,
    },
    /// New runs (under their claim): a start shares the fsync of every checkpoint and start
    /// queued with it instead of paying one of its own.
    Create {
        creation: Box<Creation>,
        reply: oneshot::Sender<Result<Created, Error>>,
    },
    /// One statement outside any checkpoint; how many rows it touched.
    Execute {
        statement: Box<Built>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
}

/// What writing one request came to.
enum Outcome {
    Version(Result<i64, Error>),
    Created(Created),
    Touched(Result<u64, Error>),
}

impl Request {
    /// The run a written checkpoint moved to `version`, for its watchers.
    fn committed(&self, outcome: &Outcome) -> Option<(&str, i64)> {
        match (self, outcome) {
            (Request::Checkpoint { checkpoint, .. }, Outcome::Version(Ok(version))) => {
                Some((checkpoint.run_id.as_str(), *version))
            }
            _ => None,
        }
    }

    /// A committed checkpoint that ends its run or frees machines moves the process's waiting
    /// lines on (`store::turns`).
    fn tell_turns(&self, outcome: &Outcome, turns: &super::turns::Turns) {
        let (Request::Checkpoint { checkpoint, .. }, Outcome::Version(Ok(_))) = (self, outcome)
        else {
            return;
        };
        if checkpoint.status.is_terminal() {
            turns.changed();
        }
        let pools = checkpoint.machines.iter().flat_map(|m| &m.pools);
        for pool in pools.filter(|pool| !pool.free.is_empty() || pool.done_waiting) {
            turns.freed(&pool.pool, pool.free.len());
        }
    }

    fn answer(self, outcome: Outcome) {
        match (self, outcome) {
            (Request::Checkpoint { reply, .. }, Outcome::Version(result)) => {
                let _ = reply.send(result);
            }
            (Request::Create { reply, .. }, Outcome::Created(created)) => {
                let _ = reply.send(Ok(created));
            }
            (Request::Execute { reply, .. }, Outcome::Touched(touched)) => {
                let _ = reply.send(touched);
            }
            (request, _) => request.fail(Error::NotWritten(
                "the writer mixed up its answers".to_owned(),
            )),
        }
    }

    fn fail(self, error: Error) {
        match self {
            Request::Checkpoint { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Create { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Execute { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    stats: Arc<Counters>,
    /// From a checkpoint handed to the writer until it is committed (or refused).
    latency: Arc<Histogram>,
}

/// How many checkpoints were written, in how many transactions.
#[derive(Debug, Default)]
struct Counters {
    checkpoints: AtomicU64,
    transactions: AtomicU64,
}

/// Checkpoints written and the transactions (fsyncs) they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub checkpoints: u64,
    pub transactions: u64,
}

impl Writer {
    /// Starts the writer task; it ends when the last handle to the store is dropped.
    pub fn start(backend: Backend, location: String, notifier: Arc<Notifier>) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        let stats = Arc::new(Counters::default());
        tokio::spawn(write_loop(
            backend,
            location,
            queue,
            stats.clone(),
            notifier,
        ));
        Self {
            requests,
            stats,
            latency: Arc::default(),
        }
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            checkpoints: self.stats.checkpoints.load(Ordering::Relaxed),
            transactions: self.stats.transactions.load(Ordering::Relaxed),
        }
    }

    pub fn latency(&self) -> Snapshot {
        self.latency.snapshot()
    }

    pub async fn commit(&self, checkpoint: Checkpoint) -> Result<i64, Error> {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::NotWritten("the store's writer has stopped".to_owned());
        self.requests
            .send(Request::Checkpoint {
                checkpoint: Box::new(checkpoint),
                reply,
            })
            .map_err(|_| stopped())?;
        let written = answer.await.map_err(|_| stopped())?;
        self.latency.observe(started.elapsed());
        written
    }

    /// Writes new runs with the next group.
    pub async fn create(&self, creation: Creation) -> Result<Created, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::NotWritten("the store's writer has stopped".to_owned());
        self.requests
            .send(Request::Create {
                creation: Box::new(creation),
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs one statement with the next group.
    pub async fn execute(&self, statement: Built) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::NotWritten("the store's writer has stopped".to_owned());
        self.requests
            .send(Request::Execute {
                statement: Box::new(statement),
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_loop(
    backend: Backend,
    location: String,
    mut queue: mpsc::UnboundedReceiver<Request>,
    stats: Arc<Counters>,
    notifier: Arc<Notifier>,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT
            && let Ok(next) = queue.try_recv()
        {
            group.push(next);
        }
        match write_group(&backend, &group, &notifier.instance, &location).await {
            Ok(outcomes) => {
                for (request, outcome) in group.iter().zip(&outcomes) {
                    if let Some((run, version)) = request.committed(outcome) {
                        notifier.committed(run, version);
                    }
                    request.tell_turns(outcome, &notifier.turns);
                }
                let checkpoints = group
                    .iter()
                    .filter(|r| matches!(r, Request::Checkpoint { .. }))
                    .count();
                // Counted as checkpoint transactions only when they carried checkpoints.
                if checkpoints > 0 {
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .checkpoints
                    .fetch_add(checkpoints as u64, Ordering::Relaxed);
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    request.answer(outcome);
                }
            }
            Err(error) => {
                let error = classify(&location, error);
                let message = error.to_string();
                let mut requests = group.into_iter();
                if let Some(first) = requests.next() {
                    first.fail(error);
                }
                for request in requests {
                    request.fail(same_kind(&location, &message));
                }
            }
        }
    }
}

/// The error for the other members of a failed group, keeping what they must do about it.
fn same_kind(location: &str, message: &str) -> Error {
    if message.contains("is locked") {
        Error::Locked(location.to_owned())
    } else if message.contains("full or out of disk space") {
        Error::Full(message.to_owned())
    } else {
        Error::NotWritten(message.to_owned())
    }
}

/// One transaction for the whole group; each checkpoint's own outcome is returned.
async fn write_group(
    backend: &Backend,
    group: &[Request],
    instance: &str,
    location: &str,
) -> sqlx::Result<Vec<Outcome>> {
    let mut tx = backend.begin().await?;
    let mut outcomes = Vec::with_capacity(group.len());
    for request in group {
        outcomes.push(match request {
            Request::Checkpoint { checkpoint, .. } => {
                Outcome::Version(super::checkpoints::write(&mut tx, checkpoint).await?)
            }
            Request::Create { creation, .. } => {
                Outcome::Created(super::creation::write(&mut tx, creation).await?)
            }
            Request::Execute { statement, .. } => {
                Outcome::Touched(execute_one(&mut tx, statement, location).await?)
            }
        });
    }
    if matches!(tx, Tx::Postgres(_)) {
        let written: Vec<(&str, i64)> = group
            .iter()
            .zip(&outcomes)
            .filter_map(|(request, outcome)| request.committed(outcome))
            .collect();
        // Delivered to the other processes' listeners when (and only if) this commits.
        for payload in super::notify::payloads(instance, &written) {
            tx.notify(super::notify::CHANNEL, &payload).await?;
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One statement in its savepoint: a statement that fails (a unique key taken, say) fails
/// alone, and the group's other writes commit.
async fn execute_one(
    tx: &mut Tx,
    statement: &Built,
    location: &str,
) -> sqlx::Result<Result<u64, Error>> {
    tx.raw("SAVEPOINT statement").await?;
    match tx.execute_built(statement).await {
        Ok(touched) => {
            tx.raw("RELEASE SAVEPOINT statement").await?;
            Ok(Ok(touched))
        }
        Err(error) => {
            tx.raw("ROLLBACK TO SAVEPOINT statement").await?;
            tx.raw("RELEASE SAVEPOINT statement").await?;
            Ok(Err(classify(location, error)))
        }
    }
}
