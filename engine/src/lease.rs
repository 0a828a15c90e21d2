//! Who drives a run. A process that drives runs is an [`Owner`]: a unique id plus the
//! [`Holder`] identity people read in messages (`murmur serve (pid 41 on vm-3) since …`) and
//! that another process on the same host checks before it kills anything the owner left.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A process that may hold run leases. One per process (or per engine in tests).
#[derive(Debug, Clone)]
pub struct Owner {
    /// Unique for this process's lifetime; what the store's lease column holds.
    pub id: String,
    pub holder: Holder,
}

impl Owner {
    /// This process, described as `kind` (`murmur serve`, `murmur flight run`, …).
    pub fn this_process(kind: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            holder: Holder::this_process(kind),
        }
    }
}

/// The identity of a lease holder: enough to name it and to prove it gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub kind: String,
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot: a pid reused by another process
    /// after the holder died has a different one.
    pub started: u64,
    /// The kernel's boot id: after a reboot, nothing of the holder can be running.
    pub boot: String,
}

impl Holder {
    pub fn this_process(kind: &str) -> Self {
        let pid = std::process::id();
        Self {
            kind: kind.to_owned(),
            host: host_name().to_owned(),
            pid,
            started: this_process_start(),
            boot: boot_id().to_owned(),
        }
    }

    /// Whether this holder is proven gone, as seen from this host: it ran here (same host and
    /// boot) and no process with its pid and start time exists any more. A holder on another
    /// host is never proven gone from here.
    pub fn is_gone_here(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        if self.boot != boot_id() {
            return true;
        }
        if self.pid == std::process::id() {
            return self.started != this_process_start();
        }
        process_start(self.pid) != Some(self.started)
    }

    /// `murmur serve (pid 41 on vm-3)`.
    pub fn describe(&self) -> String {
        format!("{} (pid {} on {})", self.kind, self.pid, self.host)
    }
}

/// This host's name, read once: the checks run for every machine row a checkpoint counts.
pub fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned())
    })
}

fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_owned())
            .unwrap_or_default()
    })
}

fn this_process_start() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| process_start(std::process::id()).unwrap_or(0))
}

/// Field 22 of `/proc/PID/stat`, counted after the command name (which may hold spaces and
/// parentheses, so the fields start after its last `)`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// A lease as the store holds it, read back for messages and for views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: Option<String>,
    pub holder: Option<Holder>,
    pub epoch: i64,
    pub acquired_at: Option<String>,
    pub expires_at: Option<String>,
}

impl Lease {
    /// Held by someone until a time after `now` (stamps compare as text).
    pub fn is_live(&self, now: &str) -> bool {
        self.owner.is_some() && self.expires_at.as_deref().is_some_and(|at| at > now)
    }

    /// Live, and its holder is not proven gone: a holder killed on this host loses its
    /// lease at once instead of when it expires.
    pub fn is_held(&self, now: &str) -> bool {
        self.is_live(now) && !self.holder.as_ref().is_some_and(Holder::is_gone_here)
    }

    /// A run that was driven once and whose driver is gone (or let go) without ending it.
    pub fn is_abandoned(&self, now: &str) -> bool {
        self.epoch > 0 && !self.is_held(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_gone() {
        let me = Holder::this_process("test");
        assert!(me.started > 0);
        assert!(!me.is_gone_here());
        let reused = Holder {
            started: me.started + 1,
            ..me.clone()
        };
        assert!(reused.is_gone_here(), "same pid, other start time");
        let elsewhere = Holder {
            host: "another-host".into(),
            pid: u32::MAX,
            ..me
        };
        assert!(!elsewhere.is_gone_here(), "never proven gone from here");
    }

    #[test]
    fn liveness_follows_owner_and_expiry() {
        let lease = Lease {
            owner: Some("a".into()),
            holder: None,
            epoch: 3,
            acquired_at: None,
            expires_at: Some("2026-01-01T00:00:10.000Z".into()),
        };
        assert!(lease.is_live("2026-01-01T00:00:09.999Z"));
        assert!(!lease.is_live("2026-01-01T00:00:10.000Z"));
        assert!(lease.is_abandoned("2026-01-01T00:00:11.000Z"));
        let released = Lease {
            owner: None,
            ..lease.clone()
        };
        assert!(released.is_abandoned("2026-01-01T00:00:00.000Z"));
        let never = Lease {
            epoch: 0,
            ..released
        };
        assert!(!never.is_abandoned("2026-01-01T00:00:00.000Z"));
    }
}
