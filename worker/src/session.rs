//! One registration's life: a poller asks for work (renewing the machine's lease) and starts
//! and stops attempts; a sender sends what the outbox holds until it is acknowledged. Both
//! ride out a server that is down with backoff; a refused credential ends the session (its
//! attempts are stopped) and the worker registers again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use murmur_protocol::worker::{Poll, Registered, Work};
use murmur_protocol::{AttemptFailure, AttemptKey, AttemptSpec, AttemptUpdate, FailureKind};
use tokio::sync::{Notify, mpsc};

use crate::backoff::Backoff;
use crate::client::{Client, Error};
use crate::folder::Folder;
use crate::outbox::Outbox;

/// What the poller, the sender and the attempts share.
#[derive(Default)]
struct Shared {
    /// Attempts running now, with what stops each.
    running: BTreeMap<AttemptKey, murmur_attempt::Stop>,
    outbox: Outbox,
}

/// What runs attempts on this machine.
pub struct Machine {
    pub runner: Arc<murmur_attempt::Machine>,
    /// The ephemeral key the machine registered with: it opens the attempts' secrets.
    pub key: Arc<murmur_vault::MachineKey>,
    /// The runner's work root, holding one tenant's work at a time.
    pub folder: Arc<Folder>,
}

pub struct Session {
    client: Client,
    machine: Machine,
    registered: Registered,
    shared: Arc<Mutex<Shared>>,
    /// Woken when the outbox has something new.
    filled: Arc<Notify>,
}

impl Session {
    pub fn new(client: Client, machine: Machine, registered: Registered) -> Self {
        Self {
            client,
            machine,
            registered,
            shared: Arc::default(),
            filled: Arc::default(),
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Until the server refuses the machine's credential.
    pub async fn run(self) {
        let sender = tokio::spawn(send(
            self.client.clone(),
            self.registered.credential.clone(),
            self.shared.clone(),
            self.filled.clone(),
        ));
        self.poll().await;
        sender.abort();
        let running = std::mem::take(&mut self.shared().running);
        for (_, stop) in running {
            stop.stop();
        }
    }

    async fn poll(&self) {
        // A third of the lease, so two polls can fail before the machine is lost.
        let wait = Duration::from_secs(self.registered.lease_secs) / 3;
        let mut backoff = Backoff::default();
        loop {
            let running = self.shared().running.keys().cloned().collect();
            let poll = Poll {
                running,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            };
            match self.client.poll(&self.registered.credential, &poll).await {
                Ok(work) => {
                    backoff.reset();
                    self.take(work);
                    continue;
                }
                Err(Error::Unauthorized(message)) => {
                    tracing::error!(
                        "the server refused this machine's credential (401): {message}"
                    );
                    return;
                }
                Err(error) => tracing::warn!(
                    "cannot ask for work: {error}; trying again in {:?}",
                    backoff.peek()
                ),
            }
            backoff.wait().await;
        }
    }

    fn take(&self, work: Work) {
        for key in work.stop {
            if let Some(stop) = self.shared().running.remove(&key) {
                tracing::warn!("stopping attempt {key}: the server says so");
                stop.stop();
            }
        }
        for spec in work.start {
            self.start(spec);
        }
    }

    fn start(&self, mut spec: AttemptSpec) {
        reach_back(&mut spec, self.client.base());
        let key = spec.key.clone();
        tracing::info!("starting attempt {key}");
        let (updates, mut received) = mpsc::unbounded_channel();
        if let Err(failure) = self.hold_for(&spec) {
            let _ = updates.send(AttemptUpdate::Ended {
                outcome: Err(failure),
            });
        } else {
            let machine_key = Some(self.machine.key.clone());
            let runner = self.machine.runner.clone();
            let stop = murmur_attempt::start_keyed(runner, machine_key, spec, updates);
            self.shared().running.insert(key.clone(), stop);
        }
        let (shared, filled) = (self.shared.clone(), self.filled.clone());
        tokio::spawn(async move {
            while let Some(update) = received.recv().await {
                let ended = matches!(update, AttemptUpdate::Ended { .. });
                let mut shared = lock(&shared);
                shared.outbox.push(&key, update);
                if ended {
                    shared.running.remove(&key);
                }
                drop(shared);
                filled.notify_one();
            }
        });
    }

    /// Makes the folder hold the attempt's tenant's work alone; an attempt that cannot have
    /// that does not run (here: another machine may take its retry).
    fn hold_for(&self, spec: &AttemptSpec) -> Result<(), AttemptFailure> {
        // An emptying can take a while: the runtime's other tasks (the sender) move elsewhere.
        match tokio::task::block_in_place(|| self.machine.folder.hold(&spec.tenant)) {
            Ok(true) => {
                tracing::info!(
                    "emptied the worker's folder: attempt {} is of another tenant than its work",
                    spec.key
                );
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => Err(AttemptFailure::new(
                FailureKind::Failed,
                format!(
                    "the worker cannot empty its folder {} of another tenant's work for attempt {}: {error}",
                    self.machine.folder.root().display(),
                    spec.key
                ),
            )),
        }
    }
}

/// The variable that holds the agent API's URL (`murmur_engine::identity::API_URL_VAR`).
const API_URL_VAR: &str = "MURMUR_API_URL";

/// An agent on this machine calls the agent API (`murmur spawn`, `murmur mcp`) through the
/// URL this worker reaches the server by: the server serves that API next to the worker
/// routes, and the URL it put in the spec is its own listener's address, which from another
/// host may be unreachable (a wildcard or loopback bind).
fn reach_back(spec: &mut AttemptSpec, server: &str) {
    for (name, value) in &mut spec.env {
        if name == API_URL_VAR {
            server.clone_into(value);
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends the outbox until it is empty, then waits for it to fill; after a failure, sends
/// everything unacknowledged again.
async fn send(client: Client, credential: String, shared: Arc<Mutex<Shared>>, filled: Arc<Notify>) {
    let mut backoff = Backoff::default();
    loop {
        let pending = lock(&shared).outbox.pending();
        let Some(updates) = pending else {
            filled.notified().await;
            continue;
        };
        match client.updates(&credential, &updates).await {
            Ok(answer) => {
                backoff.reset();
                let mut shared = lock(&shared);
                for key in shared.outbox.acknowledge(&answer) {
                    tracing::warn!(
                        "the server no longer takes updates of attempt {key} (this machine was lost meanwhile); stopping it and dropping them"
                    );
                    if let Some(stop) = shared.running.remove(&key) {
                        stop.stop();
                    }
                }
                continue;
            }
            // The poller notices too, and ends the session.
            Err(Error::Unauthorized(_)) => {}
            Err(error) => tracing::warn!(
                "cannot send updates: {error}; trying again in {:?}",
                backoff.peek()
            ),
        }
        backoff.wait().await;
    }
}
