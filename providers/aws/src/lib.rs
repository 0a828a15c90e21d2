//! The `aws` placement: EC2 through `aws-sdk-ec2`. A machine is one instance created with
//! hibernation configured (and the encrypted root volume hibernation needs), tagged with its
//! tenant, pool, machine and cluster, and booted by a user-data script that starts
//! `murmur worker`. Sleep is a hibernating stop, wake a start, destroy a terminate, and
//! reconciliation lists instances by their `murmur:cluster` tag.
//!
//! Credentials come from the SDK's standard chain only (environment, profile, instance role).

mod errors;
mod run;
mod state;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;
use murmur_pool::{Error, Instance, InstanceId, Lifecycle, Provision, Provisioned, Tags};

pub use errors::CHAIN;

/// `placements.NAME` with `provider: aws`, checked without the SDK.
pub use murmur_pool::AwsPlacement as Placement;

/// The locations provisioning tries in order: the subnets, or the default one.
fn locations(placement: &Placement) -> Vec<String> {
    if placement.subnet_ids.is_empty() {
        vec![String::new()]
    } else {
        placement.subnet_ids.clone()
    }
}
/// An EC2 placement with its client.
pub struct Ec2 {
    placement: Placement,
    client: Client,
    endpoint: String,
}

impl Ec2 {
    /// Validates the placement and builds a client from the SDK's standard credential chain.
    pub async fn connect(placement: Placement) -> Result<Self, Error> {
        placement.validate()?;
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(placement.region.clone()))
            .load()
            .await;
        let mut config = aws_sdk_ec2::config::Builder::from(&shared);
        if let Some(url) = &placement.endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(Self::with_client(
            placement,
            Client::from_conf(config.build()),
        ))
    }

    /// A placement over a client built elsewhere (tests give one with static credentials).
    pub fn with_client(placement: Placement, client: Client) -> Self {
        let endpoint = placement
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", placement.region));
        Self {
            placement,
            client,
            endpoint,
        }
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }
}

impl Lifecycle for Ec2 {
    fn kind(&self) -> &'static str {
        "aws"
    }

    async fn provision(&self, request: &Provision) -> Result<Provisioned, Error> {
        let locations = locations(&self.placement);
        let root = self.root_device(&request.shape.image).await?;
        let (instance, skipped) =
            murmur_pool::try_locations(&locations, |subnet| self.run(request, subnet, &root))
                .await?;
        Ok(Provisioned { instance, skipped })
    }

    /// `StopInstances` with `Hibernate=true`.
    async fn sleep(&self, id: &InstanceId) -> Result<(), Error> {
        self.client
            .stop_instances()
            .instance_ids(&id.0)
            .hibernate(true)
            .send()
            .await
            .map_err(|e| self.error("StopInstances", id, e))?;
        Ok(())
    }

    /// `StartInstances`.
    async fn wake(&self, id: &InstanceId) -> Result<(), Error> {
        self.client
            .start_instances()
            .instance_ids(&id.0)
            .send()
            .await
            .map_err(|e| self.error("StartInstances", id, e))?;
        Ok(())
    }

    /// `TerminateInstances`.
    async fn destroy(&self, id: &InstanceId) -> Result<(), Error> {
        let sent = self
            .client
            .terminate_instances()
            .instance_ids(&id.0)
            .send()
            .await;
        match sent.map_err(|e| self.error("TerminateInstances", id, e)) {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `DescribeInstances` by the cluster tag, live states only.
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>, Error> {
        let cluster_tag = Filter::builder()
            .name(format!("tag:{}", Tags::CLUSTER))
            .values(cluster)
            .build();
        let live = Filter::builder()
            .name("instance-state-name")
            .set_values(Some(state::LIVE.iter().map(|s| (*s).to_owned()).collect()))
            .build();
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .filters(cluster_tag.clone())
                .filters(live.clone())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.error("DescribeInstances", cluster, e))?;
            for reservation in page.reservations() {
                found.extend(reservation.instances().iter().filter_map(state::instance));
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    fn plan(&self, request: &Provision) -> Vec<String> {
        run::plan(&self.placement, request)
    }
}
