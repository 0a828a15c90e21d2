//! An EC2 instance as the pool sees it.

use aws_sdk_ec2::types::{Instance as Ec2Instance, InstanceStateName};
use murmur_pool::{Instance, InstanceId, InstanceState, Tags};

/// States reconciliation lists: everything not terminated.
pub(crate) const LIVE: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

pub(crate) fn instance(found: &Ec2Instance) -> Option<Instance> {
    let id = found.instance_id()?.to_owned();
    let name = found.state().and_then(|s| s.name()).cloned();
    let tags = Tags::from_lookup(|key| {
        found
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(key))
            .and_then(|tag| tag.value().map(str::to_owned))
    });
    Some(Instance {
        id: InstanceId(id),
        location: found
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        state: name.as_ref().map_or(InstanceState::Starting, fold),
        tags,
        provider_state: name.map(|n| n.as_str().to_owned()).unwrap_or_default(),
    })
}

fn fold(name: &InstanceStateName) -> InstanceState {
    match name {
        InstanceStateName::Running => InstanceState::Running,
        InstanceStateName::Stopping => InstanceState::Stopping,
        InstanceStateName::Stopped => InstanceState::Stopped,
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated => InstanceState::Gone,
        // `pending`, and names added after this SDK: treat as on its way up.
        _ => InstanceState::Starting,
    }
}
