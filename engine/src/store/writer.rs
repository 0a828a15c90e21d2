//! Group commit: one writer task per store takes every checkpoint (and every set of new runs)
//! queued at the moment and writes them in one transaction, so concurrent runs share an fsync
//! instead of paying one each. A savepoint per checkpoint keeps one run's version conflict
//! from failing the others, and one per creation keeps a lost claim from keeping anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sea_query::{Expr, ExprTrait, Query};
use tokio::sync::{mpsc, oneshot};

use super::backend::{Backend, Built, Tx};
use super::creation::{Created, Creation};
use super::notify::Notifier;
use super::schema::{Events, Runs};
use super::statements::{agent_upserts, event_inserts};
use super::{AgentUpdate, Commit, Error, classify};
use crate::event::Event;
use crate::histogram::{Histogram, Snapshot};
use crate::state::RunStatus;

/// At most this many checkpoints share a transaction, so one group's latency stays bounded.
const GROUP_LIMIT: usize = 128;

/// An owned [`Commit`], queued for the writer.
pub(super) struct Checkpoint {
    pub run_id: String,
    pub expected_version: i64,
    pub at: String,
    pub events: Vec<Event>,
    pub agents: Vec<AgentUpdate>,
    pub status: RunStatus,
    pub finished_at: Option<String>,
    pub fence: Option<i64>,
    pub machines: Option<super::MachineUse>,
    /// The run's tenant (set by the store): machine rows carry it.
    pub tenant: String,
}

impl From<&Commit<'_>> for Checkpoint {
    fn from(commit: &Commit<'_>) -> Self {
        Self {
            run_id: commit.run_id.to_owned(),
            expected_version: commit.expected_version,
            at: commit.at.to_owned(),
            events: commit.events.to_vec(),
            agents: commit.agents.to_vec(),
            status: commit.status,
            finished_at: commit.finished_at.map(str::to_owned),
            fence: commit.fence,
            machines: commit.machines.cloned(),
            tenant: String::new(),
        }
    }
}

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
                Outcome::Version(write_checkpoint(&mut tx, checkpoint).await?)
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

/// One checkpoint in its savepoint: its new version, or why it was refused.
async fn write_checkpoint(
    tx: &mut Tx,
    checkpoint: &Checkpoint,
) -> sqlx::Result<Result<i64, Error>> {
    tx.raw("SAVEPOINT checkpoint").await?;
    let refused = match write_one(tx, checkpoint).await? {
        Written::Version(version) => {
            tx.raw("RELEASE SAVEPOINT checkpoint").await?;
            return Ok(Ok(version));
        }
        Written::Refused => None,
        Written::PoolFull(full) => Some(full),
    };
    tx.raw("ROLLBACK TO SAVEPOINT checkpoint").await?;
    tx.raw("RELEASE SAVEPOINT checkpoint").await?;
    match (refused, &checkpoint.machines) {
        (Some(full), Some(machines)) => {
            wait_for(tx, checkpoint, machines, &full).await?;
            Ok(Err(Error::PoolFull { full }))
        }
        _ => Ok(Err(refusal(tx, checkpoint).await?)),
    }
}

/// Kept though the checkpoint is not: from now on younger runs let this one go first, in the
/// line of each pool that refused it.
async fn wait_for(
    tx: &mut Tx,
    checkpoint: &Checkpoint,
    machines: &super::MachineUse,
    full: &[super::FullPool],
) -> sqlx::Result<()> {
    let (tenant, run) = (&checkpoint.tenant, &checkpoint.run_id);
    for refused in full {
        let wants = machines
            .pools
            .iter()
            .find(|pool| pool.pool == refused.pool)
            .map_or(0, |pool| pool.hold.len());
        super::waiters::wait(tx, tenant, run, machines, &refused.pool, wants).await?;
    }
    Ok(())
}

/// What writing one checkpoint came to (inside its savepoint).
enum Written {
    Version(i64),
    /// The run is no longer at the expected version, or the lease moved on.
    Refused,
    /// Its new machine holders do not fit in these pools.
    PoolFull(Vec<super::FullPool>),
}

