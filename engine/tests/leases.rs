//! Run leases on every backend: one driver per run, take-over after expiry (by an injected
//! clock, never a sleep), and fencing: a driver whose lease was taken over commits nothing.
//! Also what builds on leases: the pool's cap across owners, and commits told to watchers.

mod backends;
mod support;

use std::sync::Arc;
use std::time::Duration;

use backends::TestDb;
use murmur_engine::clock::ManualClock;
use murmur_engine::executor::{Error, Executor, Leases};
use murmur_engine::lease::Owner;
use murmur_engine::store::{Acquired, Commit};
use murmur_engine::{Clock, Event, RunStatus, store};
use support::{drive_in_background, executor, start, until};

every_backend!(
    a_live_lease_refuses_a_second_driver,
    an_expired_lease_is_taken_over_and_the_old_driver_stops,
    a_commit_under_a_taken_over_lease_is_fenced,
    the_pool_cap_holds_across_processes,
    commits_are_told_to_the_runs_watchers,
    a_full_pool_goes_to_the_oldest_waiting_run,
    a_lease_no_drive_holds_is_let_go_at_the_next_renewal,
);

/// An agent that says it is waiting, then waits for a file to appear.
fn waiting_flight(go: &std::path::Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Wait\n\n## hold\n\n```sh\necho waiting\nwhile [ ! -e '{}' ]; do sleep 0.02; done\necho done\n```\n",
        go.display()
    )
}

fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc)
}

/// An executor on the same store as `base`, owned by `kind`, on `clock`, whose leases last
/// ten seconds and are renewed only by hand.
fn driver_named(base: &Executor, kind: &str, clock: &Arc<ManualClock>) -> Executor {
    let mut other = base.clone();
    other.clock = clock.clone();
    other.leases = Leases::with_renewal(
        Owner::this_process(kind),
        Duration::from_secs(10),
        Duration::from_secs(3600),
    );
    other
}

fn is_waiting(event: &Event) -> bool {
    matches!(event, Event::AgentOutput { line, .. } if line == "waiting")
}

async fn a_live_lease_refuses_a_second_driver(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let first = driver_named(&base, "murmur first", &clock);
    let second = driver_named(&base, "murmur second", &clock);
    let go = work.path().join("go");
    let id = start(&first, &waiting_flight(&go)).await;
    let (driving, mut events) = drive_in_background(&first, &id);
    until(&mut events, is_waiting).await;

    let (observer, _) = tokio::sync::mpsc::unbounded_channel();
    let refused = second.drive(&id, observer).await.expect_err("refused");
    let Error::Driven { holder, .. } = &refused else {
        panic!("expected Driven, got {refused:?}");
    };
    assert!(holder.starts_with("murmur first (pid "), "{holder}");
    assert!(
        refused.to_string().contains("is driven by murmur first"),
        "{refused}"
    );

    std::fs::write(&go, "").expect("go");
    assert_eq!(
        driving.await.expect("join").expect("drive"),
        RunStatus::Completed
    );
    let lease = base.store.lease(&id).await.expect("lease");
    assert_eq!(
        (lease.owner, lease.epoch),
        (None, 1),
        "released once the run ended"
    );
}

async fn an_expired_lease_is_taken_over_and_the_old_driver_stops(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let old = driver_named(&base, "murmur old", &clock);
    let new = driver_named(&base, "murmur new", &clock);
    let go = work.path().join("go");
    let id = start(&old, &waiting_flight(&go)).await;
    let (old_driving, mut old_events) = drive_in_background(&old, &id);
    until(&mut old_events, is_waiting).await;

    // The old driver stops renewing (as if paused); its lease runs out.
    clock.advance(chrono::Duration::seconds(11));
    let row = base.store.run(&id).await.expect("run");
    assert_eq!(row.shown_status(&clock.stamp()), "interrupted");
    let (new_driving, mut new_events) = drive_in_background(&new, &id);
    until(&mut new_events, is_waiting).await;
    assert_eq!(base.store.lease(&id).await.expect("lease").epoch, 2);

    // Back from its pause, the old driver learns it lost the run and stops its attempt.
    old.leases.renew_now(&old.store, old.clock.as_ref()).await;
    let ended = old_driving.await.expect("join");
    assert!(
        matches!(ended, Err(Error::LeaseLost(_)) | Ok(RunStatus::Running)),
        "the old driver stops driving: {ended:?}"
    );
    std::fs::write(&go, "").expect("go");
    assert_eq!(
        new_driving.await.expect("join").expect("drive"),
        RunStatus::Completed
    );
    let events = base.store.events(&id, 0).await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"agent_interrupted"), "{kinds:?}");
    let agents = base.store.agents(&id).await.expect("agents");
    assert_eq!(
        (agents[0].state.as_str(), agents[0].attempts),
        ("completed", 2)
    );
}

