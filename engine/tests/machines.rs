//! Machines in the store, on every backend: their life through the transition table, the
//! compare-and-set on their version, claims that two claimers never share, heartbeat leases
//! and lost machines, credentials, counts per pool, queued agents per pool, and a flush.

mod backends;

use backends::TestDb;
use murmur_engine::machine::{
    AgentRef, MachineEvent, MachineState, PoolSpec, Release, flush_pool, pool_status,
};
use murmur_engine::store::machine_log::Error;
use murmur_engine::store::{AgentUpdate, Commit, MachineFilter, NewMachine, NewRun};
use murmur_engine::{AgentState, Event, RunStatus, Store};

every_backend!(
    a_machine_lives_through_its_states_and_logs_each_event,
    an_illegal_event_is_refused_and_changes_nothing,
    a_stale_version_is_a_conflict,
    concurrent_claimers_never_share_a_machine,
    a_silent_machine_is_lost_and_may_return,
    a_credential_finds_its_machine_until_it_is_terminated,
    machines_are_listed_and_counted_per_pool,
    pool_status_counts_queued_agents_by_their_pool,
    a_flush_ends_idle_and_sleeping_machines_only,
);

const T0: &str = "2026-06-01T12:00:00.000Z";
const T1: &str = "2026-06-01T12:00:10.000Z";
const T2: &str = "2026-06-01T12:00:20.000Z";

fn new_machine<'a>(id: &'a str, pool: &'a str) -> NewMachine<'a> {
    NewMachine {
        id,
        pool,
        placement: "workers",
        public_key: None,
        credential: None,
        lease_expires_at: None,
        at: T0,
    }
}

fn agent(run: &str, slug: &str) -> AgentRef {
    AgentRef {
        run_id: run.to_owned(),
        slug: slug.to_owned(),
    }
}

/// A machine of `pool` that is up and idle.
async fn idle(store: &Store, id: &str, pool: &str) {
    store
        .create_machine(&new_machine(id, pool))
        .await
        .expect("create");
    let provisioned = MachineEvent::Provisioned {
        provider_id: format!("host-{id}"),
    };
    store
        .apply_machine_event(id, 0, &provisioned, T0)
        .await
        .expect("provisioned");
}

/// Applies `event` at the machine's current version.
async fn apply(store: &Store, id: &str, event: MachineEvent) -> MachineState {
    let version = store.machine(id).await.expect("machine").version;
    store
        .apply_machine_event(id, version, &event, T1)
        .await
        .unwrap_or_else(|error| panic!("{event:?}: {error}"))
        .state
}

async fn a_machine_lives_through_its_states_and_logs_each_event(db: &TestDb) {
    let store = backends::open(db).await;
    let created = store
        .create_machine(&new_machine("m1", "gpu"))
        .await
        .expect("create");
    assert_eq!(created.state, MachineState::Provisioning);
    assert_eq!((created.version, created.provider_id), (0, None));
    let released = |how| MachineEvent::Released { how };
    let claimed = MachineEvent::Claimed {
        run_id: "r1".to_owned(),
        slug: "build".to_owned(),
        attempt: 2,
    };
    let walk = [
        (
            MachineEvent::Provisioned {
                provider_id: "i-123".to_owned(),
            },
            MachineState::Idle,
        ),
        (claimed.clone(), MachineState::Busy),
        (released(Release::Sleep), MachineState::Sleeping),
        (MachineEvent::WakeStarted, MachineState::Waking),
        (MachineEvent::Woke, MachineState::Busy),
        (released(Release::Keep), MachineState::Idle),
        (MachineEvent::Drain, MachineState::Draining),
        (MachineEvent::Terminated, MachineState::Terminated),
    ];
    for (event, state) in &walk {
        assert_eq!(
            apply(&store, "m1", event.clone()).await,
            *state,
            "{event:?}"
        );
        let row = store.machine("m1").await.expect("machine");
        let holds = matches!(
            state,
            MachineState::Busy | MachineState::Sleeping | MachineState::Waking
        );
        assert_eq!(
            row.agent.is_some(),
            holds,
            "agent after {event:?}: {:?}",
            row.agent
        );
        if holds {
            assert_eq!(row.agent.expect("agent").to_string(), "r1/build");
        }
    }
    let row = store.machine("m1").await.expect("machine");
    assert_eq!(row.provider_id.as_deref(), Some("i-123"));
    assert_eq!(row.version, walk.len() as i64);
    let log = store.machine_events("m1").await.expect("events");
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=walk.len() as i64).collect::<Vec<_>>());
    let events: Vec<MachineEvent> = log.into_iter().map(|e| e.event).collect();
    let expected: Vec<MachineEvent> = walk.into_iter().map(|(event, _)| event).collect();
    assert_eq!(events, expected);
}

