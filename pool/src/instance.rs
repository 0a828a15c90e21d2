//! A VM as a provider reports it.

use serde::Serialize;

/// A provider's id for one VM: an EC2 instance id, or `zone/name` on GCE. Opaque to the
/// pool manager, which stores it beside the machine and hands it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a VM belongs to, written on it as tags (EC2) or labels (GCE) so that a restarted
/// server adopts what it knows and terminates what it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tags {
    pub tenant: String,
    pub pool: String,
    /// The store's machine id.
    pub machine: String,
    /// The store this server belongs to: instances of other clusters in the same account are
    /// never touched.
    pub cluster: String,
}

impl Tags {
    /// EC2 tag keys; GCE labels use `murmur-…` because label keys cannot hold `:`.
    pub const TENANT: &'static str = "murmur:tenant";
    pub const POOL: &'static str = "murmur:pool";
    pub const MACHINE: &'static str = "murmur:machine";
    pub const CLUSTER: &'static str = "murmur:cluster";

    /// `(key, value)` pairs under the EC2 keys.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (Self::TENANT, &self.tenant),
            (Self::POOL, &self.pool),
            (Self::MACHINE, &self.machine),
            (Self::CLUSTER, &self.cluster),
        ]
    }

    /// Reads the four tags back through `get`, which looks a tag key up in the provider's own
    /// spelling. `None` when any is missing: such a VM is not ours to adopt.
    pub fn from_lookup(get: impl Fn(&'static str) -> Option<String>) -> Option<Self> {
        Some(Self {
            tenant: get(Self::TENANT)?,
            pool: get(Self::POOL)?,
            machine: get(Self::MACHINE)?,
            cluster: get(Self::CLUSTER)?,
        })
    }
}

/// A VM's state, folded from the provider's own names into what the pool manager acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Created or being started; not yet running.
    Starting,
    Running,
    /// Being stopped, suspended or hibernated.
    Stopping,
    /// Stopped, suspended or hibernated: disk kept, no compute.
    Stopped,
    /// Being deleted, or deleted.
    Gone,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Gone => "gone",
        }
    }
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: InstanceId,
    /// The zone or availability zone it runs in.
    pub location: String,
    pub state: InstanceState,
    /// `None` for a VM of the cluster without the full set of tags.
    pub tags: Option<Tags>,
    /// The provider's own state name (`stopped`, `SUSPENDED`…), for `pool status`.
    pub provider_state: String,
}
