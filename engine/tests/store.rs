//! One store suite, every backend.

mod backends;

use backends::TestDb;
use murmur_engine::store::{AgentUpdate, Commit, Error, NewGeneration, NewRun};
use murmur_engine::{AgentState, Event, RunStatus};

every_backend!(
    commits_append_events_and_update_state,
    a_checkpoint_of_any_size_fits_in_one_commit,
    concurrent_checkpoints_share_transactions_and_conflicts_stay_isolated,
    a_schedule_tick_is_taken_once,
    a_stale_version_is_a_conflict,
    runs_are_found_by_prefix_and_listed_newest_first,
    unfinished_runs_are_the_ones_to_resume,
    catalog_flights_keep_every_generation,
    a_deleted_catalog_flight_is_gone_but_its_numbers_are_not_reused,
    concurrent_saves_of_one_flight_get_distinct_generations,
    runs_and_agents_are_counted_by_status_and_state,
);

async fn create(store: &murmur_engine::Store, id: &str, created_at: &str) {
    store
        .create_run(&NewRun {
            id,
            flight: "demo",
            flight_path: Some("flights/demo.md"),
            source: "# Demo\n\n## a\n\nA.\n",
            digest: "d1",
            inputs: &serde_json::json!({"x": "1"}),
            created_at,
            agents: &["a".to_owned(), "b".to_owned()],
            event: None,
        })
        .await
        .expect("create run");
}

fn started(slug: &str) -> AgentUpdate {
    AgentUpdate {
        state: AgentState::Running,
        attempts: 1,
        started_at: Some("2026-01-01T00:00:01.000Z".to_owned()),
        session_id: Some("session-1".to_owned()),
        ..AgentUpdate::pending(slug, 0)
    }
}

