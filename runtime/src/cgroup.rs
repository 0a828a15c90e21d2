//! A cgroup v2 per process tree, where the machine lets the engine create them.
//!
//! A cgroup holds every process its members start, whatever they do with process groups and
//! sessions (`setsid`, a double fork), so killing it (`cgroup.kill`) ends a whole tree. The
//! engine makes one folder of its own under the cgroup it runs in,
//! `murmur-<pid>-<start time>`, and one child folder per tree in it. The pid and start time
//! name the engine, so a later engine can tell the folders of a dead one and end the trees
//! they still hold: cgroups do not die with the process that made them.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::procfs;

/// The engine's own folder, when cgroups are usable here.
pub(crate) struct Engine {
    /// The cgroup the engine runs in (where its folder and those of other engines live).
    base: PathBuf,
    dir: PathBuf,
    pid: u32,
}

/// The engine's folder, made on first use; `None` when there is no writable cgroup2 (or
/// `MURMUR_CGROUPS=off`).
pub(crate) fn engine() -> Option<&'static Engine> {
    ENGINE.get_or_init(make_engine).as_ref()
}

static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();

fn make_engine() -> Option<Engine> {
    // An operator's way out (and the tests' way to exercise the fallback).
    if std::env::var_os("MURMUR_CGROUPS").is_some_and(|v| v == "off") {
        return None;
    }
    let base = own_cgroup()?;
    let me = procfs::Identity::of(std::process::id())?;
    let dir = base.join(engine_folder(&me));
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    let engine = Engine {
        base,
        dir,
        pid: me.pid,
    };
    // The first engine after a crash ends what the dead one left running.
    engine.sweep_dead();
    #[allow(unsafe_code)]
    // SAFETY: atexit(3) keeps a plain function pointer to call at exit.
    unsafe {
        libc::atexit(remove_at_exit);
    }
    Some(engine)
}

/// An engine that exits ends its trees and leaves no folder behind; one killed by a signal
/// leaves them to the next engine's sweep.
extern "C" fn remove_at_exit() {
    let Some(Some(engine)) = ENGINE.get() else {
        return;
    };
    // Only the engine itself: never a forked copy of it that calls exit(3).
    if engine.pid == std::process::id() {
        end_all(&engine.dir);
    }
}

fn engine_folder(engine: &procfs::Identity) -> String {
    format!("murmur-{}-{}", engine.pid, engine.started)
}

/// Where this process's cgroup v2 is in the file system.
fn own_cgroup() -> Option<PathBuf> {
    cgroup_of("self")
}

/// The folder of `process`'s cgroup v2: the `0::PATH` line of `/proc/PROCESS/cgroup`, under
/// the mount point of the cgroup2 file system.
fn cgroup_of(process: &str) -> Option<PathBuf> {
    let membership = fs::read_to_string(format!("/proc/{process}/cgroup")).ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mount = mount()?;
    let inside = path.strip_prefix(mount.root.trim_end_matches('/'))?;
    let dir = mount.point.join(inside.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// The cgroup2 file system as mounted in this mount namespace.
struct Mount {
    point: PathBuf,
    /// The cgroup path shown at the mount point (`/` unless only a subtree is mounted).
    root: String,
}

fn mount() -> Option<&'static Mount> {
    static MOUNT: OnceLock<Option<Mount>> = OnceLock::new();
    MOUNT.get_or_init(find_mount).as_ref()
}

fn find_mount() -> Option<Mount> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        // `ID PARENT DEV ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER`
        let (fields, fs_type) = line.split_once(" - ")?;
        if !fs_type.starts_with("cgroup2 ") {
            return None;
        }
        let fields: Vec<&str> = fields.split(' ').collect();
        Some(Mount {
            point: PathBuf::from(fields.get(4)?),
            root: (*fields.get(3)?).to_owned(),
        })
    })
}

impl Engine {
    /// A new cgroup for one tree, and its `cgroup.procs` open for the child to join.
    pub(crate) fn create(&self, name: &str) -> io::Result<(PathBuf, OwnedFd)> {
        let dir = self.dir.join(name);
        fs::create_dir(&dir)?;
        match fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(procs) => Ok((dir, procs.into())),
            Err(error) => {
                let _ = fs::remove_dir(&dir);
                Err(error)
            }
        }
    }

    /// Ends the trees of engines that are gone, and removes their folders.
    pub(crate) fn sweep_dead(&self) {
        let Ok(entries) = fs::read_dir(&self.base) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(owner_of) else {
                continue;
            };
            if !owner.is_alive() {
                end_all(&entry.path());
            }
        }
    }
}

/// The engine that made a folder named `murmur-<pid>-<start time>`.
fn owner_of(name: &str) -> Option<procfs::Identity> {
    let (pid, started) = name.strip_prefix("murmur-")?.split_once('-')?;
    Some(procfs::Identity {
        pid: pid.parse().ok()?,
        started: started.parse().ok()?,
    })
}

/// Kills every tree under an engine's folder, waits until they are gone, removes it.
fn end_all(dir: &Path) {
    kill(dir);
    procfs::wait_gone_blocking(&members(dir));
    remove(dir);
}

/// SIGKILL to every process in `dir` and below, including ones forking right now.
pub(crate) fn kill(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // No `cgroup.kill` before Linux 5.14: member by member, a few rounds to catch what
    // forked meanwhile.
    for _ in 0..8 {
        let pids = members(dir);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            procfs::kill(pid);
        }
    }
}

/// The processes in `dir` and every cgroup below it.
pub(crate) fn members(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    for child in subfolders(dir) {
        pids.extend(members(&child));
    }
    pids
}

/// Whether any process is left in `dir` or below.
pub(crate) fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|events| events.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Removes `dir` and the cgroups below it (the trees of an engine an agent ran). True when
/// it is gone; a cgroup that still has processes stays.
pub(crate) fn remove(dir: &Path) -> bool {
    for child in subfolders(dir) {
        remove(&child);
    }
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(error) => error.kind() == ErrorKind::NotFound,
    }
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

/// The cgroup folder `pid` is in, when it is one of an engine's trees (`.../murmur-*/NAME`).
pub(crate) fn tree_of(pid: u32) -> Option<PathBuf> {
    let dir = cgroup_of(&pid.to_string())?;
    let parent = dir.parent()?.file_name()?.to_str()?;
    owner_of(parent).map(|_| dir)
}
