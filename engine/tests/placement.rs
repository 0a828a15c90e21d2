//! The placement seam: attempts go to the placement of their pool, the machine is recorded, and
//! an attempt whose machine stops reporting is retried.

mod backends;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backends::TestDb;
use murmur_engine::AgentState;
use murmur_engine::executor::{AttemptHandle, LocalPlacement, Placement, PlacementError};
use murmur_engine::{Event, RunStatus};
use murmur_protocol::{AttemptSpec, AttemptUpdate};
use support::holding::{holding_agent, is_waiting, peak_concurrency};
use support::{drive, drive_in_background, executor, start, until};
use tokio::sync::{Notify, mpsc};

every_backend!(
    a_local_attempt_records_its_machine,
    a_pool_with_a_registered_placement_runs_there,
    an_attempt_whose_machine_goes_silent_is_retried,
    an_agent_is_starting_until_its_machine_and_workspace_are_ready,
    a_retry_is_meant_for_the_machine_that_ran_the_agent,
    each_pool_of_a_run_holds_its_own_max_vms,
);

const TWO_POOLS: &str = "---\nruntime: exec\n---\n# Pools\n\n## here\n\n```sh\necho here\n```\n\n## there\n> pool: fleet\n\n```sh\necho there\n```\n";

/// A pool of one named machine that runs attempts with the real runner; the first
/// `silent_first` attempts it is given it drops without a word, as a dead machine would.
struct NamedMachine {
    name: String,
    inner: LocalPlacement,
    started: AtomicUsize,
    silent_first: usize,
}

impl Placement for NamedMachine {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let nth = self.started.fetch_add(1, Ordering::SeqCst);
        if nth < self.silent_first {
            drop(updates);
            return Ok(AttemptHandle::new(Some(self.name.clone()), || {}));
        }
        let _ = updates.send(AttemptUpdate::Placed {
            machine: self.name.clone(),
            instead_of: None,
        });
        let inner = self.inner.start(spec, updates)?;
        Ok(AttemptHandle::new(None, move || inner.stop()))
    }
}

fn named(
    executor: &murmur_engine::executor::Executor,
    name: &str,
    silent_first: usize,
) -> Arc<NamedMachine> {
    Arc::new(NamedMachine {
        name: name.to_owned(),
        inner: LocalPlacement::new(murmur_attempt::Machine {
            work_root: executor.work_root.join(name),
            settings: executor.machine_settings(),
            clones: false,
        }),
        started: AtomicUsize::new(0),
        silent_first,
    })
}

async fn a_local_attempt_records_its_machine(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(
        &executor,
        "---\nruntime: exec\n---\n# One\n\n## only\n\n```sh\necho hi\n```\n",
    )
    .await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    let placed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::AgentPlaced { machine, .. } => Some(machine.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(placed.len(), 1, "{events:?}");
    assert!(placed[0].starts_with("local:"), "{placed:?}");
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].machine.as_deref(), Some(placed[0]));
}

async fn a_pool_with_a_registered_placement_runs_there(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let fleet = named(&executor, "fleet-1", 0);
    executor.placements.register("fleet", fleet.clone());
    let id = start(&executor, TWO_POOLS).await;
    let (status, _) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(
        fleet.started.load(Ordering::SeqCst),
        1,
        "only `there` runs on the fleet"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    let machine = |slug: &str| {
        agents
            .iter()
            .find(|a| a.slug == slug)
            .and_then(|a| a.machine.clone())
    };
    assert_eq!(machine("there").as_deref(), Some("fleet-1"));
    assert!(machine("here").is_some_and(|m| m.starts_with("local:")));
    // The attempt ran below the fleet machine's own work root.
    assert!(work.path().join("fleet-1").join(&id).exists());
}

async fn an_attempt_whose_machine_goes_silent_is_retried(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let fleet = named(&executor, "fleet-1", 1);
    executor.placements.register("fleet", fleet.clone());
    let text = "---\nruntime: exec\nretries: 1\n---\n# Lost\n\n## there\n> pool: fleet\n\n```sh\necho there\n```\n";
    let id = start(&executor, text).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed, "{events:?}");
    let retried = events.iter().any(|e| {
        matches!(e,
        Event::AgentRetrying { error, .. } if error.contains("stopped reporting"))
    });
    assert!(retried, "the lost attempt is retried: {events:?}");
    assert_eq!(fleet.started.load(Ordering::SeqCst), 2);
}

/// A machine that takes its time to get ready: the attempt is placed at once and starts only
/// once `ready` is notified.
struct SlowMachine {
    inner: Arc<LocalPlacement>,
    ready: Arc<Notify>,
}

impl Placement for SlowMachine {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        let _ = updates.send(AttemptUpdate::Placed {
            machine: "slow-1".to_owned(),
            instead_of: None,
        });
        let (inner, ready) = (self.inner.clone(), self.ready.clone());
        let task = tokio::spawn(async move {
            ready.notified().await;
            let handle = inner.start(spec, updates);
            // Held until the attempt ends: dropping the handle would stop it.
            std::future::pending::<()>().await;
            drop(handle);
        });
        Ok(AttemptHandle::new(None, move || task.abort()))
    }
}