async fn commits_append_events_and_update_state(db: &TestDb) {
    let store = backends::open(db).await;
    create(&store, "run-1", "2026-01-01T00:00:00.000Z").await;
    let events = [
        Event::RunStarted,
        Event::AgentQueued { slug: "a".into() },
        Event::AgentStarted {
            slug: "a".into(),
            attempt: 1,
        },
    ];
    let version = store
        .commit(&Commit {
            run_id: "run-1",
            expected_version: 0,
            at: "2026-01-01T00:00:01.000Z",
            events: &events,
            agents: &[started("a")],
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("commit");
    assert_eq!(version, 3);
    let stored = store.events("run-1", 0).await.expect("events");
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(stored[2].kind, "agent_started");
    assert_eq!(
        serde_json::from_str::<Event>(&stored[2].data).expect("decodes"),
        events[2]
    );
    assert_eq!(store.events("run-1", 2).await.expect("events").len(), 1);
    let agents = store.agents("run-1").await.expect("agents");
    assert_eq!(
        (
            agents[0].slug.as_str(),
            agents[0].state.as_str(),
            agents[0].attempts
        ),
        ("a", "running", 1)
    );
    assert_eq!(agents[1].state, "pending");
    assert_eq!(agents[0].session_id.as_deref(), Some("session-1"));
    assert_eq!(agents[0].prs, "[]");
    let run = store.run("run-1").await.expect("run");
    assert_eq!(
        (run.status.as_str(), run.version, run.inputs.as_str()),
        ("running", 3, r#"{"x":"1"}"#)
    );
}

async fn a_stale_version_is_a_conflict(db: &TestDb) {
    let store = backends::open(db).await;
    create(&store, "run-2", "2026-01-01T00:00:00.000Z").await;
    let commit = |expected| Commit {
        run_id: "run-2",
        expected_version: expected,
        at: "2026-01-01T00:00:01.000Z",
        events: &[Event::RunStarted],
        agents: &[],
        status: RunStatus::Running,
        finished_at: None,
        fence: None,
        machines: None,
    };
    store.commit(&commit(0)).await.expect("first commit");
    let error = store
        .commit(&commit(0))
        .await
        .expect_err("second commit at the same version");
    assert!(
        matches!(error, Error::Conflict { expected: 0, .. }),
        "{error}"
    );
    assert_eq!(
        store.events("run-2", 0).await.expect("events").len(),
        1,
        "the conflicting commit wrote nothing"
    );
}

async fn runs_are_found_by_prefix_and_listed_newest_first(db: &TestDb) {
    let store = backends::open(db).await;
    create(&store, "abc111", "2026-01-01T00:00:00.000Z").await;
    create(&store, "abc222", "2026-01-02T00:00:00.000Z").await;
    assert_eq!(store.run("abc1").await.expect("prefix").id, "abc111");
    assert!(matches!(
        store.run("abc").await,
        Err(Error::AmbiguousRun(_))
    ));
    assert!(matches!(store.run("zzz").await, Err(Error::NoRun(_))));
    assert!(matches!(
        store.run("%").await,
        Err(Error::AmbiguousRun(_)) | Err(Error::NoRun(_))
    ));
    let ids: Vec<String> = store
        .runs(10)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["abc222", "abc111"]);
}

async fn unfinished_runs_are_the_ones_to_resume(db: &TestDb) {
    let store = backends::open(db).await;
    create(&store, "open", "2026-01-01T00:00:00.000Z").await;
    create(&store, "done", "2026-01-01T00:00:01.000Z").await;
    store
        .commit(&Commit {
            run_id: "done",
            expected_version: 0,
            at: "2026-01-01T00:00:02.000Z",
            events: &[Event::RunCanceled { by: None }],
            agents: &[],
            status: RunStatus::Canceled,
            finished_at: Some("2026-01-01T00:00:02.000Z"),
            fence: None,
            machines: None,
        })
        .await
        .expect("commit");
    let open: Vec<String> = store
        .unfinished_runs()
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, ["open"]);
}

async fn a_checkpoint_of_any_size_fits_in_one_commit(db: &TestDb) {
    let store = backends::open(db).await;
    let slugs: Vec<String> = (0..12_000).map(|i| format!("a{i}")).collect();
    store
        .create_run(&NewRun {
            id: "big",
            flight: "big",
            flight_path: None,
            source: "",
            digest: "d",
            inputs: &serde_json::json!({}),
            created_at: "2026-01-01T00:00:00.000Z",
            agents: &slugs,
            event: None,
        })
        .await
        .expect("create a run of 12,000 agents");
    let events: Vec<Event> = slugs
        .iter()
        .map(|slug| Event::AgentQueued { slug: slug.clone() })
        .collect();
    let updates: Vec<AgentUpdate> = slugs
        .iter()
        .enumerate()
        .map(|(position, slug)| AgentUpdate {
            state: AgentState::Queued,
            ..AgentUpdate::pending(slug, position)
        })
        .collect();
    let version = store
        .commit(&Commit {
            run_id: "big",
            expected_version: 0,
            at: "2026-01-01T00:00:01.000Z",
            events: &events,
            agents: &updates,
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("one commit of 12,000 events");
    assert_eq!(version, 12_000);
    let agents = store.agents("big").await.expect("agents");
    assert_eq!(agents.len(), 12_000);
    assert!(agents.iter().all(|a| a.state == "queued"));
    assert_eq!(agents[11_999].slug, "a11999");
    assert_eq!(
        store.events("big", 11_998).await.expect("events")[1].seq,
        12_000
    );
}

async fn concurrent_checkpoints_share_transactions_and_conflicts_stay_isolated(db: &TestDb) {
    let store = backends::open(db).await;
    let ids: Vec<String> = (0..40).map(|i| format!("run-{i:02}")).collect();
    for id in &ids {
        create(&store, id, "2026-01-01T00:00:00.000Z").await;
    }
    store
        .commit(&Commit {
            run_id: "run-00",
            expected_version: 0,
            at: "2026-01-01T00:00:01.000Z",
            events: &[Event::RunStarted],
            agents: &[],
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("run-00 moves to version 1");
    let before = store.write_stats();
    let commits = ids.iter().map(|id| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let events = [Event::RunStarted];
            let commit = Commit {
                run_id: &id,
                expected_version: 0,
                at: "2026-01-01T00:00:02.000Z",
                events: &events,
                agents: &[started("a")],
                status: RunStatus::Running,
                finished_at: None,
                fence: None,
                machines: None,
            };
            store.commit(&commit).await
        })
    });
    let mut results = Vec::new();
    // The conflicting checkpoint is counted as a written one: it shared a transaction.
    for task in commits.collect::<Vec<_>>() {
        results.push(task.await.expect("task"));
    }
    assert!(
        matches!(results[0], Err(Error::Conflict { .. })),
        "run-00 was already at version 1"
    );
    assert!(
        results[1..].iter().all(|r| matches!(r, Ok(1))),
        "{results:?}"
    );
    for id in &ids[1..] {
        assert_eq!(store.agents(id).await.expect("agents")[0].state, "running");
    }
    assert_eq!(
        store.events("run-00", 0).await.expect("events").len(),
        1,
        "the conflict wrote nothing"
    );
    let after = store.write_stats();
    assert_eq!(
        after.checkpoints - before.checkpoints,
        40,
        "conflicts are not counted as written"
    );
}

async fn a_schedule_tick_is_taken_once(db: &TestDb) {
    let store = backends::open(db).await;
    let tick = "2026-03-02T01:00:00.000Z";
    assert_eq!(store.last_tick("nightly#0").await.expect("read"), None);
    assert!(
        store
            .claim_tick("nightly#0", tick, "2026-03-02T01:00:05.000Z")
            .await
            .expect("claim")
    );
    assert!(
        !store
            .claim_tick("nightly#0", tick, "2026-03-02T01:00:06.000Z")
            .await
            .expect("claim again"),
        "a second claim fails"
    );
    assert!(
        store
            .claim_tick("nightly#1", tick, "2026-03-02T01:00:06.000Z")
            .await
            .expect("another schedule")
    );
    store
        .claim_tick(
            "nightly#0",
            "2026-03-03T01:00:00.000Z",
            "2026-03-03T01:00:01.000Z",
        )
        .await
        .expect("next day");
    assert_eq!(
        store.last_tick("nightly#0").await.expect("read").as_deref(),
        Some("2026-03-03T01:00:00.000Z")
    );
}

async fn save(
    store: &murmur_engine::Store,
    name: &str,
    markdown: &str,
) -> murmur_engine::store::Saved {
    store
        .save_flight(&NewGeneration {
            name,
            markdown,
            digest: &format!("digest of {markdown}"),
            author: "tests",
            created_at: "2026-01-01T00:00:00.000Z",
        })
        .await
        .expect("save")
}

async fn catalog_flights_keep_every_generation(db: &TestDb) {
    let store = backends::open(db).await;
    let first = save(&store, "hello", "# Hello v1\n").await;
    assert_eq!((first.flight.generation, first.replaced), (1, false));
    let second = save(&store, "hello", "# Hello v2\n").await;
    assert_eq!((second.flight.generation, second.replaced), (2, true));
    save(&store, "other", "# Other\n").await;
    let latest = store.catalog_flight("hello", None).await.expect("get");
    assert_eq!(
        latest.as_ref().map(|f| f.markdown.as_str()),
        Some("# Hello v2\n")
    );
    assert_eq!(latest.map(|f| f.author), Some("tests".to_owned()));
    let old = store.catalog_flight("hello", Some(1)).await.expect("get");
    assert_eq!(old.map(|f| f.markdown), Some("# Hello v1\n".to_owned()));
    assert_eq!(
        store.catalog_flight("hello", Some(3)).await.expect("get"),
        None
    );
    assert_eq!(store.catalog_flight("nope", None).await.expect("get"), None);
    let listed: Vec<(String, i64)> = store
        .catalog_flights()
        .await
        .expect("list")
        .into_iter()
        .map(|f| (f.name, f.generation))
        .collect();
    assert_eq!(listed, [("hello".to_owned(), 2), ("other".to_owned(), 1)]);
}

async fn a_deleted_catalog_flight_is_gone_but_its_numbers_are_not_reused(db: &TestDb) {
    let store = backends::open(db).await;
    save(&store, "hello", "# One\n").await;
    save(&store, "hello", "# Two\n").await;
    let at = "2026-01-02T00:00:00.000Z";
    assert!(store.delete_flight("hello", at).await.expect("delete"));
    assert!(
        !store.delete_flight("hello", at).await.expect("delete"),
        "already gone"
    );
    assert!(!store.delete_flight("never", at).await.expect("delete"));
    assert_eq!(
        store.catalog_flight("hello", None).await.expect("get"),
        None
    );
    assert_eq!(
        store.catalog_flight("hello", Some(1)).await.expect("get"),
        None
    );
    assert!(store.catalog_flights().await.expect("list").is_empty());
    let again = save(&store, "hello", "# Three\n").await;
    assert_eq!((again.flight.generation, again.replaced), (3, false));
    let listed = store.catalog_flights().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].generation, 3);
}