async fn an_illegal_event_is_refused_and_changes_nothing(db: &TestDb) {
    let store = backends::open(db).await;
    idle(&store, "m1", "gpu").await;
    let error = store
        .apply_machine_event("m1", 1, &MachineEvent::Woke, T1)
        .await
        .expect_err("an idle machine cannot wake");
    let Error::Refused { machine, refused } = &error else {
        panic!("expected Refused, got {error:?}");
    };
    assert_eq!(
        (machine.as_str(), refused.state, refused.event),
        ("m1", MachineState::Idle, "woke")
    );
    assert!(
        error.to_string().contains("idle") && error.to_string().contains("woke"),
        "{error}"
    );
    let row = store.machine("m1").await.expect("machine");
    assert_eq!((row.state, row.version), (MachineState::Idle, 1));
    assert_eq!(store.machine_events("m1").await.expect("events").len(), 1);
    let missing = store.machine("nope").await.expect_err("no such machine");
    assert!(matches!(missing, Error::NoMachine(_)), "{missing:?}");
    let twice = store
        .create_machine(&new_machine("m1", "gpu"))
        .await
        .expect_err("the id is taken");
    assert!(matches!(twice, Error::Exists(_)), "{twice:?}");
}

async fn a_stale_version_is_a_conflict(db: &TestDb) {
    let store = backends::open(db).await;
    idle(&store, "m1", "gpu").await;
    let error = store
        .apply_machine_event("m1", 0, &MachineEvent::Drain, T1)
        .await
        .expect_err("version 0 is gone");
    assert!(
        matches!(error, Error::Conflict { expected: 0, .. }),
        "{error:?}"
    );
    assert_eq!(
        store.machine("m1").await.expect("row").state,
        MachineState::Idle
    );
}

async fn concurrent_claimers_never_share_a_machine(db: &TestDb) {
    let store = backends::open(db).await;
    // A second store on the same database stands for another process.
    let other = backends::open(db).await;
    for i in 0..5 {
        idle(&store, &format!("m{i}"), "gpu").await;
    }
    idle(&store, "elsewhere", "cpu").await;
    let mut claimers = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        claimers.spawn(async move {
            let who = agent("r1", &format!("a{i}"));
            let claimed = store
                .claim_idle_machine("gpu", &who, 1, T1)
                .await
                .expect("claim");
            claimed.map(|machine| (machine.id, who))
        });
    }
    let mut won = Vec::new();
    while let Some(result) = claimers.join_next().await {
        if let Some(claim) = result.expect("claimer") {
            won.push(claim);
        }
    }
    assert_eq!(won.len(), 5, "one claim per idle machine: {won:?}");
    let mut ids: Vec<&str> = won.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no machine claimed twice: {won:?}");
    for (id, who) in &won {
        let row = store.machine(id).await.expect("row");
        assert_eq!(
            (row.state, row.agent.as_ref()),
            (MachineState::Busy, Some(who))
        );
        assert_eq!(
            store.machine_events(id).await.expect("log").len(),
            2,
            "{id}"
        );
    }
    let more = store
        .claim_idle_machine("gpu", &agent("r2", "late"), 1, T1)
        .await;
    assert_eq!(more.expect("claim"), None, "the pool is used up");
    let cpu = store.machine("elsewhere").await.expect("row");
    assert_eq!(
        cpu.state,
        MachineState::Idle,
        "another pool's machine is not taken"
    );
}

