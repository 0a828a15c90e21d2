//! The server's supervisor: one long-lived task that owns driving. Handlers hand it a run once
//! the run is committed, and it drives the run on a task of its own, so a request that is
//! dropped (a client that went away) can never strand a run it created. A drive that fails on
//! the store is tried again with backoff; one that cannot go on is given up, and says so in the
//! log: a run is never abandoned silently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use murmur_engine::executor::{self, Executor};
use murmur_engine::{RunStatus, store};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Why a run is handed over: what started it, or why it is driven again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /v1/flights/{name}/runs`.
    Http,
    /// A GitHub delivery.
    Webhook,
    /// A schedule's tick.
    Schedule,
    /// Driven again: a run found without a driver (failover) or retried.
    Resume,
}

impl Trigger {
    /// Whether the run is new (rather than one driven again).
    fn starts_a_run(self) -> bool {
        matches!(self, Trigger::Http | Trigger::Webhook | Trigger::Schedule)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Webhook => "webhook",
            Trigger::Schedule => "schedule",
            Trigger::Resume => "resume",
        }
    }
}

/// A committed run for the supervisor to drive.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub run_id: String,
    /// The run's flight, when the caller knows it (for the log).
    pub flight: Option<String>,
    pub trigger: Trigger,
    /// The store of the run's tenant when it is not the server's own.
    pub tenant: Option<store::Store>,
    /// The run's row as this process just created it: its first drive reads nothing back.
    pub created: Option<Box<store::RunRow>>,
}

/// First wait after a drive failed on the store; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Store failures in a row after which the run is given up (about four minutes of trying),
/// so another server, or `murmur runs resume`, can take it over.
const GIVE_UP_AFTER: u32 = 12;

/// The handle handlers share; cloning it shares the one supervisor task.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
    handoffs: mpsc::UnboundedSender<Job>,
}

struct Shared {
    /// Cancel switches of the runs this process drives, by run id.
    driven: Mutex<HashMap<String, Driven>>,
    running: AtomicBool,
    next_token: AtomicU64,
}

struct Driven {
    /// Which hand-off registered it, so a finished drive never removes a newer one.
    token: u64,
    cancel: watch::Sender<bool>,
}

struct Job {
    handoff: Handoff,
    token: u64,
    canceled: watch::Receiver<bool>,
}

impl Supervisor {
    /// Starts the supervisor task on the current runtime.
    pub fn start(executor: Executor) -> Self {
        let shared = Arc::new(Shared {
            driven: Mutex::new(HashMap::new()),
            running: AtomicBool::new(false),
            next_token: AtomicU64::new(0),
        });
        let (handoffs, jobs) = mpsc::unbounded_channel();
        tokio::spawn(supervise(executor, jobs, shared.clone()));
        Self { shared, handoffs }
    }

    /// Whether the supervisor task runs, so that this server drives runs.
    pub fn drives_runs(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Drives `handoff.run_id` until it ends. Never waits, so nothing a request does after
    /// calling this can keep the run from being driven.
    pub fn drive(&self, handoff: Handoff) {
        let flight = handoff.flight.as_deref().unwrap_or("-");
        let trigger = handoff.trigger.as_str();
        if handoff.trigger.starts_a_run() {
            tracing::info!(run = %handoff.run_id, flight, trigger, "run started");
        } else {
            tracing::info!(run = %handoff.run_id, flight, trigger, "run resumed");
        }
        let (cancel, canceled) = watch::channel(false);
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        self.shared
            .driven()
            .insert(handoff.run_id.clone(), Driven { token, cancel });
        let run_id = handoff.run_id.clone();
        let job = Job {
            handoff,
            token,
            canceled,
        };
        if self.handoffs.send(job).is_err() {
            self.shared.forget(&run_id, token);
            tracing::error!(run = %run_id, "the supervisor has stopped: this server does not drive the run; restart it or run `murmur runs resume {run_id}`");
        }
    }

    /// Whether this process drives `run_id` (or is about to).
    pub fn drives(&self, run_id: &str) -> bool {
        self.shared.driven().contains_key(run_id)
    }

    /// Asks the driver of `run_id` to cancel; false when this process does not drive it.
    pub fn cancel(&self, run_id: &str) -> bool {
        self.shared
            .driven()
            .get(run_id)
            .is_some_and(|driven| driven.cancel.send(true).is_ok())
    }
}

impl Shared {
    fn driven(&self) -> MutexGuard<'_, HashMap<String, Driven>> {
        self.driven.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, run_id: &str, token: u64) {
        let mut driven = self.driven();
        if driven.get(run_id).is_some_and(|d| d.token == token) {
            driven.remove(run_id);
        }
    }
}

/// The supervisor task: starts a drive for every hand-off and watches them end.
async fn supervise(
    executor: Executor,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
) {
    shared.running.store(true, Ordering::SeqCst);
    tracing::info!("supervisor started: this server drives runs");
    let mut drives = JoinSet::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => {
                    let executor = match job.handoff.tenant.clone() {
                        Some(store) => crate::tenant::executor_of(&executor, store),
                        None => executor.clone(),
                    };
                    drives.spawn(drive_run(executor, job, shared.clone()));
                }
                None => break,
            },
            Some(ended) = drives.join_next(), if !drives.is_empty() => {
                if let Err(error) = ended {
                    tracing::error!(%error, "a drive task panicked; its run is left for a takeover");
                }
            }
        }
    }
    shared.running.store(false, Ordering::SeqCst);
    drives.join_all().await;
}

/// Drives one run until it ends, trying again after store failures.
async fn drive_run(executor: Executor, mut job: Job, shared: Arc<Shared>) {
    let run_id = job.handoff.run_id.clone();
    let mut failures = 0;
    loop {
        let created = job.handoff.created.take();
        match drive_once(&executor, &run_id, created, &mut job.canceled).await {
            Ok(status) => {
                tracing::info!(run = %run_id, status = status.as_str(), "run no longer driven here");
                break;
            }
            Err(error) if transient(&error) && failures < GIVE_UP_AFTER => {
                failures += 1;
                let delay = backoff(failures);
                tracing::warn!(
                    run = %run_id, %error, failures, retry_in_ms = delay.as_millis() as u64,
                    "driving the run failed on the store; trying again"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    // A cancel during the wait is sent as soon as the next drive starts.
                    _ = job.canceled.changed() => {}
                }
            }
            // Another server took it first: it drives the run, nothing is lost.
            Err(error @ executor::Error::Driven { .. }) => {
                tracing::debug!(run = %run_id, %error, "run driven elsewhere");
                break;
            }
            Err(error) => {
                tracing::warn!(
                    run = %run_id, %error, failures,
                    "this server stopped driving the run; another server or `murmur runs resume` can take it over"
                );
                break;
            }
        }
    }
    shared.forget(&run_id, job.token);
}

/// One drive of the run, with the cancel switch forwarded to the driver.
async fn drive_once(
    executor: &Executor,
    run_id: &str,
    created: Option<Box<store::RunRow>>,
    canceled: &mut watch::Receiver<bool>,
) -> Result<RunStatus, executor::Error> {
    let (cancel, on_cancel) = oneshot::channel();
    let (observer, _) = mpsc::unbounded_channel();
    let drive = async {
        match created {
            Some(row) => executor.drive_created(*row, observer, on_cancel).await,
            None => executor.drive_until(run_id, observer, on_cancel).await,
        }
    };
    tokio::pin!(drive);
    let mut cancel = Some(cancel);
    loop {
        if *canceled.borrow()
            && let Some(cancel) = cancel.take()
        {
            let _ = cancel.send(());
        }
        tokio::select! {
            ended = &mut drive => return ended,
            changed = canceled.changed(), if cancel.is_some() => {
                if changed.is_err() {
                    // The switch is gone: nobody can cancel any more; drive on.
                    cancel = None;
                }
            }
        }
    }
}

/// Failures of the store that may pass: the next drive replays the run's log and goes on.
fn transient(error: &executor::Error) -> bool {
    matches!(
        error,
        executor::Error::Store(
            store::Error::Database(_)
                | store::Error::Locked(_)
                | store::Error::Full(_)
                | store::Error::NotWritten(_)
                | store::Error::Open { .. }
        )
    )
}

/// The wait before the `failures`-th new try: 1 s, 2 s, 4 s, ... at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn only_store_failures_are_tried_again() {
        let locked = executor::Error::Store(store::Error::Locked("db".into()));
        let full = executor::Error::Store(store::Error::Full("disk".into()));
        assert!(transient(&locked) && transient(&full));
        let conflict = executor::Error::Store(store::Error::Conflict {
            run: "r".into(),
            expected: 3,
        });
        let corrupt = executor::Error::Store(store::Error::Corrupt("bad".into()));
        let stored = executor::Error::StoredFlight("r".into());
        assert!(!transient(&conflict) && !transient(&corrupt) && !transient(&stored));
    }
}
