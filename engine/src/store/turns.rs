//! The process's waiting lines, told rather than polled: queued runs waiting for their flight's
//! `max_concurrent` room, and runs waiting for machines of a full pool. One task per store
//! decides for every waiting run of the process at once (one query per flight, one per pool),
//! woken by the writer when a run ends or machines come free here, and once a second for what
//! other processes did. Before this, every waiting run's driver looked at the store on its own
//! every half second, which at a thousand waiting runs was most of the server's work.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use sea_query::{Expr, ExprTrait, Query};
use tokio::sync::{Notify, oneshot, watch};

use super::backend::Backend;
use super::schema::Runs;
use super::{Error, Store};
use crate::state::RunStatus;

/// How often the lines are looked at without being told: for other processes' ends and frees.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// A waiting run's place: runs go by creation time, then id (as everywhere runs take turns).
type Place = (String, String);

#[derive(Default, Debug)]
pub(super) struct Turns {
    lines: Mutex<Lines>,
    wake: Notify,
    started: Mutex<bool>,
}

#[derive(Default, Debug)]
struct Lines {
    /// Queued runs by (tenant, flight): the flight's `max_concurrent` and who waits.
    flights: HashMap<(String, String), Flight>,
    /// Runs waiting for machines, by (tenant, pool).
    pools: HashMap<(String, String), Pool>,
}

#[derive(Debug)]
struct Flight {
    limit: usize,
    waiting: BTreeMap<Place, oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Pool {
    capacity: usize,
    waiting: BTreeMap<Place, Arc<Notify>>,
    /// The ids of the waiting runs in line order, for whoever watches the line.
    line: watch::Sender<Vec<String>>,
}

impl Pool {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            waiting: BTreeMap::new(),
            line: watch::channel(Vec::new()).0,
        }
    }

    fn publish(&self) {
        let ids = self.waiting.keys().map(|(_, id)| id.clone()).collect();
        self.line.send_replace(ids);
    }
}

impl Turns {
    fn lines(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A run ended (or machines came free) in this process: look at the lines now.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Machines of a pool came free here: the oldest runs waiting for it in this process are
    /// told (as many as came free, in each tenant's line: the pool's machines are shared), so
    /// the machines go to them first and nobody else wakes.
    pub fn freed(&self, pool: &str, machines: usize) {
        let lines = self.lines();
        let lines_of_pool = lines.pools.iter().filter(|((_, name), _)| name == pool);
        for (_, line) in lines_of_pool {
            for notify in line.waiting.values().take(machines.max(1)) {
                notify.notify_one();
            }
        }
    }

    fn start(self: &Arc<Self>, backend: &Backend) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if !std::mem::replace(&mut *started, true) {
            tokio::spawn(decide_loop(Arc::downgrade(self), backend.clone()));
        }
    }
}

/// Until the store is gone: admits queued runs and tells runs waiting for machines.
async fn decide_loop(turns: Weak<Turns>, backend: Backend) {
    loop {
        {
            // Held only while waiting (at most `LOOK_AGAIN`), so a dropped store ends the loop.
            let Some(strong) = turns.upgrade() else {
                return;
            };
            let _ = tokio::time::timeout(LOOK_AGAIN, strong.wake.notified()).await;
        }
        let Some(turns) = turns.upgrade() else { return };
        if let Err(error) = admit(&turns, &backend).await {
            tracing::debug!(%error, "looking at queued runs failed; trying again");
        }
        if let Err(error) = tell_pools(&turns, &backend).await {
            tracing::debug!(%error, "looking at full pools failed; trying again");
        }
    }
}

/// Admits every queued run among the first `max_concurrent` of its flight (running runs
/// first, then queued ones by age): one small query per flight with waiting runs. One, so
/// the running runs and the queued ones are counted in the same snapshot: counted apart, a
/// run admitted a moment ago could be neither (still queued for the count, running when the
/// queue is read) and the next in line would be let in beside it.
async fn admit(turns: &Turns, backend: &Backend) -> sqlx::Result<()> {
    let flights: Vec<((String, String), usize)> = {
        let mut lines = turns.lines();
        lines.flights.retain(|_, flight| {
            flight.waiting.retain(|_, sender| !sender.is_closed());
            !flight.waiting.is_empty()
        });
        lines
            .flights
            .iter()
            .map(|(key, flight)| (key.clone(), flight.limit))
            .collect()
    };
    for ((tenant, flight), limit) in flights {
        let queued: Vec<(String, i64)> =
            backend.fetch_all(&turn_of(&tenant, &flight, limit)).await?;
        let running = queued
            .first()
            .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0));
        let room = limit.saturating_sub(running);
        let first = &queued[..room.min(queued.len())];
        if first.is_empty() {
            continue;
        }
        let mut lines = turns.lines();
        let Some(waiting) = lines.flights.get_mut(&(tenant, flight)) else {
            continue;
        };
        let admitted: Vec<Place> = waiting
            .waiting
            .keys()
            .filter(|(_, id)| first.iter().any(|(first, _)| first == id))
            .cloned()
            .collect();
        for place in admitted {
            if let Some(sender) = waiting.waiting.remove(&place) {
                let _ = sender.send(());
            }
        }
    }
    Ok(())
}