async fn a_silent_machine_is_lost_and_may_return(db: &TestDb) {
    let store = backends::open(db).await;
    for id in ["silent", "alive", "asleep"] {
        store
            .create_machine(&NewMachine {
                lease_expires_at: Some(T1),
                ..new_machine(id, "workers")
            })
            .await
            .expect("create");
        let up = MachineEvent::Provisioned {
            provider_id: id.to_owned(),
        };
        store.apply_machine_event(id, 0, &up, T0).await.expect("up");
    }
    for id in ["silent", "asleep"] {
        let claim = MachineEvent::Claimed {
            run_id: "r1".to_owned(),
            slug: id.to_owned(),
            attempt: 1,
        };
        assert_eq!(apply(&store, id, claim).await, MachineState::Busy, "{id}");
    }
    apply(
        &store,
        "asleep",
        MachineEvent::Released {
            how: Release::Sleep,
        },
    )
    .await;
    let renewed = store
        .renew_machine_lease("alive", T1, "2026-06-01T12:01:00.000Z")
        .await
        .expect("heartbeat");
    assert_eq!(renewed.last_seen_at.as_deref(), Some(T1));

    assert!(
        store
            .expire_machine_leases(T0)
            .await
            .expect("expire")
            .is_empty(),
        "nothing is late yet"
    );
    let lost = store.expire_machine_leases(T2).await.expect("expire");
    let ids: Vec<&str> = lost.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["silent"],
        "a sleeping machine does not heartbeat, a renewed one is on time"
    );
    assert_eq!(lost[0].state, MachineState::Lost);
    assert_eq!(
        lost[0].agent.as_ref(),
        Some(&agent("r1", "silent")),
        "so its attempt can be interrupted"
    );
    let log = store.machine_events("silent").await.expect("log");
    let Some(MachineEvent::Lost { reason }) = log.last().map(|e| &e.event) else {
        panic!("lost is logged: {log:?}");
    };
    assert!(reason.contains(T1), "{reason}");
    assert!(
        store
            .expire_machine_leases(T2)
            .await
            .expect("expire")
            .is_empty(),
        "lost once"
    );

    // It answers again: the heartbeat tells it that it was lost; it comes back free.
    let back = store
        .renew_machine_lease("silent", T2, "2026-06-01T12:02:00.000Z")
        .await
        .expect("heartbeat");
    assert_eq!(back.state, MachineState::Lost);
    let returned = store
        .apply_machine_event("silent", back.version, &MachineEvent::Returned, T2)
        .await
        .expect("returned");
    assert_eq!((returned.state, returned.agent), (MachineState::Idle, None));
}

async fn a_credential_finds_its_machine_until_it_is_terminated(db: &TestDb) {
    let store = backends::open(db).await;
    store
        .create_machine(&NewMachine {
            public_key: Some("age1publickey"),
            credential: Some("mach_secret_1"),
            ..new_machine("w1", "workers")
        })
        .await
        .expect("create");
    let found = store
        .machine_by_credential("mach_secret_1")
        .await
        .expect("lookup");
    let found = found.expect("the credential is the machine's");
    assert_eq!(
        (found.id.as_str(), found.public_key.as_deref()),
        ("w1", Some("age1publickey"))
    );
    assert_eq!(
        store
            .machine_by_credential("mach_secret_2")
            .await
            .expect("lookup"),
        None
    );
    apply(&store, "w1", MachineEvent::Terminated).await;
    assert_eq!(
        store
            .machine_by_credential("mach_secret_1")
            .await
            .expect("lookup"),
        None,
        "terminating revokes the credential"
    );
    let refused = store
        .renew_machine_lease("w1", T2, T2)
        .await
        .expect_err("a terminated machine has no lease");
    assert!(matches!(refused, Error::Terminated(_)), "{refused:?}");
}

async fn machines_are_listed_and_counted_per_pool(db: &TestDb) {
    let store = backends::open(db).await;
    idle(&store, "a1", "a").await;
    idle(&store, "a2", "a").await;
    idle(&store, "b1", "b").await;
    store
        .create_machine(&new_machine("b2", "b"))
        .await
        .expect("create");
    store
        .claim_idle_machine("a", &agent("r", "x"), 1, T1)
        .await
        .expect("claim")
        .expect("a machine");
    let all = store
        .machines(&MachineFilter::default())
        .await
        .expect("list");
    let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["a1", "a2", "b1", "b2"]);
    let of_b = store
        .machines(&MachineFilter {
            pool: Some("b"),
            state: None,
        })
        .await
        .expect("list");
    assert_eq!(
        of_b.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["b1", "b2"]
    );
    let idle_a = store
        .machines(&MachineFilter {
            pool: Some("a"),
            state: Some(MachineState::Idle),
        })
        .await
        .expect("list");
    assert_eq!(
        idle_a.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["a2"]
    );
    let mut counts = store.machine_counts().await.expect("counts");
    counts.sort();
    assert_eq!(
        counts,
        [
            ("a".to_owned(), MachineState::Idle, 1),
            ("a".to_owned(), MachineState::Busy, 1),
            ("b".to_owned(), MachineState::Provisioning, 1),
            ("b".to_owned(), MachineState::Idle, 1),
        ]
    );
}

const POOLED: &str = "---\nruntime: exec\npool: gpu\n---\n# Pooled\n\n## a\n> command: true\n\n## b\n> command: true\n> pool: local\n\n## c\n> command: true\n";

