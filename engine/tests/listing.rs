//! Listing runs a page at a time, filtered in SQL, on every backend.

mod backends;

use backends::TestDb;
use murmur_engine::lease::Owner;
use murmur_engine::store::listing::{ListError, RunQuery};
use murmur_engine::store::{Commit, NewRun};
use murmur_engine::{Event, RunStatus, Store};

every_backend!(
    pages_walk_every_matching_run_once_newest_first,
    a_foreign_or_garbage_cursor_and_bad_limits_are_refused,
);

const NOW: &str = "2026-06-01T00:00:00.000Z";
const FLIGHTS: [&str; 3] = ["alpha", "beta", "gamma"];
const SHOWN: [&str; 5] = ["queued", "running", "completed", "failed", "interrupted"];

/// A run as the test made it: `(created_at, id, flight, shown status)`.
type Made = (String, String, &'static str, &'static str);

async fn create(store: &Store, id: &str, flight: &str, created_at: &str) {
    store
        .create_run(&NewRun {
            id,
            flight,
            flight_path: None,
            source: "# F\n\n## a\n\nA.\n",
            digest: "d",
            inputs: &serde_json::json!({}),
            created_at,
            agents: &["a".to_owned()],
            event: None,
        })
        .await
        .expect("create run");
}

async fn set_status(store: &Store, id: &str, status: RunStatus) {
    let finished = status.is_terminal().then_some("2026-02-01T00:00:00.000Z");
    store
        .commit(&Commit {
            run_id: id,
            expected_version: 0,
            at: "2026-02-01T00:00:00.000Z",
            events: &[Event::RunStarted],
            agents: &[],
            status,
            finished_at: finished,
            fence: None,
            machines: None,
        })
        .await
        .expect("commit status");
}

/// 120 runs of three flights in five shown statuses; pairs of runs share a creation stamp,
/// so that the id breaks ties.
async fn many_runs(store: &Store) -> Vec<Made> {
    let owner = Owner::this_process("listing test");
    let mut made = Vec::new();
    for i in 0..120_usize {
        let id = format!("run-{:03}", (i * 37) % 120);
        let created_at = format!("2026-01-01T00:{:02}:{:02}.000Z", i / 2 / 60, (i / 2) % 60);
        let flight = FLIGHTS[i % 3];
        let shown = SHOWN[(i / 3) % 5];
        create(store, &id, flight, &created_at).await;
        match shown {
            "queued" => {}
            "completed" => set_status(store, &id, RunStatus::Completed).await,
            "failed" => set_status(store, &id, RunStatus::Failed).await,
            _ => {
                set_status(store, &id, RunStatus::Running).await;
                let held_until = "2099-01-01T00:00:00.000Z";
                store
                    .acquire_lease(&id, &owner, NOW, held_until)
                    .await
                    .expect("lease");
                if shown == "interrupted" {
                    store
                        .release_lease(&id, &owner.id, 1)
                        .await
                        .expect("release");
                }
            }
        }
        made.push((created_at, id, flight, shown));
    }
    made.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    made
}

/// Every page of a listing, following cursors from the first.
async fn walk(store: &Store, flight: Option<&str>, status: Option<&str>) -> Vec<String> {
    let mut query = RunQuery {
        flight: flight.map(str::to_owned),
        status: status.map(str::to_owned),
        cursor: None,
        limit: Some(25),
    };
    let mut ids = Vec::new();
    loop {
        let page = store.list_runs(&query, NOW).await.expect("a page");
        assert!(page.runs.len() <= 25);
        if page.next.is_some() {
            assert_eq!(page.runs.len(), 25, "only the last page is short");
        }
        for run in &page.runs {
            assert_eq!(
                run.shown_status(NOW),
                status.unwrap_or(run.shown_status(NOW))
            );
            ids.push(run.id.clone());
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return ids,
        }
    }
}

async fn pages_walk_every_matching_run_once_newest_first(db: &TestDb) {
    let store = backends::open(db).await;
    let made = many_runs(&store).await;
    let flights = [None, Some("alpha"), Some("beta"), Some("gamma")];
    let statuses = [None, Some("queued"), Some("running"), Some("completed")]
        .into_iter()
        .chain([Some("failed"), Some("interrupted"), Some("canceled")]);
    for status in statuses {
        for flight in flights {
            let expected: Vec<String> = made
                .iter()
                .filter(|run| flight.is_none_or(|f| run.2 == f))
                .filter(|run| status.is_none_or(|s| run.3 == s))
                .map(|run| run.1.clone())
                .collect();
            let walked = walk(&store, flight, status).await;
            assert_eq!(walked, expected, "flight {flight:?}, status {status:?}");
        }
    }
    let everything = walk(&store, None, None).await;
    assert_eq!(everything.len(), 120);
    let one_page = RunQuery {
        limit: None,
        ..RunQuery::default()
    };
    let page = store.list_runs(&one_page, NOW).await.expect("default page");
    assert_eq!(page.runs.len(), 50, "the default limit");
    assert!(page.next.is_some());
}

async fn a_foreign_or_garbage_cursor_and_bad_limits_are_refused(db: &TestDb) {
    let store = backends::open(db).await;
    many_runs(&store).await;
    let alpha = RunQuery {
        flight: Some("alpha".into()),
        limit: Some(5),
        ..RunQuery::default()
    };
    let next = store.list_runs(&alpha, NOW).await.expect("page").next;
    let foreign = RunQuery {
        flight: Some("beta".into()),
        cursor: next.clone(),
        ..alpha.clone()
    };
    let error = store.list_runs(&foreign, NOW).await.unwrap_err();
    assert!(matches!(error, ListError::CursorFilter), "{error}");
    let other_status = RunQuery {
        status: Some("failed".into()),
        cursor: next,
        ..alpha.clone()
    };
    let error = store.list_runs(&other_status, NOW).await.unwrap_err();
    assert!(matches!(error, ListError::CursorFilter), "{error}");
    for garbage in ["nonsense", "7b7d", "", "00ff"] {
        let query = RunQuery {
            cursor: Some(garbage.into()),
            ..alpha.clone()
        };
        let error = store.list_runs(&query, NOW).await.unwrap_err();
        assert!(matches!(error, ListError::Cursor), "{garbage}: {error}");
    }
    for limit in [0, 1001] {
        let query = RunQuery {
            limit: Some(limit),
            ..RunQuery::default()
        };
        let error = store.list_runs(&query, NOW).await.unwrap_err();
        assert!(
            matches!(error, ListError::Limit(l) if l == limit),
            "{error}"
        );
    }
    let bogus = RunQuery {
        status: Some("sleeping".into()),
        ..RunQuery::default()
    };
    let error = store.list_runs(&bogus, NOW).await.unwrap_err().to_string();
    assert!(
        error.contains("interrupted") && error.contains("canceled"),
        "{error}"
    );
}
