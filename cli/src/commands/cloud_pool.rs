//! The cloud side of `murmur pool`: the VMs behind a cloud pool's machines (`pool status`)
//! and the API calls provisioning one would make (`pool up POOL --dry-run`).

use anyhow::bail;
use murmur_engine::Store;
use murmur_pool::{InstanceId, Provision, Tags};
use murmur_server::machines::PoolView;
use serde::Serialize;

use crate::cloud::{CloudPoolConfig, cloud_pools, provider};
use crate::config::Config;
use crate::terminal::sanitize;

/// One VM of a cloud pool, as `pool status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub machine: String,
    /// The machine's state in the store.
    pub state: String,
    /// The provider's id (`i-…`, `zone/name`); none while it is being created.
    pub instance_id: Option<String>,
    pub location: Option<String>,
    /// The provider's own state name, when the provider answered.
    pub provider_state: Option<String>,
}

/// The VMs of cloud pool `pool`; an empty list for any other pool. The provider is asked for
/// each VM's state; when it cannot be reached the states are left out and a line says why.
pub async fn instances(
    store: &Store,
    config: &Config,
    pool: &str,
) -> anyhow::Result<Vec<InstanceView>> {
    let Some(cloud) = cloud_pools(config)?.into_iter().find(|p| p.name == pool) else {
        return Ok(Vec::new());
    };
    let machines = store.cloud_machines(pool).await?;
    if machines.is_empty() {
        return Ok(Vec::new());
    }
    let mut states = std::collections::HashMap::new();
    let fresh = uuid::Uuid::now_v7().simple().to_string();
    let cluster = store.cloud_cluster(&fresh).await?;
    match listed(&cloud, &cluster).await {
        Ok(instances) => {
            for instance in instances {
                states.insert(instance.id, instance.provider_state);
            }
        }
        Err(error) => eprintln!(
            "cannot ask {} for the VMs' states: {}",
            cloud.placement.provider(),
            sanitize(&format!("{error:#}"))
        ),
    }
    Ok(machines
        .into_iter()
        .map(|m| InstanceView {
            provider_state: m
                .instance_id
                .as_ref()
                .and_then(|id| states.get(&InstanceId(id.clone())).cloned()),
            machine: m.machine.id,
            state: m.machine.state.to_string(),
            instance_id: m.instance_id,
            location: m.location,
        })
        .collect())
}

async fn listed(
    cloud: &CloudPoolConfig,
    cluster: &str,
) -> anyhow::Result<Vec<murmur_pool::Instance>> {
    Ok(provider(&cloud.placement).await?.list(cluster).await?)
}

/// The table lines of a pool's VMs.
pub fn table(instances: &[InstanceView]) -> String {
    let mut out = String::new();
    for vm in instances {
        out.push_str(&format!(
            "  {:<32} {:<12} {:<24} {:<16} {}\n",
            sanitize(&vm.machine),
            vm.state,
            sanitize(vm.instance_id.as_deref().unwrap_or("(creating)")),
            sanitize(vm.location.as_deref().unwrap_or("-")),
            sanitize(vm.provider_state.as_deref().unwrap_or("?")),
        ));
    }
    out
}

/// The lines under a cloud pool's table row: why its provisioning stopped, and what it ran
/// into lately (locations without capacity, back-offs).
pub fn story(pool: &PoolView) -> String {
    let mut out = String::new();
    if let Some(reason) = &pool.provisioning_stopped {
        out.push_str(&format!("  STOPPED: {}\n", sanitize(reason)));
    }
    for event in pool
        .events
        .iter()
        .filter(|e| e.kind == "capacity" || e.kind == "backoff")
    {
        out.push_str(&format!(
            "  {} {} {}: {}\n",
            sanitize(&event.at),
            event.kind,
            sanitize(event.location.as_deref().unwrap_or("-")),
            sanitize(&event.message)
        ));
    }
    out
}

/// The API calls provisioning one machine of cloud pool `pool` would make, one a line,
/// without the boot script's credential. Makes no call.
pub async fn dry_run(config: &Config, pool: &str) -> anyhow::Result<Vec<String>> {
    let pools = cloud_pools(config)?;
    let Some(cloud) = pools.iter().find(|p| p.name == pool) else {
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "pool `{}` is not a cloud pool; the cloud pools are: {}",
            sanitize(pool),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let request = Provision {
        tags: Tags {
            tenant: "(this tenant)".into(),
            pool: cloud.name.clone(),
            machine: "(new machine id)".into(),
            cluster: "(this store's cluster id)".into(),
        },
        shape: cloud.shape.clone(),
        boot_script: murmur_server::pools::boot_script(
            config.server.url.as_deref().unwrap_or_default(),
            "(one-time bootstrap credential)",
            &cloud.name,
        ),
    };
    Ok(provider(&cloud.placement).await?.plan(&request))
}