async fn concurrent_saves_of_one_flight_get_distinct_generations(db: &TestDb) {
    let store = backends::open(db).await;
    let saves: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                save(&store, "busy", &format!("# Busy {i}\n"))
                    .await
                    .flight
                    .generation
            })
        })
        .collect();
    let mut generations = Vec::new();
    for save in saves {
        generations.push(save.await.expect("joined"));
    }
    generations.sort_unstable();
    assert_eq!(generations, (1..=8).collect::<Vec<i64>>());
}

async fn runs_and_agents_are_counted_by_status_and_state(db: &TestDb) {
    let store = backends::open(db).await;
    assert!(store.run_counts().await.expect("counts").is_empty());
    create(&store, "run-1", "2026-01-01T00:00:00.000Z").await;
    create(&store, "run-2", "2026-01-01T00:00:01.000Z").await;
    store
        .commit(&Commit {
            run_id: "run-1",
            expected_version: 0,
            at: "2026-01-01T00:00:02.000Z",
            events: &[Event::RunStarted],
            agents: &[started("a")],
            status: RunStatus::Running,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("commit");
    let mut runs = store.run_counts().await.expect("counts");
    runs.sort();
    assert_eq!(runs, [("queued".to_owned(), 1), ("running".to_owned(), 1)]);
    let mut agents = store.agent_counts().await.expect("counts");
    agents.sort();
    assert_eq!(
        agents,
        [("pending".to_owned(), 3), ("running".to_owned(), 1)]
    );
    let latency = store.checkpoint_latency();
    assert_eq!(latency.count, 1, "the commit was timed");
}