async fn a_commit_under_a_taken_over_lease_is_fenced(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let id = start(&base, &waiting_flight(&work.path().join("go"))).await;
    let (a, b) = (Owner::this_process("a"), Owner::this_process("b"));
    let store = &base.store;
    let take = |owner: &Owner, now: u32, until: u32| {
        let (owner, id) = (owner.clone(), id.clone());
        async move {
            store
                .acquire_lease(&id, &owner, &at(now), &at(until))
                .await
                .expect("acquire")
        }
    };
    assert!(matches!(
        take(&a, 0, 10).await,
        Acquired::Taken { epoch: 1, .. }
    ));
    assert!(matches!(take(&b, 5, 15).await, Acquired::Held(_)), "live");
    let Acquired::Taken { epoch: 2, previous } = take(&b, 11, 21).await else {
        panic!("expired: b takes over with epoch 2");
    };
    assert_eq!(previous.owner.as_deref(), Some(a.id.as_str()));

    let commit = |version, fence| Commit {
        run_id: &id,
        expected_version: version,
        at: "2026-06-01T12:00:12.000Z",
        events: &[Event::RunStarted],
        agents: &[],
        status: RunStatus::Running,
        finished_at: None,
        fence: Some(fence),
        machines: None,
    };
    let fenced = base.store.commit(&commit(0, 1)).await;
    assert!(
        matches!(fenced, Err(store::Error::Fenced { .. })),
        "{fenced:?}"
    );
    assert_eq!(
        base.store.commit(&commit(0, 2)).await.expect("b commits"),
        1
    );
    let stale = base.store.commit(&commit(0, 2)).await;
    assert!(
        matches!(stale, Err(store::Error::Conflict { .. })),
        "{stale:?}"
    );

    // A renewal tells each owner what it still holds.
    let held_by_a = base
        .store
        .renew_leases(&a.id, &at(30))
        .await
        .expect("renew");
    assert!(held_by_a.is_empty());
    let held_by_b = base
        .store
        .renew_leases(&b.id, &at(30))
        .await
        .expect("renew");
    assert_eq!(held_by_b.get(&id), Some(&2));
    base.store
        .release_lease(&id, &a.id, 1)
        .await
        .expect("no-op");
    assert_eq!(
        base.store.lease(&id).await.expect("lease").owner.as_deref(),
        Some(b.id.as_str())
    );
    base.store
        .release_lease(&id, &b.id, 2)
        .await
        .expect("release");
    let without = base.store.runs_without_driver(&at(31)).await.expect("scan");
    assert_eq!(without, std::slice::from_ref(&id));
    let row = base.store.run(&id).await.expect("run");
    assert_eq!(row.shown_status(&at(31)), "interrupted");
}

/// A moment on the test's timeline, `seconds` after noon.
fn at(seconds: u32) -> String {
    format!("2026-06-01T12:00:{seconds:02}.000Z")
}

/// Agents that note their start and end in a shared ledger, holding their machine a while.
fn ledger_flight(ledger: &std::path::Path) -> String {
    let note = |what: &str| format!("echo {what} >> '{}'", ledger.display());
    let agent = |slug: &str| {
        format!(
            "## {slug}\n\n```sh\n{}\nsleep 0.2\n{}\n```\n\n",
            note("start"),
            note("end")
        )
    };
    format!(
        "---\nruntime: exec\n---\n# Ledger\n\n{}{}",
        agent("one"),
        agent("two")
    )
}

/// The most lines `start` without their `end` at any point of the ledger.
fn peak_concurrency(ledger: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(ledger).expect("ledger");
    let (mut now, mut peak) = (0usize, 0usize);
    for line in text.lines() {
        if line == "start" {
            now += 1;
            peak = peak.max(now);
        } else {
            now = now.saturating_sub(1);
        }
    }
    peak
}

async fn the_pool_cap_holds_across_processes(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let ledger = work.path().join("ledger");
    let text = ledger_flight(&ledger);
    // Two "processes" (lease owners) on one store, each allowed the whole pool of 2.
    let drivers = [
        driver_named(&base, "murmur a", &clock),
        driver_named(&base, "murmur b", &clock),
    ];
    let mut runs = Vec::new();
    for round in 0..3 {
        let driver = &drivers[round % 2];
        let id = start(driver, &text).await;
        runs.push(drive_in_background(driver, &id).0);
    }
    for run in runs {
        assert_eq!(
            run.await.expect("join").expect("drive"),
            RunStatus::Completed
        );
    }
    let peak = peak_concurrency(&ledger);
    assert!(
        peak <= 2,
        "at most max_vms = 2 agents at once across owners, saw {peak}"
    );
    let now = clock.stamp();
    assert_eq!(
        base.store
            .machines_in_use("local", &now)
            .await
            .expect("count"),
        0
    );
}