/// How many runs of a flight are running (they hold their places first).
fn running_runs(tenant: &str, flight: &str) -> sea_query::SelectStatement {
    Query::select()
        .expr(Expr::col(Runs::Id).count())
        .from(Runs::Table)
        .and_where(Expr::col(Runs::Tenant).eq(tenant))
        .and_where(Expr::col(Runs::Status).eq(RunStatus::Running.as_str()))
        .and_where(Expr::col(Runs::Flight).eq(flight))
        .to_owned()
}

/// The `limit` oldest queued runs of a flight (by creation time, then id), each with how
/// many of the flight's runs are running, in one snapshot: the first `limit - running` of them
/// have their turn. Read through the status index in its order, so only those rows are read.
fn turn_of(tenant: &str, flight: &str, limit: usize) -> sea_query::SelectStatement {
    let running = Expr::SubQuery(None, Box::new(running_runs(tenant, flight).into()));
    Query::select()
        .column(Runs::Id)
        .expr_as(running, "running")
        .from(Runs::Table)
        .and_where(Expr::col(Runs::Tenant).eq(tenant))
        .and_where(Expr::col(Runs::Status).eq(RunStatus::Queued.as_str()))
        .and_where(Expr::col(Runs::Flight).eq(flight))
        .order_by(Runs::CreatedAt, sea_query::Order::Asc)
        .order_by(Runs::Id, sea_query::Order::Asc)
        .limit(limit as u64)
        .to_owned()
}

/// For what other processes freed: the oldest runs waiting for a pool are told as many
/// machines as the pool has free now.
async fn tell_pools(turns: &Turns, backend: &Backend) -> sqlx::Result<()> {
    let pools: Vec<((String, String), usize)> = {
        let mut lines = turns.lines();
        lines
            .pools
            .retain(|_, pool| !pool.waiting.is_empty() || pool.line.receiver_count() > 0);
        lines
            .pools
            .iter()
            .map(|(key, pool)| (key.clone(), pool.capacity))
            .collect()
    };
    for ((_, pool), capacity) in pools {
        let now = crate::clock::Clock::stamp(&crate::clock::SystemClock);
        let in_use = super::machines::live_in_pool(backend, &pool, &now).await?;
        let free = capacity.saturating_sub(in_use);
        if free > 0 {
            turns.freed(&pool, free);
        }
    }
    Ok(())
}

/// A run's place in a pool's line while it waits for machines; leaving drops it.
pub struct PoolPlace {
    turns: Arc<Turns>,
    key: (String, String),
    place: Place,
    notify: Arc<Notify>,
}

impl PoolPlace {
    /// Resolves when machines may have come free for this run.
    pub async fn told(&self) {
        self.notify.notified().await;
    }
}

impl Drop for PoolPlace {
    fn drop(&mut self) {
        let mut lines = self.turns.lines();
        if let Some(pool) = lines.pools.get_mut(&self.key) {
            pool.waiting.remove(&self.place);
            pool.publish();
        }
    }
}

impl Store {
    /// Waits until the queued run `id` (created at `created_at`) is among the first `limit`
    /// runs of `flight`. Dropping the future leaves the line.
    pub async fn wait_for_turn(
        &self,
        flight: &str,
        limit: usize,
        id: &str,
        created_at: &str,
    ) -> Result<(), Error> {
        let turns = &self.notifier.turns;
        turns.start(&self.backend);
        let (admitted, turn) = oneshot::channel();
        {
            let mut lines = turns.lines();
            let line = lines
                .flights
                .entry((self.tenant.clone(), flight.to_owned()))
                .or_insert_with(|| Flight {
                    limit,
                    waiting: BTreeMap::new(),
                });
            line.limit = limit;
            line.waiting
                .insert((created_at.to_owned(), id.to_owned()), admitted);
        }
        turns.changed();
        turn.await
            .map_err(|_| Error::NotWritten("the store's scheduler has stopped".to_owned()))
    }

    /// The runs of this process waiting for machines of `pool`, oldest first, as they join
    /// and leave the line.
    pub fn watch_pool_line(&self, pool: &str) -> watch::Receiver<Vec<String>> {
        let mut lines = self.notifier.turns.lines();
        lines
            .pools
            .entry((self.tenant.clone(), pool.to_owned()))
            .or_insert_with(|| Pool::new(0))
            .line
            .subscribe()
    }

    /// A place in the line of runs waiting for machines of `pool` (of `capacity`): it is
    /// told when machines come free, oldest runs first.
    pub fn wait_for_machines(
        &self,
        pool: &str,
        capacity: usize,
        id: &str,
        created_at: &str,
    ) -> PoolPlace {
        let turns = self.notifier.turns.clone();
        turns.start(&self.backend);
        let key = (self.tenant.clone(), pool.to_owned());
        let place = (created_at.to_owned(), id.to_owned());
        let notify = Arc::new(Notify::new());
        {
            let mut lines = turns.lines();
            let line = lines
                .pools
                .entry(key.clone())
                .or_insert_with(|| Pool::new(capacity));
            line.capacity = capacity;
            line.waiting.insert(place.clone(), notify.clone());
            line.publish();
        }
        PoolPlace {
            turns,
            key,
            place,
            notify,
        }
    }
}
