//! Who runs what, in memory: attempts waiting for a machine of their pool, attempts assigned
//! to a machine (with how far their numbered updates were passed on), and stops to tell.
//! Pure bookkeeping, no store and no I/O, so the exactly-once rules are tested here alone:
//! an update is passed to the driver only when its number is the next one of its attempt,
//! and only from the machine the attempt is assigned to.

use std::collections::{BTreeMap, HashMap, VecDeque};

use murmur_protocol::worker::{Ack, AttemptUpdates};
use murmur_protocol::{AttemptFailure, AttemptKey, AttemptSpec, AttemptUpdate, FailureKind};
use tokio::sync::mpsc::UnboundedSender;

/// An attempt waiting for a machine.
pub struct Queued {
    pub spec: AttemptSpec,
    pub updates: UnboundedSender<AttemptUpdate>,
    /// The attempt's secrets, in memory until a machine takes it: they are sealed to that
    /// machine's ephemeral key, known only then.
    pub secrets: Option<murmur_vault::SecretSet>,
}

/// What the machine an attempt is meant for (its `affinity`) is to the pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// A live machine of the pool: the attempt waits for it, which holds its workspace and
    /// session.
    Live,
    /// A machine of the pool that is lost or terminated: any machine resumes the agent from
    /// its branch, and says which machine it replaces.
    Gone,
    /// Not a machine of this pool (the local pool's, another pool's): any machine takes it.
    Elsewhere,
}

/// Whose attempts a machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves<'a> {
    /// A machine of the server's own tenant (its cloud VMs, workers registered with its
    /// tokens): every tenant's, as a hosted runner serves every organisation.
    Every,
    /// A machine registered with a tenant's worker token: that tenant's alone.
    Tenant(&'a str),
}

impl Serves<'_> {
    fn takes(self, spec: &AttemptSpec) -> bool {
        match self {
            Serves::Every => true,
            Serves::Tenant(tenant) => spec.tenant == tenant,
        }
    }
}

/// An attempt a machine runs.
struct Assigned {
    machine: String,
    updates: UnboundedSender<AttemptUpdate>,
    /// The number of the last update passed on (0: none yet).
    passed: u64,
}

/// What one attempt's batch of updates came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Everything up to `ack.upto` is taken; `ended` when the attempt's last update was.
    Taken { ack: Ack, ended: bool },
    /// The attempt is not this machine's (any more): nothing was passed on; stop it.
    Stop,
}

#[derive(Default)]
pub struct Dispatch {
    queued: BTreeMap<String, VecDeque<Queued>>,
    assigned: HashMap<AttemptKey, Assigned>,
    /// Stops asked for by the driver, per machine, not yet told to it.
    stops: HashMap<String, Vec<AttemptKey>>,
}

impl Dispatch {
    /// How many attempts wait for a machine of `pool` (the pool manager provisions for them).
    pub fn waiting(&self, pool: &str) -> usize {
        self.queued.get(pool).map_or(0, VecDeque::len)
    }

    pub fn enqueue(&mut self, pool: &str, queued: Queued) {
        self.queued
            .entry(pool.to_owned())
            .or_default()
            .push_back(queued);
    }

    /// The machines other than `machine` that attempts waiting for `pool` which it `serves`
    /// are meant for, each with the tenant of the attempt: what [`Dispatch::take_for`] needs
    /// to know about.
    pub fn affinities(&self, pool: &str, machine: &str, serves: Serves) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = self
            .queued
            .get(pool)
            .into_iter()
            .flatten()
            .filter(|queued| serves.takes(&queued.spec))
            .filter_map(|queued| {
                let id = queued.spec.affinity.clone()?;
                Some((queued.spec.tenant.clone(), id))
            })
            .filter(|(_, id)| id != machine)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The oldest attempt waiting for `pool` that `machine` may run: of a tenant it `serves`,
    /// and meant for it, for no machine of the pool, or for one that is gone (then also the
    /// machine it replaces). An attempt meant for another live machine waits for that one.
    pub fn take_for(
        &mut self,
        pool: &str,
        machine: &str,
        serves: Serves,
        affinity: impl Fn(&str) -> Affinity,
    ) -> Option<(Queued, Option<String>)> {
        let queue = self.queued.get_mut(pool)?;
        let mut mine = queue
            .iter()
            .enumerate()
            .filter(|(_, queued)| serves.takes(&queued.spec));
        let (at, instead_of) =
            mine.find_map(|(at, queued)| match queued.spec.affinity.as_deref() {
                None => Some((at, None)),
                Some(id) if id == machine => Some((at, None)),
                Some(id) => match affinity(id) {
                    Affinity::Live => None,
                    Affinity::Gone => Some((at, Some(id.to_owned()))),
                    Affinity::Elsewhere => Some((at, None)),
                },
            })?;
        queue.remove(at).map(|queued| (queued, instead_of))
    }

