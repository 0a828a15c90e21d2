//! The whole process tree of one started child: everything it starts, also what leaves its
//! process group or session (`setsid`, a double fork), ends with it.
//!
//! Each tree has a name, set in its environment as `MURMUR_TREE`, which every descendant
//! inherits whatever it does with groups and sessions. Where the engine can make cgroups
//! (see `cgroup`) the tree also has a cgroup of its own, which the child joins before exec
//! and cannot leave: killing it ends every member. Elsewhere a tree is its process group
//! plus whatever carries its name. A process that both leaves the group and clears its
//! environment is found only through the cgroup.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{cgroup, procfs};

/// The environment variable that names a process's tree.
pub(crate) const MARK: &str = "MURMUR_TREE";

/// A tree about to start: its name, and its cgroup when there is one.
pub(crate) struct Plan {
    name: String,
    cgroup: Option<(PathBuf, OwnedFd)>,
}

impl Plan {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let cgroup = cgroup::engine()
            .filter(|_| !REFUSED.load(Ordering::Relaxed))
            .and_then(|engine| engine.create(&number.to_string()).ok());
        Self {
            name: format!("{}-{number}", engine_name()),
            cgroup,
        }
    }

    /// `MURMUR_TREE=NAME`, for the child's environment.
    pub(crate) fn mark(&self) -> (String, String) {
        (MARK.to_owned(), self.name.clone())
    }

    /// The open `cgroup.procs` the child writes itself into, if the tree has a cgroup.
    pub(crate) fn procs(&self) -> Option<&OwnedFd> {
        self.cgroup.as_ref().map(|(_, procs)| procs)
    }

    /// The tree of the child `pid`, which joined the cgroup (`joined`) or could not.
    pub(crate) fn started(self, pid: libc::pid_t, joined: bool) -> Tree {
        let cgroup = match self.cgroup {
            Some((dir, _)) if joined => Some(dir),
            Some((dir, _)) => {
                // May make but not join (delegation rules): no use trying again.
                REFUSED.store(true, Ordering::Relaxed);
                cgroup::remove(&dir);
                None
            }
            None => None,
        };
        let killer = Killer {
            name: self.name,
            group: pid,
            cgroup,
        };
        if let Ok(mut live) = live().lock() {
            live.insert(pid, killer.clone());
        }
        Tree {
            killer,
            ended: false,
        }
    }

    /// A plan that was not started: its cgroup goes.
    pub(crate) fn abandon(self) {
        if let Some((dir, _)) = self.cgroup {
            cgroup::remove(&dir);
        }
    }
}

/// A child could not join the cgroup made for it: trees go without from then on.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// This engine as tree names carry it: `<pid>-<start time>`, unique on this machine.
fn engine_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let pid = std::process::id();
        let started = procfs::Identity::of(pid).map_or(0, |me| me.started);
        format!("{pid}-{started}")
    })
}

/// What it takes to kill a tree; also kept by pid for [`kill_group`].
#[derive(Clone)]
struct Killer {
    name: String,
    /// The process group the child leads.
    group: libc::pid_t,
    cgroup: Option<PathBuf>,
}

impl Killer {
    /// SIGKILL to every member; returns the processes to wait for.
    fn kill(&self) -> Vec<u32> {
        if let Some(dir) = &self.cgroup {
            if !cgroup::populated(dir) {
                return Vec::new();
            }
            cgroup::kill(dir);
            return cgroup::members(dir);
        }
        kill_process_group(self.group);
        let named = procfs::marked(&[format!("{MARK}={}", self.name)], MARK);
        let pids: Vec<u32> = named.into_iter().map(|(pid, _)| pid).collect();
        for &pid in &pids {
            procfs::kill(pid);
        }
        pids
    }

    /// Removes the cgroup, now or (while killed members are still exiting) later.
    fn tidy(&self) {
        if let Some(dir) = &self.cgroup
            && !cgroup::remove(dir)
            && let Ok(mut later) = leftovers().lock()
        {
            later.push(dir.clone());
        }
    }
}

/// The tree of one started child. Ending it kills what is left of it.
pub(crate) struct Tree {
    killer: Killer,
    ended: bool,
}

impl Tree {
    /// SIGKILL to the whole tree, now.
    pub(crate) fn kill(&self) {
        self.killer.kill();
    }

    /// Kills the tree without waiting, and removes what can be removed now.
    pub(crate) fn abort(&mut self) {
        if !self.ended {
            self.killer.kill();
            self.killer.tidy();
            self.ended = true;
        }
    }

    /// Kills what is left of the tree and waits until it is gone.
    pub(crate) async fn end(&mut self) {
        if self.ended {
            return;
        }
        let killed = self.killer.kill();
        procfs::wait_gone(&killed).await;
        self.killer.tidy();
        self.ended = true;
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Ok(mut live) = live().lock()
            && live
                .get(&self.killer.group)
                .is_some_and(|k| k.name == self.killer.name)
        {
            // Not a later child's entry, should its pid have been reused meanwhile.
            live.remove(&self.killer.group);
        }
        self.abort();
    }
}

/// Trees by the pid of their child, while the child is ours.
fn live() -> &'static Mutex<HashMap<libc::pid_t, Killer>> {
    static LIVE: OnceLock<Mutex<HashMap<libc::pid_t, Killer>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// Cgroups whose killed members had not all exited when the tree ended.
fn leftovers() -> &'static Mutex<Vec<PathBuf>> {
    static LEFTOVERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    &LEFTOVERS
}

/// Removes the cgroups of ended trees that could not be removed at the time.
pub(crate) fn tidy_leftovers() {
    if let Ok(mut later) = leftovers().lock() {
        later.retain(|dir| !cgroup::remove(dir));
    }
}

/// SIGKILL to the tree of the child `pid` (its process group when it has no tree).
pub(crate) fn kill_group(pid: libc::pid_t) {
    let killer = live().lock().ok().and_then(|live| live.get(&pid).cloned());
    match killer {
        Some(killer) => {
            killer.kill();
        }
        None => kill_process_group(pid),
    }
}

fn kill_process_group(group: libc::pid_t) {
    if group <= 0 {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// Kills every other process whose environment has `key=value`, with the whole trees they
/// belong to, waits until all are gone, and returns how many there were.
///
/// For a new engine before it starts the next attempt of what a dead one ran: the dead
/// engine's children died with it (parent-death signal), but not what they started.
pub(crate) fn kill_marked(key: &str, value: &str) -> usize {
    // Making this engine's cgroup folder first ends the trees of dead engines too.
    let _ = cgroup::engine();
    let found = procfs::marked(&[format!("{key}={value}")], MARK);
    let names: BTreeSet<String> = found.iter().filter_map(|(_, name)| name.clone()).collect();
    let mut pids: BTreeSet<u32> = found.into_iter().map(|(pid, _)| pid).collect();
    if !names.is_empty() {
        let marks: Vec<String> = names.iter().map(|n| format!("{MARK}={n}")).collect();
        pids.extend(procfs::marked(&marks, MARK).into_iter().map(|(pid, _)| pid));
    }
    let cgroups: BTreeSet<PathBuf> = pids.iter().filter_map(|&p| cgroup::tree_of(p)).collect();
    for dir in &cgroups {
        cgroup::kill(dir);
    }
    for &pid in &pids {
        procfs::kill(pid);
    }
    for dir in &cgroups {
        pids.extend(cgroup::members(dir));
    }
    let pids: Vec<u32> = pids.into_iter().collect();
    procfs::wait_gone_blocking(&pids);
    for dir in &cgroups {
        cgroup::remove(dir);
    }
    pids.len()
}
