//! The placement seam: attempts go to the placement of their pool, the machine is recorded, and
//! an attempt whose machine stops reporting is retried.

mod backends;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backends::TestDb;
use murmur_engine::executor::{AttemptHandle, LocalPlacement, Placement, PlacementError};
use murmur_engine::{Event, RunStatus};
use murmur_protocol::{AttemptSpec, AttemptUpdate};
use support::{drive, executor, start};
use tokio::sync::mpsc;

every_backend!(
    a_local_attempt_records_its_machine,
    a_pool_with_a_registered_placement_runs_there,
    an_attempt_whose_machine_goes_silent_is_retried,
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
