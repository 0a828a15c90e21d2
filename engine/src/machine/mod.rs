//! Machines: what an agent's attempt runs on. A machine is a row of the store whose state
//! changes only through [`MachineEvent`]s, each checked against the one transition table in
//! [`table`] and appended to the machine's event log (`store::machine_log`).
//!
//! A machine of the `local` placement is a slot on this host; one of `workers` is a
//! `murmur worker` process; cloud placements add VMs. The states are the same for all.

mod pools;
pub mod table;

use serde::{Deserialize, Serialize};

pub use pools::{
    Flushed, PoolSpec, PoolStatus, agent_pool, agent_pool_or, flush_pool, pool_of, pool_status,
};
pub use table::next_state;

/// Where a machine is in its life. Renaming a variant's text is a schema change: it is the
/// `state` column and the JSON of `machines ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Being created (a VM booting, a worker registering); takes no agent yet.
    Provisioning,
    /// Warm and free: the next agent of its pool may claim it.
    Idle,
    /// Holds an agent's attempt.
    Busy,
    /// Its agent finished a turn and went to sleep on it: no compute, but the agent's
    /// workspace and session stay on it, so the agent wakes here.
    Sleeping,
    /// Being woken for its sleeping agent.
    Waking,
    /// Being destroyed; takes no agent.
    Draining,
    /// Gone for good. Terminal.
    Terminated,
    /// Stopped answering (its lease expired, or the provider lost it).
    Lost,
}

impl MachineState {
    pub const ALL: &'static [MachineState] = &[
        Self::Provisioning,
        Self::Idle,
        Self::Busy,
        Self::Sleeping,
        Self::Waking,
        Self::Draining,
        Self::Terminated,
        Self::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Sleeping => "sleeping",
            Self::Waking => "waking",
            Self::Draining => "draining",
            Self::Terminated => "terminated",
            Self::Lost => "lost",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|state| state.as_str() == text)
    }

    /// States whose machine is expected to heartbeat: past its lease it is `lost`. A
    /// sleeping machine has no compute to answer with, and a terminated or lost one is
    /// already accounted for.
    pub fn heartbeats(self) -> bool {
        matches!(
            self,
            Self::Provisioning | Self::Idle | Self::Busy | Self::Waking | Self::Draining
        )
    }
}

impl std::fmt::Display for MachineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a machine when its agent lets it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Back to the pool, warm and free.
    Keep,
    /// Asleep with the agent's workspace and session on it, until the agent wakes. There is
    /// no "falling asleep" state: once a suspend is asked for, the machine runs nothing and
    /// takes nothing, which is what `sleeping` means to everyone else.
    Sleep,
    /// Destroyed.
    Terminate,
}

/// The agent a machine holds: `RUN/SLUG` when shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    pub run_id: String,
    pub slug: String,
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.run_id, self.slug)
    }
}

/// Something that happened to a machine. Each variant carries only its own data; whether it
/// may happen in the machine's state is [`table::next_state`]'s to say. A heartbeat is not an
/// event: it renews the machine's lease on its row and is not logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MachineEvent {
    /// The machine exists and is ready: a VM booted, a worker registered.
    Provisioned { provider_id: String },
    /// An agent's attempt took the (idle) machine.
    Claimed {
        run_id: String,
        slug: String,
        attempt: u32,
    },
    /// The agent let the machine go.
    Released { how: Release },
    /// A sleeping machine is being woken for its agent.
    WakeStarted,
    /// It is awake; its agent runs on it again.
    Woke,
    /// Take no more work and be destroyed (pool flush, an extra idle machine past
    /// `idle_timeout`, a lost machine given up on).
    Drain,
    /// Destroyed; its credential is revoked with this event.
    Terminated,
    /// It stopped answering.
    Lost { reason: String },
    /// A lost machine answered again.
    Returned,
}

impl MachineEvent {
    /// The event's name in the log (its JSON `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Provisioned { .. } => "provisioned",
            Self::Claimed { .. } => "claimed",
            Self::Released { .. } => "released",
            Self::WakeStarted => "wake_started",
            Self::Woke => "woke",
            Self::Drain => "drain",
            Self::Terminated => "terminated",
            Self::Lost { .. } => "lost",
            Self::Returned => "returned",
        }
    }
}
