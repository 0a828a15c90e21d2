//! The leases this process holds. Taking one makes this process the run's only driver;
//! one keeper task renews them all in one statement and tells a driver the moment its
//! run was taken over (or could not be renewed in time), so it stops its agents first.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::Error;
use crate::clock::Clock;
use crate::lease::{Lease, Owner};
use crate::store::{Acquired, Store};

/// How long a lease lasts unless renewed; a dead driver's runs are taken over after this.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The leases of one process (shared by clones).
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    owner: Owner,
    ttl: Duration,
    renew_every: Duration,
    held: Mutex<Held>,
    counts: Counts,
}

/// What this process did with leases, for `/metrics`.
#[derive(Default)]
struct Counts {
    taken: AtomicU64,
    taken_over: AtomicU64,
    renewals: AtomicU64,
    lost: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Leases taken (new runs, resumed runs and take-overs).
    pub taken: u64,
    /// Of those, taken from another holder that expired or was proven gone.
    pub taken_over: u64,
    /// Renewal rounds that succeeded.
    pub renewals: u64,
    /// Leases lost to another process (or to renewals failing for longer than a lease).
    pub lost: u64,
    /// Leases held now.
    pub held: u64,
}

#[derive(Default)]
struct Held {
    runs: HashMap<String, (i64, watch::Sender<bool>)>,
    /// Runs whose lease is being taken in the store now, not yet in `runs`.
    acquiring: HashSet<String>,
    keeper: bool,
    /// When the last renewal succeeded (by the injected clock).
    renewed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A lease this process holds on one run. Dropping it (a drive that ended, even by being
/// aborted) forgets it here; [`Leases::release`] also lets it go in the store.
pub struct RunLease {
    pub epoch: i64,
    /// The lease it replaced, so the new driver can judge what the old one left behind.
    pub previous: Lease,
    lost: watch::Receiver<bool>,
    run_id: String,
    leases: Weak<Inner>,
}

impl Drop for RunLease {
    fn drop(&mut self) {
        if let Some(inner) = self.leases.upgrade() {
            let leases = Leases { inner };
            let mut held = leases.held();
            if held
                .runs
                .get(&self.run_id)
                .is_some_and(|(epoch, _)| *epoch == self.epoch)
            {
                held.runs.remove(&self.run_id);
            }
        }
    }
}

impl RunLease {
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the lease is lost; never, while it is held.
    pub async fn lost(&mut self) {
        if self.lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Leases {
    /// Leases held by `owner`, lasting `ttl`, renewed every third of it.
    pub fn new(owner: Owner, ttl: Duration) -> Self {
        Self::with_renewal(owner, ttl, ttl / 3)
    }

    /// As [`Self::new`], renewed every `renew_every` (tests renew by hand with a long one).
    pub fn with_renewal(owner: Owner, ttl: Duration, renew_every: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                owner,
                ttl,
                renew_every,
                held: Mutex::default(),
                counts: Counts::default(),
            }),
        }
    }

    pub fn owner(&self) -> &Owner {
        &self.inner.owner
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    pub fn counts(&self) -> LeaseCounts {
        let counts = &self.inner.counts;
        LeaseCounts {
            taken: counts.taken.load(Ordering::Relaxed),
            taken_over: counts.taken_over.load(Ordering::Relaxed),
            renewals: counts.renewals.load(Ordering::Relaxed),
            lost: counts.lost.load(Ordering::Relaxed),
            held: self.held().runs.len() as u64,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn expiry(&self, clock: &dyn Clock) -> (String, String) {
        let now = clock.now();
        let ttl = chrono::Duration::from_std(self.inner.ttl).unwrap_or(chrono::Duration::MAX);
        let stamp = |at: chrono::DateTime<chrono::Utc>| {
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        (stamp(now), stamp(now + ttl))
    }

    /// When a lease (or a machine row) taken now expires unless renewed.
    pub fn expires_at(&self, clock: &dyn Clock) -> String {
        self.expiry(clock).1
    }

    /// Takes the run's lease, or says who drives it.
    pub async fn acquire(
        &self,
        store: &Store,
        clock: &Arc<dyn Clock>,
        run_id: &str,
    ) -> Result<RunLease, Error> {
        if self.held().runs.contains_key(run_id) {
            return Err(Error::Driven {
                run: run_id.to_owned(),
                holder: format!("this process ({})", self.owner().holder.describe()),
                since: String::new(),
            });
        }
        let (now, expires) = self.expiry(clock.as_ref());
        let _acquiring = Acquiring::new(self, run_id);
        match store
            .acquire_lease(run_id, self.owner(), &now, &expires)
            .await?
        {
            Acquired::Taken { epoch, previous } => {
                self.inner.counts.taken.fetch_add(1, Ordering::Relaxed);
                if previous.owner.is_some() {
                    self.inner.counts.taken_over.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(run = %run_id, epoch, from = %previous.holder_text(), "lease taken over");
                } else {
                    tracing::debug!(run = %run_id, epoch, "lease taken");
                }
                let (lost_tx, lost) = watch::channel(false);
                let start_keeper = {
                    let mut held = self.held();
                    held.runs.insert(run_id.to_owned(), (epoch, lost_tx));
                    held.renewed_at.get_or_insert(clock.now());
                    !std::mem::replace(&mut held.keeper, true)
                };
                if start_keeper {
                    let weak = Arc::downgrade(&self.inner);
                    tokio::spawn(keep(weak, store.clone(), clock.clone()));
                }
                Ok(RunLease {
                    epoch,
                    previous,
                    lost,
                    run_id: run_id.to_owned(),
                    leases: Arc::downgrade(&self.inner),
                })
            }
            Acquired::Held(lease) => Err(Error::Driven {
                run: run_id.to_owned(),
                holder: lease.holder_text(),
                since: lease.acquired_at.unwrap_or_default(),
            }),
        }
    }

    /// Lets the lease go: the run ended or this process stops driving it.
    pub async fn release(&self, store: &Store, run_id: &str, lease: &RunLease) {
        // Best effort: an unreleased lease simply expires.
        let _ = store
            .release_lease(run_id, &self.owner().id, lease.epoch)
            .await;
    }

    /// Renews every held lease now; runs taken over meanwhile are told they lost theirs.
    /// When renewals fail for longer than the lease lasts, every lease counts as lost.
    pub async fn renew_now(&self, store: &Store, clock: &dyn Clock) {
        if self.held().runs.is_empty() {
            return;
        }
        let (_, expires) = self.expiry(clock);
        let renewed = store.renew_leases(&self.owner().id, &expires).await;
        let undriven = self.note_renewal(clock, renewed);
        self.let_go(store, undriven).await;
    }

    /// Tells the runs taken over meanwhile that they lost their lease (all of them, when
    /// renewals failed for longer than a lease lasts); answers the leases the store gave
    /// this process that no drive here holds.
    fn note_renewal(
        &self,
        clock: &dyn Clock,
        renewed: Result<HashMap<String, i64>, crate::store::Error>,
    ) -> Vec<(String, i64)> {
        let mut held = self.held();
        match renewed {
            Ok(still_mine) => {
                self.inner.counts.renewals.fetch_add(1, Ordering::Relaxed);
                held.renewed_at = Some(clock.now());
                held.runs.retain(|run, (epoch, lost)| {
                    let kept = still_mine.get(run) == Some(epoch);
                    if !kept {
                        tracing::warn!(run = %run, epoch = *epoch, "lease lost: another process took the run over");
                        self.inner.counts.lost.fetch_add(1, Ordering::Relaxed);
                        let _ = lost.send(true);
                    }
                    kept
                });
                still_mine
                    .into_iter()
                    .filter(|(run, _)| {
                        !held.runs.contains_key(run) && !held.acquiring.contains(run)
                    })
                    .collect()
            }
            Err(error) => {
                let ttl =
                    chrono::Duration::from_std(self.inner.ttl).unwrap_or(chrono::Duration::MAX);
                let stale = held.renewed_at.is_none_or(|at| clock.now() - at >= ttl);
                tracing::warn!(%error, stale, "cannot renew run leases");
                if stale {
                    for (_, (_, lost)) in held.runs.drain() {
                        self.inner.counts.lost.fetch_add(1, Ordering::Relaxed);
                        let _ = lost.send(true);
                    }
                }
                Vec::new()
            }
        }
    }

    /// Releases leases the store says this process holds though no drive here holds them:
    /// a drive that ended while the store could not take its release. Renewed with the
    /// others, such a lease would keep its run from every other server for as long as this
    /// process lives.
    async fn let_go(&self, store: &Store, undriven: Vec<(String, i64)>) {
        for (run, epoch) in undriven {
            tracing::info!(run = %run, epoch, "releasing the lease of a run no longer driven here");
            if let Err(error) = store.release_lease(&run, &self.owner().id, epoch).await {
                tracing::warn!(run = %run, %error, "cannot release the lease; trying again at the next renewal");
            }
        }
    }
}

/// A run whose lease is being taken: renewals leave its lease alone meanwhile.
struct Acquiring<'a> {
    leases: &'a Leases,
    run_id: String,
}

impl<'a> Acquiring<'a> {
    fn new(leases: &'a Leases, run_id: &str) -> Self {
        leases.held().acquiring.insert(run_id.to_owned());
        Self {
            leases,
            run_id: run_id.to_owned(),
        }
    }
}

impl Drop for Acquiring<'_> {
    fn drop(&mut self) {
        self.leases.held().acquiring.remove(&self.run_id);
    }
}

/// Renews the leases while any are held; ends with the last one (or the last handle).
async fn keep(inner: Weak<Inner>, store: Store, clock: Arc<dyn Clock>) {
    loop {
        let Some(every) = inner.upgrade().map(|inner| inner.renew_every) else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let leases = Leases { inner };
        {
            let mut held = leases.held();
            if held.runs.is_empty() {
                held.keeper = false;
                return;
            }
        }
        leases.renew_now(&store, clock.as_ref()).await;
    }
}
