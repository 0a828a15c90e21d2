//! instances.insert: one VM with the pool's image and machine type, the four murmur labels and
//! the boot script as its `startup-script` metadata item.

use std::collections::HashMap;

use google_cloud_compute_v1::model::{
    self, AttachedDisk, AttachedDiskInitializeParams, Metadata, NetworkInterface, ServiceAccount,
    metadata::Items,
};
use murmur_pool::{Error, Instance, Provision};

use crate::{Gce, Placement, state};

/// Compute Engine caps one metadata value at 256 KB.
const METADATA_LIMIT: usize = 256 * 1024;

/// Checks the shape and the labels before any call; returns the labels.
pub(crate) fn validate(
    placement: &Placement,
    request: &Provision,
) -> Result<HashMap<String, String>, Error> {
    if request.shape.image.trim().is_empty() {
        return Err(murmur_pool::config(
            &placement.name,
            "image",
            "is missing in the environment's `gcp` shape",
        ));
    }
    if !state::is_name(&request.shape.machine_type) {
        return Err(murmur_pool::config(
            &placement.name,
            "machine_type",
            &format!(
                "{:?} is not a machine type (e.g. e2-standard-4)",
                request.shape.machine_type
            ),
        ));
    }
    if request.boot_script.len() > METADATA_LIMIT {
        return Err(murmur_pool::config(
            &placement.name,
            "startup-script",
            "is larger than the 256 KB Compute Engine takes",
        ));
    }
    let mut labels = HashMap::new();
    for (key, value) in request.tags.pairs() {
        let key = state::label_key(key);
        if !state::is_label_value(value) {
            return Err(murmur_pool::config(
                &placement.name,
                "labels",
                &format!(
                    "{key}={value:?} is not a label value (lowercase letters, digits, - and _, at most 63)"
                ),
            ));
        }
        labels.insert(key, value.to_owned());
    }
    Ok(labels)
}

fn network(placement: &Placement) -> String {
    match placement.network.trim() {
        "" => "global/networks/default".into(),
        path if path.contains('/') => path.into(),
        name => format!("global/networks/{name}"),
    }
}

fn body(
    placement: &Placement,
    request: &Provision,
    zone: &str,
    labels: &HashMap<String, String>,
) -> model::Instance {
    let disk = AttachedDisk::new()
        .set_boot(true)
        .set_auto_delete(true)
        .set_initialize_params(
            AttachedDiskInitializeParams::new()
                .set_source_image(&request.shape.image)
                .set_disk_size_gb(i64::from(request.shape.disk_gb)),
        );
    let script = Items::new()
        .set_key("startup-script")
        .set_value(&request.boot_script);
    let mut instance = model::Instance::new()
        .set_name(state::instance_name(&request.tags.machine))
        .set_machine_type(format!(
            "zones/{zone}/machineTypes/{}",
            request.shape.machine_type
        ))
        .set_labels(labels.clone())
        .set_disks([disk])
        .set_network_interfaces([NetworkInterface::new().set_network(network(placement))])
        .set_metadata(Metadata::new().set_items([script]));
    if let Some(account) = &placement.service_account {
        instance = instance.set_service_accounts([ServiceAccount::new()
            .set_email(account)
            .set_scopes(["https://www.googleapis.com/auth/cloud-platform"])]);
    }
    instance
}

impl Gce {
    pub(crate) async fn insert(
        &self,
        request: &Provision,
        labels: &HashMap<String, String>,
        zone: &str,
    ) -> Result<Instance, Error> {
        let name = state::instance_name(&request.tags.machine);
        let sent = self
            .client
            .insert()
            .set_project(&self.placement.project)
            .set_zone(zone)
            .set_body(body(&self.placement, request, zone, labels))
            .send()
            .await;
        let operation = sent.map_err(|e| self.error("instances.insert", zone, e))?;
        self.wait(zone, operation, "instances.insert", zone).await?;
        self.get(&state::id(zone, &name)).await
    }
}

/// What provisioning would call, for `--dry-run`; the script is counted, never shown.
pub(crate) fn plan(placement: &Placement, request: &Provision) -> Vec<String> {
    let name = state::instance_name(&request.tags.machine);
    let labels: Vec<String> = request
        .tags
        .pairs()
        .iter()
        .map(|(k, v)| format!("{}={v}", state::label_key(k)))
        .collect();
    let mut calls = Vec::new();
    for (i, zone) in placement.zones.iter().enumerate() {
        let when = if i == 0 {
            ""
        } else {
            " (only if the previous zone has no capacity)"
        };
        calls.push(format!(
            "compute.instances.insert project={} zone={zone} name={name} machineType={} image={} \
             diskSizeGb={} network={} labels=[{}] metadata.startup-script=<{} bytes, withheld: it holds a \
             bootstrap credential>{when}",
            placement.project,
            request.shape.machine_type,
            request.shape.image,
            request.shape.disk_gb,
            network(placement),
            labels.join(","),
            request.boot_script.len(),
        ));
        calls.push(format!(
            "compute.zoneOperations.get project={} zone={zone} (until DONE){when}",
            placement.project
        ));
        calls.push(format!(
            "compute.instances.get project={} zone={zone} name={name}{when}",
            placement.project
        ));
    }
    calls
}