/// Writes one checkpoint: the run's new version and status, its events, its agents, and the
/// machines its agents hold.
async fn write_one(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Written> {
    let after = match checkpoint.fence {
        // The driver knows its run's exact version: anything else committed meanwhile is
        // someone else's act, which it must take in first.
        Some(_) => checkpoint.expected_version,
        None => match act_base(tx, checkpoint).await? {
            Some(version) => version,
            None => return Ok(Written::Refused),
        },
    };
    let new_version = after + checkpoint.events.len() as i64;
    let mut bump = Query::update()
        .table(Runs::Table)
        .value(Runs::Version, new_version)
        .value(Runs::Status, checkpoint.status.as_str())
        .value(Runs::FinishedAt, checkpoint.finished_at.clone())
        .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
        .and_where(Expr::col(Runs::Version).eq(after))
        .to_owned();
    if let Some(epoch) = checkpoint.fence {
        bump.and_where(Expr::col(Runs::LeaseEpoch).eq(epoch));
    }
    if tx.execute(&bump).await? != 1 {
        return Ok(Written::Refused);
    }
    let inserts =
        event_inserts(checkpoint, after).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    for insert in inserts {
        tx.execute(&insert).await?;
    }
    for upsert in agent_upserts(&checkpoint.run_id, &checkpoint.agents) {
        tx.execute(&upsert).await?;
    }
    if checkpoint.status.is_terminal() {
        super::waiters::stop_waiting(tx, &checkpoint.run_id).await?;
    }
    if let Some(machines) = &checkpoint.machines {
        let (tenant, run, at) = (&checkpoint.tenant, &checkpoint.run_id, &checkpoint.at);
        let full = super::machines::apply(tx, tenant, run, at, machines).await?;
        if !full.is_empty() {
            return Ok(Written::PoolFull(full));
        }
    }
    Ok(Written::Version(new_version))
}

/// Where an act recorded from outside the run's driver (an approval, a kill, a cancel) goes
/// in the log: after the run's current version, when everything committed since the version
/// the act was judged on is agents' output, which changes nothing an act depends on. So a
/// run printing lines fast does not make acts on it lose the race again and again. `None`
/// when something else was committed meanwhile (the act is judged again on it).
async fn act_base(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Option<i64>> {
    let select = Query::select()
        .column(Runs::Version)
        .from(Runs::Table)
        .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
        .to_owned();
    let versions: Vec<(i64,)> = tx.fetch_all(&select).await?;
    let Some(&(version,)) = versions.first() else {
        return Ok(None);
    };
    if version == checkpoint.expected_version {
        return Ok(Some(version));
    }
    if version < checkpoint.expected_version {
        return Ok(None);
    }
    let others = Query::select()
        .column(Events::Seq)
        .from(Events::Table)
        .and_where(Expr::col(Events::RunId).eq(checkpoint.run_id.as_str()))
        .and_where(Expr::col(Events::Seq).gt(checkpoint.expected_version))
        .and_where(Expr::col(Events::Kind).ne(OUTPUT_KIND))
        .limit(1)
        .to_owned();
    let found: Vec<(i64,)> = tx.fetch_all(&others).await?;
    Ok(found.is_empty().then_some(version))
}

/// The kind of the events that never conflict with an act: agents' output lines.
const OUTPUT_KIND: &str = "agent_output";

/// Why a checkpoint was refused: its driver's lease was taken over (fenced), or the run moved
/// on (another process committed first).
async fn refusal(tx: &mut Tx, checkpoint: &Checkpoint) -> sqlx::Result<Error> {
    if let Some(fence) = checkpoint.fence {
        let select = Query::select()
            .column(Runs::LeaseEpoch)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Id).eq(checkpoint.run_id.as_str()))
            .to_owned();
        let epochs: Vec<(i64,)> = tx.fetch_all(&select).await?;
        if epochs.first().is_some_and(|(epoch,)| *epoch != fence) {
            return Ok(Error::Fenced {
                run: checkpoint.run_id.clone(),
            });
        }
    }
    Ok(Error::Conflict {
        run: checkpoint.run_id.clone(),
        expected: checkpoint.expected_version,
    })
}
