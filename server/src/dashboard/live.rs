//! `GET /ui/runs/live?flight=&status=`: the runs page's live list, as an SSE stream of `runs`
//! events, each the newest runs (with their costs) whenever that list changed. The stream
//! wakes on the commits of the unfinished runs it lists; the store tells of no new runs, so
//! it also looks for them every second. The browser never polls.

use crate::tenant::Scoped;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use murmur_engine::RunStatus;
use murmur_engine::store::listing::{ListError, RunQuery};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::AppState;
use crate::error::ApiError;
use crate::views::{self, RunSummary};

/// The runs the page lists.
const LISTED: u64 = 100;
/// How often the stream looks for runs it was not told about.
const LOOK_FOR_NEW: Duration = Duration::from_secs(1);
/// Commits of a busy run come every few milliseconds: one list per this interval is enough.
const SETTLE: Duration = Duration::from_millis(100);
/// A stream ends after this and the page connects again: a server shutting down waits for
/// its open responses, and this one would otherwise never end.
const LIFETIME: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    flight: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub cost_usd: Option<f64>,
}

pub async fn runs(
    Scoped(state): Scoped,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::invalid(e.body_text()))?;
    let query = RunQuery {
        flight: filter.flight.filter(|f| !f.is_empty()),
        status: filter.status.filter(|s| !s.is_empty()),
        cursor: None,
        limit: Some(LISTED),
    };
    // A bad filter is a 400 now, not a stream that ends at once.
    let mut costs = HashMap::new();
    let first = list(&state, &query, &mut costs).await?;
    Ok(Sse::new(stream(state, query, first, costs))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Cost by run id and version: a run's agents are read again only when it changed.
type Costs = HashMap<String, (i64, Option<f64>)>;

async fn list(
    state: &AppState,
    query: &RunQuery,
    costs: &mut Costs,
) -> Result<Vec<Listed>, ApiError> {
    let page = match state.store().list_runs(query, &views::now_stamp()).await {
        Ok(page) => page,
        Err(ListError::Store(error)) => return Err(error.into()),
        Err(refused) => return Err(ApiError::invalid(refused.to_string())),
    };
    let mut listed = Vec::with_capacity(page.runs.len());
    for run in page.runs {
        let cost = match costs.get(&run.id) {
            Some((version, cost)) if *version == run.version => *cost,
            _ => {
                let agents = state.store().agents(&run.id).await?;
                let costs_of: Vec<f64> = agents.iter().filter_map(|a| a.cost_usd).collect();
                let cost = (!costs_of.is_empty()).then(|| costs_of.iter().sum());
                costs.insert(run.id.clone(), (run.version, cost));
                cost
            }
        };
        let summary = views::run_summary(&run);
        listed.push(Listed {
            summary,
            cost_usd: cost,
        });
    }
    costs.retain(|id, _| listed.iter().any(|l| &l.summary.id == id));
    Ok(listed)
}

fn stream(
    state: AppState,
    query: RunQuery,
    first: Vec<Listed>,
    costs: Costs,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let start = (Some(first), None::<(String, Vec<String>)>, costs);
    let ends = tokio::time::Instant::now() + LIFETIME;
    futures::stream::unfold(start, move |(mut first, mut sent, mut costs)| {
        let state = state.clone();
        let query = query.clone();
        async move {
            loop {
                if tokio::time::Instant::now() >= ends {
                    return None;
                }
                let now = match first.take() {
                    Some(listed) => listed,
                    None => {
                        let watched = sent
                            .as_ref()
                            .map(|(_, ids)| ids.clone())
                            .unwrap_or_default();
                        wait_for_change(&state, &watched).await;
                        match list(&state, &query, &mut costs).await {
                            Ok(listed) => listed,
                            // The store is away for now: look again on the next wake-up.
                            Err(_) => continue,
                        }
                    }
                };
                // Plain data always serialises.
                let data = serde_json::json!({ "runs": now }).to_string();
                if sent.as_ref().is_none_or(|(last, _)| *last != data) {
                    sent = Some((data.clone(), unfinished(&now)));
                    let event = SseEvent::default().event("runs").data(data);
                    return Some((Ok(event), (None, sent, costs)));
                }
            }
        }
    })
}

/// Until one of the unfinished runs listed commits, or it is time to look for new runs.
async fn wait_for_change(state: &AppState, unfinished: &[String]) {
    let mut watches: Vec<watch::Receiver<i64>> = unfinished
        .iter()
        .map(|id| state.store().watch_run(id))
        .collect();
    for watch in &mut watches {
        watch.borrow_and_update();
    }
    let changed = async {
        if watches.is_empty() {
            return std::future::pending::<()>().await;
        }
        let waits = watches.iter_mut().map(|w| Box::pin(w.changed()));
        let _ = futures::future::select_all(waits).await;
    };
    tokio::select! {
        () = changed => tokio::time::sleep(SETTLE).await,
        () = tokio::time::sleep(LOOK_FOR_NEW) => {}
    }
}

fn unfinished(listed: &[Listed]) -> Vec<String> {
    listed
        .iter()
        .filter(|l| RunStatus::parse(&l.summary.status).is_none_or(|s| !s.is_terminal()))
        .map(|l| l.summary.id.clone())
        .collect()
}
