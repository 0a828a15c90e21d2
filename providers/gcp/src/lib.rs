//! The `gcp` placement: Compute Engine through `google-cloud-compute-v1`. A machine is one
//! instance inserted with labels naming its tenant, pool, machine and cluster and a
//! `startup-script` metadata item that starts `murmur worker`. Sleep suspends it (memory
//! kept), wake resumes it, destroy deletes it, reconciliation lists each zone by the cluster
//! label. Every zone operation is awaited to `DONE` and its errors are surfaced.
//!
//! Credentials come from Google application default credentials only.

mod errors;
mod insert;
mod operation;
mod state;

use google_cloud_compute_v1::client::Instances;
use murmur_pool::{Error, Instance, InstanceId, Lifecycle, Provision, Provisioned};

pub use errors::{CHAIN, retry_policy};

/// `placements.NAME` with `provider: gcp`, checked without the SDK.
pub use murmur_pool::GcpPlacement as Placement;

/// A Compute Engine placement with its client.
pub struct Gce {
    placement: Placement,
    client: Instances,
    endpoint: String,
}

impl Gce {
    /// Validates the placement and builds a client on application default credentials.
    pub async fn connect(placement: Placement) -> Result<Self, Error> {
        Self::build(placement, None).await
    }

    /// Validates the placement and builds a client on `credentials` instead of application
    /// default credentials (tests point a user account's token endpoint at their server).
    pub async fn with_credentials(
        placement: Placement,
        credentials: google_cloud_auth::credentials::Credentials,
    ) -> Result<Self, Error> {
        Self::build(placement, Some(credentials)).await
    }

    async fn build(
        placement: Placement,
        credentials: Option<google_cloud_auth::credentials::Credentials>,
    ) -> Result<Self, Error> {
        placement.validate()?;
        let mut builder = Instances::builder().with_retry_policy(retry_policy());
        if let Some(endpoint) = &placement.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(credentials) = credentials {
            builder = builder.with_credentials(credentials);
        }
        let client = builder.build().await.map_err(|e| Error::Denied {
            provider: "gcp",
            chain: CHAIN,
            action: "compute.instances.*".into(),
            code: "credentials".into(),
            message: e.to_string(),
        })?;
        Ok(Self::with_client(placement, client))
    }

    /// A placement over a client built elsewhere.
    pub fn with_client(placement: Placement, client: Instances) -> Self {
        let endpoint = placement
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://compute.googleapis.com".into());
        Self {
            placement,
            client,
            endpoint,
        }
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Reads one instance back (`instances.get`).
    pub async fn get(&self, id: &InstanceId) -> Result<Instance, Error> {
        let (zone, name) = state::split(id)?;
        let found = self
            .client
            .get()
            .set_project(&self.placement.project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await
            .map_err(|e| self.error("instances.get", &id.0, e))?;
        Ok(state::instance(zone, &found))
    }

    async fn list_zone(&self, zone: &str, cluster: &str) -> Result<Vec<Instance>, Error> {
        let filter = format!(
            "labels.{} = \"{cluster}\"",
            state::label_key(murmur_pool::Tags::CLUSTER)
        );
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list()
                .set_project(&self.placement.project)
                .set_zone(zone)
                .set_filter(&filter)
                .set_or_clear_page_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("instances.list", zone, e))?;
            found.extend(page.items.iter().map(|i| state::instance(zone, i)));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(found),
            }
        }
    }
}

impl Lifecycle for Gce {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    async fn provision(&self, request: &Provision) -> Result<Provisioned, Error> {
        let body = insert::validate(&self.placement, request)?;
        let zones = &self.placement.zones;
        let (instance, skipped) =
            murmur_pool::try_locations(zones, |zone| self.insert(request, &body, zone)).await?;
        Ok(Provisioned { instance, skipped })
    }

    /// `instances.suspend`, awaited.
    async fn sleep(&self, id: &InstanceId) -> Result<(), Error> {
        let (zone, name) = state::split(id)?;
        let sent = self
            .client
            .suspend()
            .set_project(&self.placement.project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await;
        let operation = sent.map_err(|e| self.error("instances.suspend", &id.0, e))?;
        self.wait(zone, operation, "instances.suspend", &id.0).await
    }

    /// `instances.resume`, awaited.
    async fn wake(&self, id: &InstanceId) -> Result<(), Error> {
        let (zone, name) = state::split(id)?;
        let sent = self
            .client
            .resume()
            .set_project(&self.placement.project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await;
        let operation = sent.map_err(|e| self.error("instances.resume", &id.0, e))?;
        self.wait(zone, operation, "instances.resume", &id.0).await
    }

    /// `instances.delete`, awaited; an instance already gone is fine.
    async fn destroy(&self, id: &InstanceId) -> Result<(), Error> {
        let (zone, name) = state::split(id)?;
        let sent = self
            .client
            .delete()
            .set_project(&self.placement.project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await;
        let done = match sent.map_err(|e| self.error("instances.delete", &id.0, e)) {
            Ok(operation) => self.wait(zone, operation, "instances.delete", &id.0).await,
            Err(error) => Err(error),
        };
        match done {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `instances.list` in every zone by the cluster label.
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>, Error> {
        let mut found = Vec::new();
        for zone in &self.placement.zones {
            found.extend(self.list_zone(zone, cluster).await?);
        }
        found.retain(|i| i.state != murmur_pool::InstanceState::Gone);
        Ok(found)
    }

    fn plan(&self, request: &Provision) -> Vec<String> {
        insert::plan(&self.placement, request)
    }
}
