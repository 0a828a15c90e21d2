//! Names, labels and states: a Compute Engine instance as the pool sees it.

use google_cloud_compute_v1::model::{self, instance::Status};
use murmur_pool::{Error, Instance, InstanceId, InstanceState, Tags};

pub(crate) use murmur_pool::is_gce_name as is_name;

/// A label value: at most 63 lowercase letters, digits, `-` and `_`.
pub(crate) fn is_label_value(text: &str) -> bool {
    text.len() <= 63
        && text
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

/// `murmur:pool` → `murmur-pool`: label keys cannot hold `:`.
pub(crate) fn label_key(tag: &str) -> String {
    tag.replace(':', "-")
}

/// The instance name of a machine: `murmur-` and the machine id, lowercased, with anything a
/// name cannot hold turned into `-`.
pub(crate) fn instance_name(machine: &str) -> String {
    let mut name: String = format!("murmur-{machine}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(63)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// The pool's id of an instance: `zone/name`.
pub(crate) fn id(zone: &str, name: &str) -> InstanceId {
    InstanceId(format!("{zone}/{name}"))
}

pub(crate) fn split(id: &InstanceId) -> Result<(&str, &str), Error> {
    match id.0.split_once('/') {
        Some((zone, name)) if is_name(zone) && is_name(name) => Ok((zone, name)),
        _ => Err(Error::NotFound { id: id.0.clone() }),
    }
}

pub(crate) fn instance(zone: &str, found: &model::Instance) -> Instance {
    let name = found.name.clone().unwrap_or_default();
    let tags = Tags::from_lookup(|key| found.labels.get(&label_key(key)).cloned());
    let status = found.status.clone();
    Instance {
        id: id(zone, &name),
        location: zone.to_owned(),
        state: status.as_ref().map_or(InstanceState::Starting, fold),
        tags,
        provider_state: status
            .as_ref()
            .and_then(Status::name)
            .unwrap_or_default()
            .to_owned(),
    }
}

fn fold(status: &Status) -> InstanceState {
    match status {
        Status::Running => InstanceState::Running,
        Status::Stopping | Status::Suspending | Status::PendingStop => InstanceState::Stopping,
        // TERMINATED on Compute Engine is a stopped VM whose disk is kept, not a deleted one.
        Status::Stopped | Status::Suspended | Status::Terminated => InstanceState::Stopped,
        Status::Deprovisioning => InstanceState::Gone,
        _ => InstanceState::Starting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_ids() {
        assert_eq!(instance_name("0193-ABC_def"), "murmur-0193-abc-def");
        assert!(is_name(&instance_name(&"x".repeat(100))));
        assert!(is_label_value("local") && !is_label_value("Team A"));
        assert_eq!(label_key(Tags::CLUSTER), "murmur-cluster");
        let id = id("us-central1-a", "murmur-1");
        assert_eq!(split(&id).expect("valid"), ("us-central1-a", "murmur-1"));
        assert!(split(&InstanceId("../etc".into())).is_err());
    }
}
