//! Listing runs a page at a time: filtered by flight and status in SQL, newest first, and
//! continued with an opaque cursor naming the last run of the previous page.

use sea_query::{Cond, Expr, ExprTrait, Order, Query, SelectStatement};

use super::schema::Runs;
use super::statements::{RUN_COLUMNS, RUN_LEASE_COLUMNS};
use super::{Error, RunRow, Store};
use crate::state::RunStatus;

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u64 = 50;
/// The largest page one request may ask for.
pub const MAX_LIMIT: u64 = 1000;

/// The statuses a listing filters by: the stored ones and `interrupted`, which is only shown.
pub const STATUSES: [&str; 6] = [
    "queued",
    "running",
    "completed",
    "failed",
    "canceled",
    "interrupted",
];

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(
        "unknown status `{0}`: use queued, running, completed, failed, canceled or interrupted"
    )]
    Status(String),
    #[error("limit {0} is out of range: give 1 to {MAX_LIMIT}")]
    Limit(u64),
    #[error("the cursor is not one this listing handed out; start again without it")]
    Cursor,
    #[error(
        "the cursor belongs to a listing with other filters; give the same flight and status, or start again without it"
    )]
    CursorFilter,
    #[error(transparent)]
    Store(#[from] Error),
}

/// One page request.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub flight: Option<String>,
    /// One of [`STATUSES`].
    pub status: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// [`DEFAULT_LIMIT`] when `None`.
    pub limit: Option<u64>,
}

/// Runs newest first, and the cursor of the page after them when there is one.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<RunRow>,
    pub next: Option<String>,
}

/// Where a page starts: strictly after this run in (created_at DESC, id DESC) order. The
/// filters ride along so that a cursor is never applied to a listing it did not come from.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    flight: Option<String>,
    status: Option<String>,
    created_at: String,
    id: String,
}

impl Position {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn decode(text: &str) -> Option<Self> {
        if !text.len().is_multiple_of(2) || text.len() > 4096 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Checks a status a listing is asked to filter by.
pub fn listed_status(text: &str) -> Result<&'static str, ListError> {
    STATUSES
        .into_iter()
        .find(|status| *status == text)
        .ok_or_else(|| ListError::Status(text.to_owned()))
}

impl Store {
    /// One page of runs at `now` (for the shown status). Rows are filtered in SQL; only the
    /// unfinished statuses are checked again against [`RunRow::shown_status`], since whether
    /// a lease is held (its holder not proven gone on this host) is decided in Rust.
    pub async fn list_runs(&self, query: &RunQuery, now: &str) -> Result<RunPage, ListError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ListError::Limit(limit));
        }
        let status = query.status.as_deref().map(listed_status).transpose()?;
        let mut after = match &query.cursor {
            Some(text) => Some(self.start(text, query, status)?),
            None => None,
        };
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut runs = Vec::new();
        // One row more than the page tells whether a next page exists.
        while runs.len() <= wanted {
            let batch: Vec<RunRow> = self
                .fetch(&self.page_select(query, status, after.as_ref(), limit + 1))
                .await?;
            let exhausted = batch.len() as u64 <= limit;
            if let Some(last) = batch.last() {
                after = Some((last.created_at.clone(), last.id.clone()));
            }
            runs.extend(
                batch
                    .into_iter()
                    .filter(|run| recheck(status).is_none_or(|s| run.shown_status(now) == s)),
            );
            if exhausted {
                break;
            }
        }
        let next = (runs.len() > wanted).then(|| {
            runs.truncate(wanted);
            let last = &runs[wanted - 1];
            Position {
                flight: query.flight.clone(),
                status: status.map(str::to_owned),
                created_at: last.created_at.clone(),
                id: last.id.clone(),
            }
            .encode()
        });
        Ok(RunPage { runs, next })
    }

    fn start(
        &self,
        text: &str,
        query: &RunQuery,
        status: Option<&str>,
    ) -> Result<(String, String), ListError> {
        let position = Position::decode(text).ok_or(ListError::Cursor)?;
        if position.flight != query.flight || position.status.as_deref() != status {
            return Err(ListError::CursorFilter);
        }
        Ok((position.created_at, position.id))
    }

    pub(super) fn page_select(
        &self,
        query: &RunQuery,
        status: Option<&str>,
        after: Option<&(String, String)>,
        limit: u64,
    ) -> SelectStatement {
        let mut select = Query::select()
            .columns(RUN_COLUMNS)
            .columns(RUN_LEASE_COLUMNS)
            .from(Runs::Table)
            .and_where(Expr::col(Runs::Tenant).eq(self.tenant.as_str()))
            .order_by(Runs::CreatedAt, Order::Desc)
            .order_by(Runs::Id, Order::Desc)
            .limit(limit)
            .to_owned();
        if let Some(flight) = &query.flight {
            select.and_where(Expr::col(Runs::Flight).eq(flight.as_str()));
        }
        match status {
            // Shown, never stored: an unfinished run that was driven once; its lease is
            // checked on the Rust side (see `recheck`).
            Some("interrupted") => {
                select
                    .and_where(
                        Expr::col(Runs::Status)
                            .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
                    )
                    .and_where(Expr::col(Runs::LeaseEpoch).gt(0));
            }
            Some(stored) => {
                select.and_where(Expr::col(Runs::Status).eq(stored));
            }
            None => {}
        }
        if let Some((created_at, id)) = after {
            select.cond_where(
                Cond::any()
                    .add(Expr::col(Runs::CreatedAt).lt(created_at.as_str()))
                    .add(
                        Cond::all()
                            .add(Expr::col(Runs::CreatedAt).eq(created_at.as_str()))
                            .add(Expr::col(Runs::Id).lt(id.as_str())),
                    ),
            );
        }
        select
    }
}

/// The shown status rows must still have after SQL filtered them: the unfinished ones, which
/// an abandoned lease turns into `interrupted`.
fn recheck(status: Option<&str>) -> Option<&str> {
    status.filter(|s| matches!(*s, "queued" | "running" | "interrupted"))
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn a_cursor_reads_back_and_garbage_does_not() {
        let position = Position {
            flight: Some("a|b".into()),
            status: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            id: "r1".into(),
        };
        assert_eq!(Position::decode(&position.encode()), Some(position));
        for garbage in ["", "zz", "abc", "7b7d", "%%%%"] {
            assert_eq!(Position::decode(garbage), None, "{garbage}");
        }
    }
}
