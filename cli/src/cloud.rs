//! `placements:` and `environments:` of `.murmur/murmur.yaml`, and the cloud pools they make:
//! a pool whose `placement` names one of `placements:` runs its machines as VMs of that
//! provider, shaped by its `environment`. Everything is checked when the file is read, and
//! each refusal names the key to fix.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use murmur_pool::{AwsPlacement, GcpPlacement, Shape};
use serde::Deserialize;

use crate::config::{Config, FILE};

/// `placements.NAME`: one flat map, so that a key of the other provider is refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    pub provider: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    pub instance_profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub project: Option<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    pub network: Option<String>,
    pub service_account: Option<String>,
    pub endpoint: Option<String>,
}

/// `environments.NAME`: a machine shape per provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Root disk size; 50 unless set.
    pub disk_gb: Option<u32>,
    pub aws: Option<AwsShape>,
    pub gcp: Option<GcpShape>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsShape {
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpShape {
    pub machine_type: Option<String>,
    pub image: Option<String>,
}

const DEFAULT_DISK_GB: u32 = 50;

/// A placement as its provider takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Aws(AwsPlacement),
    Gcp(GcpPlacement),
}

impl Placement {
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Aws(_) => "aws",
            Self::Gcp(_) => "gcp",
        }
    }
}

/// A cloud pool, checked.
#[derive(Debug, Clone)]
pub struct CloudPoolConfig {
    pub name: String,
    /// The placement's name.
    pub placement_name: String,
    pub placement: Placement,
    pub shape: Shape,
    pub max_vms: usize,
    pub min_idle: usize,
    pub idle_timeout: Option<Duration>,
    pub boot_timeout: Duration,
}

const AWS_KEYS: &str = "region, subnet_ids, security_group_ids, instance_profile, endpoint_url";
const GCP_KEYS: &str = "project, zones, network, service_account, endpoint";

/// `placements.NAME`, checked.
pub fn placement(name: &str, config: &PlacementConfig) -> anyhow::Result<Placement> {
    let key = |key: &str| format!("{FILE}: placements.{name}.{key}");
    let foreign = |provider: &str, keys: &[(&str, bool)], takes: &str| -> anyhow::Result<()> {
        if let Some((bad, _)) = keys.iter().find(|(_, set)| *set) {
            bail!(
                "{} is not a key of a {provider} placement (it takes {takes})",
                key(bad)
            );
        }
        Ok(())
    };
    let placement = match config.provider.as_deref() {
        Some("aws") => {
            let gcp_keys = [
                ("project", config.project.is_some()),
                ("zones", !config.zones.is_empty()),
                ("network", config.network.is_some()),
                ("service_account", config.service_account.is_some()),
                ("endpoint", config.endpoint.is_some()),
            ];
            foreign("aws", &gcp_keys, AWS_KEYS)?;
            Placement::Aws(AwsPlacement {
                name: name.to_owned(),
                region: config.region.clone().unwrap_or_default(),
                subnet_ids: config.subnet_ids.clone(),
                security_group_ids: config.security_group_ids.clone(),
                instance_profile: config.instance_profile.clone(),
                endpoint_url: config.endpoint_url.clone(),
            })
        }
        Some("gcp") => {
            let aws_keys = [
                ("region", config.region.is_some()),
                ("subnet_ids", !config.subnet_ids.is_empty()),
                ("security_group_ids", !config.security_group_ids.is_empty()),
                ("instance_profile", config.instance_profile.is_some()),
                ("endpoint_url", config.endpoint_url.is_some()),
            ];
            foreign("gcp", &aws_keys, GCP_KEYS)?;
            Placement::Gcp(GcpPlacement {
                name: name.to_owned(),
                project: config.project.clone().unwrap_or_default(),
                zones: config.zones.clone(),
                network: config.network.clone().unwrap_or_default(),
                service_account: config.service_account.clone(),
                endpoint: config.endpoint.clone(),
            })
        }
        Some(other) => bail!(
            "{} is `{}`: use aws or gcp",
            key("provider"),
            other.escape_debug()
        ),
        None => bail!("{} is missing: aws or gcp", key("provider")),
    };
    let checked = match &placement {
        Placement::Aws(aws) => aws.validate(),
        Placement::Gcp(gcp) => gcp.validate(),
    };
    if let Err(murmur_pool::Error::Config {
        key: bad, problem, ..
    }) = &checked
    {
        bail!("{} {problem}", key(bad));
    }
    checked?;
    Ok(placement)
}

