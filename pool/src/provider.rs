//! The trait a cloud implements, and what provisioning asks for.

use std::future::Future;
use std::pin::Pin;

use crate::{Error, Instance, InstanceId, Skipped, Tags};

/// A boxed future, so that [`Provider`] stays dyn-compatible without a macro.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The machine shape of a pool's environment, for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// `instance_type` on EC2, `machine_type` on GCE.
    pub machine_type: String,
    /// `image_id` on EC2, `image` on GCE.
    pub image: String,
    pub disk_gb: u32,
}

/// One VM to create.
#[derive(Debug, Clone)]
pub struct Provision {
    pub tags: Tags,
    pub shape: Shape,
    /// The boot script (EC2 user-data, GCE `startup-script`) that starts `murmur worker`.
    /// It carries a one-time bootstrap credential, so it never appears in errors or plans.
    pub boot_script: String,
}

/// A VM created, and the locations tried before it for lack of capacity.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub instance: Instance,
    pub skipped: Vec<Skipped>,
}

/// What a cloud implements, in plain async functions: a VM's lifecycle. Every `Lifecycle` is a
/// [`Provider`], the dyn-compatible seam the pool manager holds.
pub trait Lifecycle: Send + Sync + 'static {
    /// `aws` or `gcp`.
    fn kind(&self) -> &'static str;

    /// Creates a VM, trying the placement's locations in order while they report no
    /// capacity.
    fn provision(
        &self,
        request: &Provision,
    ) -> impl Future<Output = Result<Provisioned, Error>> + Send;

    /// Sleeps a running VM with its memory and disk kept (EC2 hibernate, GCE suspend).
    fn sleep(&self, id: &InstanceId) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wakes a sleeping VM; the same worker on it reconnects.
    fn wake(&self, id: &InstanceId) -> impl Future<Output = Result<(), Error>> + Send;

    /// Destroys a VM for good. Destroying one already gone is not an error.
    fn destroy(&self, id: &InstanceId) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every VM of `cluster` that is not gone, for reconciliation.
    fn list(&self, cluster: &str) -> impl Future<Output = Result<Vec<Instance>, Error>> + Send;

    /// The API calls [`Lifecycle::provision`] would make, one line each, for `--dry-run`
    /// (without the boot script's credential).
    fn plan(&self, request: &Provision) -> Vec<String>;
}

impl<L: Lifecycle> Provider for L {
    fn kind(&self) -> &'static str {
        Lifecycle::kind(self)
    }

    fn provision<'a>(
        &'a self,
        request: &'a Provision,
    ) -> BoxFuture<'a, Result<Provisioned, Error>> {
        Box::pin(Lifecycle::provision(self, request))
    }

    fn sleep<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(Lifecycle::sleep(self, id))
    }

    fn wake<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(Lifecycle::wake(self, id))
    }

    fn destroy<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(Lifecycle::destroy(self, id))
    }

    fn list<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<Instance>, Error>> {
        Box::pin(Lifecycle::list(self, cluster))
    }

    fn plan(&self, request: &Provision) -> Vec<String> {
        Lifecycle::plan(self, request)
    }
}

/// A cloud placement: one account, region or project, and its network.
pub trait Provider: Send + Sync + 'static {
    /// `aws` or `gcp`.
    fn kind(&self) -> &'static str;

    /// Creates a VM, trying the placement's locations in order while they report no
    /// capacity.
    fn provision<'a>(&'a self, request: &'a Provision)
    -> BoxFuture<'a, Result<Provisioned, Error>>;

    /// Sleeps a running VM with its memory and disk kept (EC2 hibernate, GCE suspend).
    fn sleep<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>>;

    /// Wakes a sleeping VM; the same worker on it reconnects.
    fn wake<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>>;

    /// Destroys a VM for good. Destroying one already gone is not an error.
    fn destroy<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), Error>>;

    /// Every VM of `cluster` that is not gone, for reconciliation.
    fn list<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<Instance>, Error>>;

    /// The API calls [`Provider::provision`] would make, one line each, for `--dry-run`
    /// (without the boot script's credential).
    fn plan(&self, request: &Provision) -> Vec<String>;
}