/// A run of [`POOLED`] in `status` whose agents are in `states`.
async fn pooled_run(store: &Store, id: &str, status: RunStatus, states: [AgentState; 3]) {
    let slugs = ["a", "b", "c"].map(str::to_owned);
    store
        .create_run(&NewRun {
            id,
            flight: "pooled",
            flight_path: None,
            source: POOLED,
            digest: "d",
            inputs: &serde_json::json!({}),
            created_at: T0,
            agents: &slugs,
            event: None,
        })
        .await
        .expect("create run");
    let agents: Vec<AgentUpdate> = slugs
        .iter()
        .zip(states)
        .enumerate()
        .map(|(position, (slug, state))| AgentUpdate {
            state,
            ..AgentUpdate::pending(slug, position)
        })
        .collect();
    store
        .commit(&Commit {
            run_id: id,
            expected_version: 0,
            at: T1,
            events: &[Event::RunStarted],
            agents: &agents,
            status,
            finished_at: None,
            fence: None,
            machines: None,
        })
        .await
        .expect("commit");
}

async fn pool_status_counts_queued_agents_by_their_pool(db: &TestDb) {
    use AgentState::{Canceled, Queued, Running};
    let store = backends::open(db).await;
    pooled_run(&store, "r1", RunStatus::Running, [Queued, Queued, Queued]).await;
    pooled_run(&store, "r2", RunStatus::Running, [Running, Queued, Queued]).await;
    pooled_run(
        &store,
        "r3",
        RunStatus::Canceled,
        [Queued, Queued, Canceled],
    )
    .await;
    idle(&store, "g1", "gpu").await;
    idle(&store, "g2", "gpu").await;
    apply(&store, "g2", MachineEvent::Drain).await;
    apply(&store, "g2", MachineEvent::Terminated).await;
    let specs = [
        PoolSpec::local(4),
        PoolSpec {
            name: "gpu".to_owned(),
            placement: "workers".to_owned(),
            max_vms: 2,
            min_idle: 1,
        },
    ];
    let status = pool_status(&store, &specs).await.expect("status");
    let json = serde_json::to_value(&status).expect("json");
    assert_eq!(
        json,
        serde_json::json!([
            {"pool": "local", "placement": "local", "max_vms": 4, "min_idle": 0,
             "machines": {"provisioning": 0, "idle": 0, "busy": 0, "sleeping": 0, "waking": 0,
                          "draining": 0, "lost": 0},
             "queued_agents": 2},
            {"pool": "gpu", "placement": "workers", "max_vms": 2, "min_idle": 1,
             "machines": {"provisioning": 0, "idle": 1, "busy": 0, "sleeping": 0, "waking": 0,
                          "draining": 0, "lost": 0},
             "queued_agents": 3},
        ])
    );
}

async fn a_flush_ends_idle_and_sleeping_machines_only(db: &TestDb) {
    let store = backends::open(db).await;
    for id in ["idle", "busy", "asleep"] {
        idle(&store, id, "gpu").await;
    }
    idle(&store, "other", "cpu").await;
    for id in ["busy", "asleep"] {
        let row = store.machine(id).await.expect("row");
        let claim = MachineEvent::Claimed {
            run_id: "r".to_owned(),
            slug: id.to_owned(),
            attempt: 1,
        };
        store
            .apply_machine_event(id, row.version, &claim, T1)
            .await
            .expect("claim");
    }
    apply(
        &store,
        "asleep",
        MachineEvent::Released {
            how: Release::Sleep,
        },
    )
    .await;
    let flushed = flush_pool(&store, Some("gpu"), T2).await.expect("flush");
    let mut ids: Vec<(&str, MachineState)> = flushed
        .iter()
        .map(|f| (f.machine.id.as_str(), f.was))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            ("asleep", MachineState::Sleeping),
            ("idle", MachineState::Idle)
        ]
    );
    for id in ["asleep", "idle"] {
        let kinds: Vec<&str> = store
            .machine_events(id)
            .await
            .expect("log")
            .iter()
            .map(|e| e.event.kind())
            .collect();
        assert_eq!(
            kinds.last_chunk::<2>(),
            Some(&["drain", "terminated"]),
            "{id}: {kinds:?}"
        );
        assert_eq!(
            store.machine(id).await.expect("row").state,
            MachineState::Terminated
        );
    }
    assert_eq!(
        store.machine("busy").await.expect("row").state,
        MachineState::Busy
    );
    assert_eq!(
        store.machine("other").await.expect("row").state,
        MachineState::Idle
    );
    assert!(
        flush_pool(&store, Some("gpu"), T2)
            .await
            .expect("flush")
            .is_empty(),
        "nothing left"
    );
}