/// The machine shape of `environments.NAME` for `provider`.
fn shape(name: &str, environment: &EnvironmentConfig, provider: &str) -> anyhow::Result<Shape> {
    let key = |key: &str| format!("{FILE}: environments.{name}.{provider}.{key}");
    let missing = |which: &str| anyhow::anyhow!("{} is missing", key(which));
    let (machine_type, image) = match provider {
        "aws" => {
            let Some(aws) = &environment.aws else {
                bail!(
                    "{FILE}: environments.{name}.aws is missing: a pool on an aws placement needs instance_type and image_id"
                );
            };
            (
                aws.instance_type
                    .clone()
                    .ok_or_else(|| missing("instance_type"))?,
                aws.image_id.clone().ok_or_else(|| missing("image_id"))?,
            )
        }
        _ => {
            let Some(gcp) = &environment.gcp else {
                bail!(
                    "{FILE}: environments.{name}.gcp is missing: a pool on a gcp placement needs machine_type and image"
                );
            };
            (
                gcp.machine_type
                    .clone()
                    .ok_or_else(|| missing("machine_type"))?,
                gcp.image.clone().ok_or_else(|| missing("image"))?,
            )
        }
    };
    let disk_gb = environment.disk_gb.unwrap_or(DEFAULT_DISK_GB);
    if disk_gb == 0 {
        bail!("{FILE}: environments.{name}.disk_gb must be at least 1");
    }
    Ok(Shape {
        machine_type,
        image,
        disk_gb,
    })
}

/// Every pool whose `placement` names one of `placements:`, checked with its environment.
/// Also refuses a pool whose placement is neither `local`, `workers` nor a placement's name.
pub fn cloud_pools(config: &Config) -> anyhow::Result<Vec<CloudPoolConfig>> {
    let placements: BTreeMap<&str, Placement> = config
        .placements
        .iter()
        .map(|(name, p)| Ok((name.as_str(), placement(name, p)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut pools = Vec::new();
    for (name, pool) in &config.pools {
        let key = |key: &str| format!("{FILE}: pools.{name}.{key}");
        let Some(placement_name) = pool.placement.as_deref() else {
            continue;
        };
        if matches!(placement_name, "local" | "workers") {
            continue;
        }
        let Some(placement) = placements.get(placement_name) else {
            let known: Vec<&str> = placements.keys().copied().collect();
            bail!(
                "{} is `{}`: use local, workers or one of placements: ({})",
                key("placement"),
                placement_name.escape_debug(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        };
        let Some(environment_name) = pool.environment.as_deref() else {
            bail!(
                "{} is missing: a cloud pool needs a machine shape from environments:",
                key("environment")
            );
        };
        let Some(environment) = config.environments.get(environment_name) else {
            bail!(
                "{} names `{}`, which is not in environments:",
                key("environment"),
                environment_name.escape_debug()
            );
        };
        let max_vms = pool.max_vms.filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!(
                "{} is missing: a cloud pool needs a cap on its VMs",
                key("max_vms")
            )
        })?;
        let min_idle = pool.min_idle.unwrap_or(0);
        if min_idle > max_vms {
            bail!(
                "{} ({min_idle}) is more than max_vms ({max_vms})",
                key("min_idle")
            );
        }
        if config
            .server
            .url
            .as_deref()
            .is_none_or(|url| url.trim().is_empty())
        {
            bail!("{FILE}: server.url is missing: the VMs of pool {name} connect back to it");
        }
        pools.push(CloudPoolConfig {
            name: name.clone(),
            placement_name: placement_name.to_owned(),
            shape: shape(environment_name, environment, placement.provider())?,
            placement: placement.clone(),
            max_vms,
            min_idle,
            idle_timeout: pool.idle_timeout.map(|d| d.as_std()),
            boot_timeout: pool
                .boot_timeout
                .map_or(murmur_server::pools::DEFAULT_BOOT_TIMEOUT, |d| d.as_std()),
        });
    }
    Ok(pools)
}

/// The provider of a placement, on its SDK's standard credential chain.
pub async fn provider(
    placement: &Placement,
) -> anyhow::Result<std::sync::Arc<dyn murmur_pool::Provider>> {
    match placement {
        #[cfg(feature = "aws")]
        Placement::Aws(aws) => Ok(std::sync::Arc::new(
            murmur_aws::Ec2::connect(aws.clone()).await?,
        )),
        #[cfg(feature = "gcp")]
        Placement::Gcp(gcp) => Ok(std::sync::Arc::new(
            murmur_gcp::Gce::connect(gcp.clone()).await?,
        )),
        #[allow(
            unreachable_patterns,
            reason = "reachable without a provider's feature"
        )]
        other => bail!(
            "this murmur was built without the `{}` feature, so it cannot run VMs on placement {}",
            other.provider(),
            match other {
                Placement::Aws(p) => &p.name,
                Placement::Gcp(p) => &p.name,
            }
        ),
    }
}

/// What `murmur serve` hands the pool manager.
pub async fn serve_pools(config: &Config) -> anyhow::Result<Vec<murmur_server::pools::CloudPool>> {
    let mut served = Vec::new();
    for pool in cloud_pools(config)? {
        served.push(murmur_server::pools::CloudPool {
            spec: murmur_engine::machine::PoolSpec {
                name: pool.name.clone(),
                placement: pool.placement_name.clone(),
                max_vms: pool.max_vms,
                min_idle: pool.min_idle,
            },
            provider: provider(&pool.placement).await?,
            shape: pool.shape.clone(),
            server_url: config.server.url.clone().unwrap_or_default(),
            idle_timeout: pool.idle_timeout,
            boot_timeout: pool.boot_timeout,
        });
    }
    Ok(served)
}

#[cfg(test)]
#[path = "cloud_tests.rs"]
mod tests;