async fn commits_are_told_to_the_runs_watchers(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let id = start(&base, &waiting_flight(&work.path().join("go"))).await;
    let other = murmur_engine::Store::open(&db.url)
        .await
        .expect("a second store");
    let mut here = base.store.watch_run(&id);
    let mut elsewhere = other.watch_run(&id);
    // The listener of the second store connects in the background: wait until it hears.
    let commit = |version: i64| Commit {
        run_id: &id,
        expected_version: version,
        at: "2026-06-01T12:00:00.000Z",
        events: &[Event::RunStarted],
        agents: &[],
        status: RunStatus::Running,
        finished_at: None,
        fence: None,
        machines: None,
    };
    base.store.commit(&commit(0)).await.expect("commit");
    tokio::time::timeout(Duration::from_secs(10), here.changed())
        .await
        .expect("told in this process")
        .expect("watch");
    assert_eq!(*here.borrow(), 1);
    if !other.tells_other_processes() {
        return; // SQLite: other processes' watchers look again by themselves.
    }
    let mut version = 1;
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Commits made before the listener was up are not told; keep committing.
            if base.store.commit(&commit(version)).await.is_ok() {
                version += 1;
            }
            if tokio::time::timeout(Duration::from_millis(200), elsewhere.changed())
                .await
                .is_ok()
            {
                return *elsewhere.borrow();
            }
        }
    })
    .await
    .expect("told through PostgreSQL's NOTIFY");
    assert!(
        told >= 1,
        "the other store never committed: {told} came through NOTIFY"
    );
}

async fn a_full_pool_goes_to_the_oldest_waiting_run(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut base = executor(db, work.path()).await;
    base.slots = 1;
    let clock = Arc::new(ManualClock::new(start_time()));
    let (x, y) = (
        driver_named(&base, "murmur x", &clock),
        driver_named(&base, "murmur y", &clock),
    );
    let ledger = work.path().join("ledger");
    let noting = |name: &str| {
        format!(
            "---\nruntime: exec\n---\n# {name}\n\n## note\n\n```sh\necho {name} >> '{}'\n```\n",
            ledger.display()
        )
    };
    let go = work.path().join("go");
    let holder = start(&x, &waiting_flight(&go)).await;
    let (holding, mut held) = drive_in_background(&x, &holder);
    until(&mut held, is_waiting).await;
    // Runs are ordered by creation: `older` before `younger`, driven by different owners.
    let older = start(&y, &noting("older")).await;
    clock.advance(chrono::Duration::milliseconds(1));
    let younger = start(&x, &noting("younger")).await;
    let (older_driving, _) = drive_in_background(&y, &older);
    let (younger_driving, _) = drive_in_background(&x, &younger);
    // Both join this process's line for the machine once the store has their waits.
    let mut line = base.store.watch_pool_line("local");
    let both = [older.clone(), younger.clone()];
    tokio::time::timeout(
        Duration::from_secs(30),
        line.wait_for(|runs| runs[..] == both[..]),
    )
    .await
    .expect("both wait for the one machine")
    .expect("the line is watched");
    let waiting = base.store.runs_waiting_for("local").await.expect("waiters");
    let runs: Vec<&str> = waiting.iter().map(|(run, _)| run.as_str()).collect();
    assert_eq!(
        runs,
        [older.as_str(), younger.as_str()],
        "the store has both waits, oldest first"
    );
    std::fs::write(&go, "").expect("go");
    for run in [holding, older_driving, younger_driving] {
        assert_eq!(
            run.await.expect("join").expect("drive"),
            RunStatus::Completed
        );
    }
    let order = std::fs::read_to_string(&ledger).expect("ledger");
    assert_eq!(
        order, "older\nyounger\n",
        "the older waiting run got the machine first"
    );
    assert!(
        base.store
            .runs_waiting_for("local")
            .await
            .expect("waiters")
            .is_empty()
    );
}

/// A drive that ended while the store could not take its lease back leaves the lease with
/// its process; renewing it with the process's other leases would keep the run from every
/// other server for as long as the process lives. The next renewal lets it go instead.
async fn a_lease_no_drive_holds_is_let_go_at_the_next_renewal(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let base = executor(db, work.path()).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let process = driver_named(&base, "murmur server", &clock);
    let owner = Some(process.leases.owner().id.clone());
    let go = work.path().join("go");
    let driven = start(&process, &waiting_flight(&go)).await;
    let (driving, mut events) = drive_in_background(&process, &driven);
    until(&mut events, is_waiting).await;
    let left = start(&process, &waiting_flight(&go)).await;
    let lease = process
        .leases
        .acquire(&process.store, &process.clock, &left)
        .await
        .expect("lease");
    // Its drive ended, and its release never reached the store.
    drop(lease);
    assert_eq!(base.store.lease(&left).await.expect("lease").owner, owner);

    process
        .leases
        .renew_now(&process.store, process.clock.as_ref())
        .await;
    assert_eq!(base.store.lease(&left).await.expect("lease").owner, None);
    assert_eq!(
        base.store.lease(&driven).await.expect("lease").owner,
        owner,
        "the driven run's lease is renewed, not let go"
    );
    let without = base
        .store
        .runs_without_driver(&clock.stamp())
        .await
        .expect("scan");
    assert_eq!(without, [left], "another server may take the run now");
    std::fs::write(&go, "").expect("go");
    assert_eq!(
        driving.await.expect("join").expect("drive"),
        RunStatus::Completed
    );
}