async fn an_agent_is_starting_until_its_machine_and_workspace_are_ready(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let ready = Arc::new(Notify::new());
    let slow = SlowMachine {
        inner: Arc::new(LocalPlacement::new(murmur_attempt::Machine {
            work_root: work.path().join("slow"),
            settings: executor.machine_settings(),
            clones: false,
        })),
        ready: ready.clone(),
    };
    executor.placements.register("fleet", Arc::new(slow));
    let text = "---\nruntime: exec\npool: fleet\n---\n# Slow\n\n## only\n\n```sh\necho hi\n```\n";
    let id = start(&executor, text).await;
    let (driving, mut events) = drive_in_background(&executor, &id);
    let deadline = std::time::Duration::from_secs(30);
    let placed = until(&mut events, |e| matches!(e, Event::AgentPlaced { .. }));
    tokio::time::timeout(deadline, placed)
        .await
        .expect("placed");
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].state, AgentState::Starting.as_str(), "{agents:?}");
    assert_eq!(agents[0].machine.as_deref(), Some("slow-1"));
    ready.notify_one();
    let running = until(&mut events, |e| matches!(e, Event::AgentRunning { .. }));
    tokio::time::timeout(deadline, running)
        .await
        .expect("running");
    let status = tokio::time::timeout(deadline, driving).await.expect("ends");
    assert_eq!(status.expect("task").expect("drive"), RunStatus::Completed);
    let stored = executor.store.events(&id, 0).await.expect("events");
    let kinds: Vec<&str> = stored
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| k.starts_with("agent_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "agent_queued",
            "agent_started",
            "agent_placed",
            "agent_running",
            "agent_output",
            "agent_succeeded"
        ]
    );
}

/// Runs every attempt on the real runner, reporting machine `m1` for the first and, for a
/// later one, `m2` in place of the machine the attempt was meant for (gone, as it were).
struct Replacing {
    inner: LocalPlacement,
    affinities: std::sync::Mutex<Vec<Option<String>>>,
}

impl Placement for Replacing {
    fn start(
        &self,
        spec: AttemptSpec,
        updates: mpsc::UnboundedSender<AttemptUpdate>,
    ) -> Result<AttemptHandle, PlacementError> {
        self.affinities
            .lock()
            .expect("lock")
            .push(spec.affinity.clone());
        let placed = match spec.affinity.clone() {
            None => AttemptUpdate::Placed {
                machine: "m1".to_owned(),
                instead_of: None,
            },
            Some(gone) => AttemptUpdate::Placed {
                machine: "m2".to_owned(),
                instead_of: Some(gone),
            },
        };
        let _ = updates.send(placed);
        let inner = self.inner.start(spec, updates)?;
        Ok(AttemptHandle::new(None, move || inner.stop()))
    }
}

async fn a_retry_is_meant_for_the_machine_that_ran_the_agent(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut executor = executor(db, work.path()).await;
    executor.retry_backoff = std::time::Duration::ZERO;
    let fleet = Arc::new(Replacing {
        inner: LocalPlacement::new(murmur_attempt::Machine {
            work_root: work.path().join("fleet"),
            settings: executor.machine_settings(),
            clones: false,
        }),
        affinities: Default::default(),
    });
    executor.placements.register("fleet", fleet.clone());
    let text = "---\nruntime: exec\npool: fleet\nretries: 1\n---\n# Again\n\n## only\n\n```sh\n[ \"$MURMUR_ATTEMPT\" = 2 ] || exit 3\necho second\n```\n";
    let id = start(&executor, text).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed, "{events:?}");
    assert_eq!(
        *fleet.affinities.lock().expect("lock"),
        [None, Some("m1".to_owned())],
        "the retry is meant for the machine of the first attempt"
    );
    let resurrected: Vec<(u32, &str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::AgentResurrected {
                attempt,
                from,
                machine,
                ..
            } => Some((*attempt, from.as_str(), machine.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(resurrected, [(2, "m1", "m2")], "{events:?}");
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].machine.as_deref(), Some("m2"));
}

async fn each_pool_of_a_run_holds_its_own_max_vms(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut executor = executor(db, work.path()).await;
    executor.slots = 1;
    executor.pools.max_vms.insert("fleet".to_owned(), 2);
    let fleet = named(&executor, "fleet-1", 0);
    executor.placements.register("fleet", fleet.clone());
    let go = work.path().join("go");
    let (here, there) = (work.path().join("here"), work.path().join("there"));
    let mut text = "---\nruntime: exec\n---\n# Both\n\n".to_owned();
    for slug in ["here-1", "here-2"] {
        text += &holding_agent(slug, None, &here, &go);
    }
    for slug in ["there-1", "there-2", "there-3"] {
        text += &holding_agent(slug, Some("fleet"), &there, &go);
    }
    let id = start(&executor, &text).await;
    let (driving, mut events) = drive_in_background(&executor, &id);
    // A full `local` holds back no fleet agent, nor a full fleet a local one: one local and
    // two fleet agents hold their machines at once.
    let three_hold = async {
        for _ in 0..3 {
            until(&mut events, is_waiting).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), three_hold)
        .await
        .expect("one local and two fleet agents at once");
    let now = murmur_engine::Clock::stamp(&murmur_engine::SystemClock);
    let in_use = |pool: &'static str| {
        let (store, now) = (executor.store.clone(), now.clone());
        async move { store.machines_in_use(pool, &now).await.expect("count") }
    };
    assert_eq!((in_use("local").await, in_use("fleet").await), (1, 2));
    std::fs::write(&go, "").expect("go");
    let status = driving.await.expect("join").expect("drive");
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(peak_concurrency(&here), 1, "local's max_vms is 1");
    assert_eq!(peak_concurrency(&there), 2, "fleet's max_vms is 2");
    assert_eq!(fleet.started.load(Ordering::SeqCst), 3);
    assert_eq!((in_use("local").await, in_use("fleet").await), (0, 0));
}