    /// Puts back an attempt taken for a machine that could not be claimed after all.
    pub fn put_back(&mut self, pool: &str, queued: Queued) {
        self.queued
            .entry(pool.to_owned())
            .or_default()
            .push_front(queued);
    }

    /// Records that `machine` runs the attempt, and tells its driver where it runs (and
    /// which gone machine it replaces).
    pub fn assign(
        &mut self,
        machine: &str,
        queued: Queued,
        instead_of: Option<String>,
    ) -> AttemptSpec {
        let placed = AttemptUpdate::Placed {
            machine: machine.to_owned(),
            instead_of,
        };
        let _ = queued.updates.send(placed);
        self.assigned.insert(
            queued.spec.key.clone(),
            Assigned {
                machine: machine.to_owned(),
                updates: queued.updates,
                passed: 0,
            },
        );
        queued.spec
    }

    /// The driver stops the attempt: one still waiting ends here as stopped; one running is
    /// stopped by its machine, whose own `Ended` then comes back as usual.
    pub fn stop(&mut self, pool: &str, key: &AttemptKey) {
        if let Some(queue) = self.queued.get_mut(pool)
            && let Some(at) = queue.iter().position(|q| &q.spec.key == key)
            && let Some(queued) = queue.remove(at)
        {
            let stopped = AttemptFailure::new(
                FailureKind::Stopped,
                format!("attempt {key} was stopped before a machine took it"),
            );
            let _ = queued.updates.send(AttemptUpdate::Ended {
                outcome: Err(stopped),
            });
            return;
        }
        if let Some(assigned) = self.assigned.get(key) {
            let stops = self.stops.entry(assigned.machine.clone()).or_default();
            if !stops.contains(key) {
                stops.push(key.clone());
            }
        }
    }

    /// Passes on the updates of `batch` that come next in its attempt's stream, once each.
    pub fn accept(&mut self, machine: &str, batch: AttemptUpdates) -> Accepted {
        let Some(assigned) = self
            .assigned
            .get_mut(&batch.key)
            .filter(|assigned| assigned.machine == machine)
        else {
            return Accepted::Stop;
        };
        let mut ended = false;
        let mut updates = batch.updates;
        updates.sort_by_key(|numbered| numbered.seq);
        for numbered in updates {
            if numbered.seq <= assigned.passed {
                continue; // sent again after a lost answer: taken already
            }
            if numbered.seq != assigned.passed + 1 || ended {
                break; // a gap: wait for the missing one to be sent again
            }
            ended = matches!(numbered.update, AttemptUpdate::Ended { .. });
            if assigned.updates.send(numbered.update).is_err() {
                // Nobody drives the attempt any more.
                self.assigned.remove(&batch.key);
                return Accepted::Stop;
            }
            assigned.passed = numbered.seq;
        }
        let ack = Ack {
            key: batch.key.clone(),
            upto: assigned.passed,
        };
        if ended {
            self.forget(&batch.key);
        }
        Accepted::Taken { ack, ended }
    }

    fn forget(&mut self, key: &AttemptKey) {
        if let Some(assigned) = self.assigned.remove(key)
            && let Some(stops) = self.stops.get_mut(&assigned.machine)
        {
            stops.retain(|stop| stop != key);
        }
    }

    /// What `machine` must stop, given what it says it runs: attempts not assigned to it
    /// (it was lost meanwhile, or this server never assigned them) and stops asked for.
    pub fn stops_for(&mut self, machine: &str, running: &[AttemptKey]) -> Vec<AttemptKey> {
        let mut stop: Vec<AttemptKey> = running
            .iter()
            .filter(|key| {
                self.assigned
                    .get(key)
                    .is_none_or(|assigned| assigned.machine != machine)
            })
            .cloned()
            .collect();
        for key in self.stops.remove(machine).unwrap_or_default() {
            if self.assigned.contains_key(&key) && !stop.contains(&key) {
                stop.push(key);
            }
        }
        stop
    }

    /// Whether `machine` runs an attempt this server assigned.
    pub fn holds(&self, machine: &str) -> bool {
        self.assigned.values().any(|a| a.machine == machine)
    }

    /// The machine stopped answering: its attempts end here without `Ended`, which their
    /// drivers take as lost (and retry elsewhere). Whatever it sends for them later is refused.
    pub fn lose(&mut self, machine: &str) -> Vec<AttemptKey> {
        let keys: Vec<AttemptKey> = self
            .assigned
            .iter()
            .filter(|(_, assigned)| assigned.machine == machine)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &keys {
            self.assigned.remove(key);
        }
        self.stops.remove(machine);
        keys
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
