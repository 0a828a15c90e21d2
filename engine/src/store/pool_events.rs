//! What a cloud pool's provisioning ran into, kept in the store so that `murmur pool status`
//! (a process of its own) and a restarted server see it: a location passed over for lack of
//! capacity, a back-off, provisioning stopped by refused credentials, a VM made.

use sea_query::{Expr, ExprTrait, Iden, Order, Query};

use super::Store;

#[derive(Iden, Clone, Copy)]
enum PoolEvents {
    Table,
    Tenant,
    Pool,
    Id,
    At,
    Kind,
    Location,
    Message,
}

/// What happened to a pool's provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolEventKind {
    /// A zone or subnet had no room (or a quota was reached); the next one was tried.
    Capacity,
    /// No VM could be made anywhere for now; provisioning waits before trying again.
    Backoff,
    /// The provider refused the credentials or a permission, or the placement is unusable:
    /// provisioning stopped until the server restarts with it fixed.
    Stopped,
    /// A server started on a pool whose provisioning had stopped, and tries again.
    Resumed,
    /// A VM was made.
    Provisioned,
}

impl PoolEventKind {
    pub const ALL: [Self; 5] = [
        Self::Capacity,
        Self::Backoff,
        Self::Stopped,
        Self::Resumed,
        Self::Provisioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::Backoff => "backoff",
            Self::Stopped => "stopped",
            Self::Resumed => "resumed",
            Self::Provisioned => "provisioned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One entry of a pool's provisioning story.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolEvent {
    pub at: String,
    pub kind: PoolEventKind,
    /// The zone or subnet it was about.
    pub location: Option<String>,
    pub message: String,
}

impl Store {
    /// Appends `event` to pool `pool`'s story.
    pub async fn add_pool_event(&self, pool: &str, event: &PoolEvent) -> Result<(), super::Error> {
        let insert = Query::insert()
            .into_table(PoolEvents::Table)
            .columns([
                PoolEvents::Tenant,
                PoolEvents::Pool,
                PoolEvents::Id,
                PoolEvents::At,
                PoolEvents::Kind,
                PoolEvents::Location,
                PoolEvents::Message,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                pool.into(),
                uuid::Uuid::now_v7().simple().to_string().into(),
                event.at.as_str().into(),
                event.kind.as_str().into(),
                event.location.clone().into(),
                event.message.as_str().into(),
            ])
            .to_owned();
        self.execute(&insert).await?;
        Ok(())
    }

    /// The latest `limit` events of pool `pool`, oldest first.
    pub async fn pool_events(
        &self,
        pool: &str,
        limit: u64,
    ) -> Result<Vec<PoolEvent>, super::Error> {
        let select = Query::select()
            .columns([
                PoolEvents::At,
                PoolEvents::Kind,
                PoolEvents::Location,
                PoolEvents::Message,
            ])
            .from(PoolEvents::Table)
            .and_where(Expr::col(PoolEvents::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(PoolEvents::Pool).eq(pool))
            .order_by(PoolEvents::Id, Order::Desc)
            .limit(limit)
            .to_owned();
        let rows: Vec<(String, String, Option<String>, String)> = self.fetch(&select).await?;
        let mut events = Vec::with_capacity(rows.len());
        for (at, kind, location, message) in rows.into_iter().rev() {
            let kind = PoolEventKind::parse(&kind).ok_or_else(|| {
                super::Error::Corrupt(format!("pool {pool} has an event of kind `{kind}`"))
            })?;
            events.push(PoolEvent {
                at,
                kind,
                location,
                message,
            });
        }
        Ok(events)
    }
}

/// Why provisioning of a pool is stopped, from its story: the latest `stopped` event's
/// message, unless a VM was made or a server resumed after it.
pub fn stopped_reason(events: &[PoolEvent]) -> Option<&str> {
    let last = events.iter().rev().find(|event| {
        matches!(
            event.kind,
            PoolEventKind::Stopped | PoolEventKind::Resumed | PoolEventKind::Provisioned
        )
    })?;
    (last.kind == PoolEventKind::Stopped).then_some(last.message.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: PoolEventKind, message: &str) -> PoolEvent {
        PoolEvent {
            at: "2026-12-02T00:00:00.000Z".into(),
            kind,
            location: None,
            message: message.into(),
        }
    }

    #[test]
    fn kinds_round_trip_through_their_column() {
        for kind in PoolEventKind::ALL {
            assert_eq!(PoolEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(PoolEventKind::parse("exploded"), None);
    }

    #[test]
    fn a_stop_holds_until_a_vm_is_made_or_a_server_resumes() {
        use PoolEventKind::*;
        let stopped = [event(Provisioned, "made"), event(Stopped, "denied")];
        assert_eq!(stopped_reason(&stopped), Some("denied"));
        let capacity_after = [event(Stopped, "denied"), event(Capacity, "full")];
        assert_eq!(stopped_reason(&capacity_after), Some("denied"));
        let resumed = [event(Stopped, "denied"), event(Resumed, "again")];
        assert_eq!(stopped_reason(&resumed), None);
        assert_eq!(stopped_reason(&[]), None);
    }

    #[tokio::test]
    async fn events_are_kept_per_pool_newest_last() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .expect("store");
        for message in ["one", "two", "three"] {
            store
                .add_pool_event("cloud", &event(PoolEventKind::Capacity, message))
                .await
                .expect("added");
        }
        store
            .add_pool_event("other", &event(PoolEventKind::Stopped, "elsewhere"))
            .await
            .expect("added");
        let latest = store.pool_events("cloud", 2).await.expect("read");
        let messages: Vec<&str> = latest.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["two", "three"]);
    }
}
