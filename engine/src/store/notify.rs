//! Commits, told as they happen: a driver or an event stream waits on its run's watch instead
//! of polling. Within a process the writer tells the run's watchers after each group commit;
//! across processes on PostgreSQL each group's transaction sends one `NOTIFY`, which every
//! other store's listener passes on to its own watchers. On SQLite, other processes' commits
//! are found by the watchers' slow poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

/// The PostgreSQL channel commits are announced on.
pub(super) const CHANNEL: &str = "murmur_commits";

/// Most of a NOTIFY payload (PostgreSQL's limit is 8,000 bytes).
const PAYLOAD_LIMIT: usize = 7_000;

/// Watchers of runs in this process, by run id.
#[derive(Default, Debug)]
pub(super) struct Notifier {
    /// Tells this process's own notifications apart from other processes'.
    pub instance: String,
    runs: Mutex<HashMap<String, watch::Sender<i64>>>,
    listening: Mutex<bool>,
    polling: Mutex<bool>,
    /// The process's waiting lines (queued runs, runs waiting for machines).
    pub turns: Arc<super::turns::Turns>,
}

impl Notifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            ..Self::default()
        })
    }

    /// A watch of the run's latest committed version.
    pub fn watch(&self, run_id: &str) -> watch::Receiver<i64> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.retain(|_, sender| sender.receiver_count() > 0);
        runs.entry(run_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Tells the run's watchers that `version` is committed.
    pub fn committed(&self, run_id: &str, version: i64) {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = runs.get(run_id) {
            sender.send_if_modified(|seen| {
                let newer = version > *seen;
                if newer {
                    *seen = version;
                }
                newer
            });
        }
    }

    /// Starts looking at the watched runs' versions in the store (once per store): one query
    /// for every watched run of the process, so that other processes' commits reach the
    /// watchers on SQLite, and on PostgreSQL while the listener is reconnecting.
    pub fn poll(self: &Arc<Self>, backend: &super::backend::Backend) {
        let mut polling = self.polling.lock().unwrap_or_else(PoisonError::into_inner);
        if !std::mem::replace(&mut *polling, true) {
            let every = match backend {
                super::backend::Backend::Sqlite(_) => POLL_SQLITE,
                super::backend::Backend::Postgres(_) => POLL_POSTGRES,
            };
            tokio::spawn(poll(Arc::downgrade(self), backend.clone(), every));
        }
    }

    /// The runs watched now, with the version their watchers last saw.
    fn watched(&self) -> Vec<(String, i64)> {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(run, sender)| (run.clone(), *sender.borrow()))
            .collect()
    }

    /// Starts listening for other processes' commits (once per store).
    pub fn listen(self: &Arc<Self>, pool: &PgPool) {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !std::mem::replace(&mut *listening, true) {
            tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        }
    }
}

/// How often watched runs are looked at: often on SQLite, where nothing else tells other
/// processes' commits; rarely on PostgreSQL, where it only covers a reconnecting listener.
const POLL_SQLITE: Duration = Duration::from_millis(500);
const POLL_POSTGRES: Duration = Duration::from_secs(2);

/// Runs per query of the poll (bound variables stay far below either database's limit).
const POLL_CHUNK: usize = 500;

/// Looks at the versions of every watched run, until the store is gone.
async fn poll(notifier: Weak<Notifier>, backend: super::backend::Backend, every: Duration) {
    use sea_query::{Expr, ExprTrait, Query};
    loop {
        tokio::time::sleep(every).await;
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let watched = strong.watched();
        drop(strong);
        for chunk in watched.chunks(POLL_CHUNK) {
            let select = Query::select()
                .columns([super::schema::Runs::Id, super::schema::Runs::Version])
                .from(super::schema::Runs::Table)
                .and_where(
                    Expr::col(super::schema::Runs::Id)
                        .is_in(chunk.iter().map(|(id, _)| id.as_str())),
                )
                .to_owned();
            let found: Vec<(String, i64)> = match backend.fetch_all(&select).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::debug!(%error, "looking at watched runs failed; trying again");
                    break;
                }
            };
            let Some(notifier) = notifier.upgrade() else {
                return;
            };
            for (run, version) in found {
                notifier.committed(&run, version);
            }
        }
    }
}

/// The payloads announcing `commits` (run id, version): `INSTANCE|run:version,run:version`.
pub(super) fn payloads(instance: &str, commits: &[(&str, i64)]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = format!("{instance}|");
    for (run, version) in commits {
        let item = format!("{run}:{version}");
        if current.len() + item.len() + 1 > PAYLOAD_LIMIT && !current.ends_with('|') {
            payloads.push(std::mem::replace(&mut current, format!("{instance}|")));
        }
        if !current.ends_with('|') {
            current.push(',');
        }
        current.push_str(&item);
    }
    if !current.ends_with('|') {
        payloads.push(current);
    }
    payloads
}

/// Passes other processes' notifications on, until the store is gone; reconnects after a
/// lost connection (watchers poll meanwhile).
async fn listen(notifier: Weak<Notifier>, pool: PgPool) {
    while notifier.strong_count() > 0 {
        match listener(&pool).await {
            Some(mut listener) => loop {
                tokio::select! {
                    received = listener.recv() => match received {
                        Ok(notification) => {
                            let Some(notifier) = notifier.upgrade() else { return };
                            tell(&notifier, notification.payload());
                        }
                        Err(error) => {
                            tracing::debug!(%error, "commit notifications interrupted");
                            break;
                        }
                    },
                    () = tokio::time::sleep(Duration::from_secs(5)) => {
                        if notifier.strong_count() == 0 {
                            return;
                        }
                    }
                }
            },
            None => tracing::debug!("cannot listen for commit notifications; watchers poll"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listener(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

fn tell(notifier: &Notifier, payload: &str) {
    let Some((instance, commits)) = payload.split_once('|') else {
        return;
    };
    if instance == notifier.instance {
        return;
    }
    for commit in commits.split(',') {
        if let Some((run, version)) = commit.rsplit_once(':')
            && let Ok(version) = version.parse()
        {
            notifier.committed(run, version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_round_trip() {
        let runs: Vec<String> = (0..400).map(|i| format!("{i:032}")).collect();
        let commits: Vec<(&str, i64)> = runs.iter().map(|r| (r.as_str(), 7)).collect();
        let payloads = payloads("me", &commits);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= PAYLOAD_LIMIT));
        let notifier = Notifier::new();
        let mut watches: Vec<_> = runs.iter().map(|r| notifier.watch(r)).collect();
        for payload in &payloads {
            tell(&notifier, &payload.replacen("me|", "other|", 1));
        }
        assert!(
            watches
                .iter_mut()
                .all(|w| w.has_changed().unwrap_or(false) && *w.borrow() == 7)
        );
        tell(&notifier, &format!("{}|{}:9", notifier.instance, runs[0]));
        assert_eq!(
            *watches[0].borrow_and_update(),
            7,
            "its own notifications are skipped"
        );
    }
}
