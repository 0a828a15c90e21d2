//! Processes that are not our children, through `/proc` and pidfds: who is alive, who
//! carries a mark in its environment, and waiting until killed ones are gone.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

/// How long a wait for killed processes lasts at most: SIGKILL ends a process at once
/// unless it is stuck in the kernel (a dead NFS server), and then nothing would help.
const GONE_DEADLINE: Duration = Duration::from_secs(10);

/// A process as it can be told apart from a later one that reuses its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub pid: u32,
    /// Clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub started: u64,
}

impl Identity {
    pub(crate) fn of(pid: u32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name, which may contain spaces, start at its `)`.
        let (_, rest) = stat.rsplit_once(')')?;
        let started = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(Self { pid, started })
    }

    pub(crate) fn is_alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now == *self)
    }
}

/// SIGKILL to one process (never to a group: `pid` is positive).
pub(crate) fn kill(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if pid <= 0 {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on one pid; no memory is shared.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Every other process whose environment holds one of `marks` (`KEY=VALUE`), with the
/// value of `key` in that environment when it has one.
pub(crate) fn marked(marks: &[String], key: &str) -> Vec<(u32, Option<String>)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let prefix = format!("{key}=");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut vars = environ.split(|&b| b == 0);
        if !vars
            .clone()
            .any(|var| marks.iter().any(|m| var == m.as_bytes()))
        {
            continue;
        }
        let value = vars.find_map(|var| {
            var.strip_prefix(prefix.as_bytes())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        found.push((pid, value));
    }
    found
}

/// A pidfd for `pid`; `None` when the process is already gone.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    crate::child::pidfd_open(libc::pid_t::try_from(pid).ok()?).ok()
}

/// Blocks until every process of `pids` has exited (a pidfd turns readable then, also for
/// a process that is not our child), or the deadline passes.
pub(crate) fn wait_gone_blocking(pids: &[u32]) {
    let deadline = Instant::now() + GONE_DEADLINE;
    for fd in pids.iter().filter_map(|&pid| pidfd(pid)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        #[allow(unsafe_code)]
        // SAFETY: `poll` points at one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut poll, 1, millis);
        }
    }
}

/// [`wait_gone_blocking`] without blocking the thread (needs a tokio runtime).
pub(crate) async fn wait_gone(pids: &[u32]) {
    let watches: Vec<AsyncFd<OwnedFd>> = pids
        .iter()
        .filter_map(|&pid| pidfd(pid))
        .filter_map(|fd| crate::child::watch_exit(fd).ok())
        .collect();
    let all = async {
        for watch in &watches {
            let _ = watch.readable().await;
        }
    };
    let _ = tokio::time::timeout(GONE_DEADLINE, all).await;
}
