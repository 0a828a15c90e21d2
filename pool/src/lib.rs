//! The seam between Murmur's cloud pools and the clouds. The server's pool manager speaks
//! [`Provider`]; each cloud implements it in its own crate (`murmur-aws`, `murmur-gcp`), so
//! the server builds without any cloud SDK and the binary picks providers by cargo feature.
//!
//! **Architecture Invariant:** nothing here knows a cloud's wire format or SDK, and nothing
//! here touches the store: a provider creates, sleeps, wakes, destroys and lists VMs, and the
//! pool manager decides when.

mod error;
mod instance;
mod locations;
mod placements;
mod provider;

pub use error::Error;
pub use instance::{Instance, InstanceId, InstanceState, Tags};
pub use locations::{Skipped, try_locations};
pub use placements::{AwsPlacement, GcpPlacement, config, is_gce_name};
pub use provider::{BoxFuture, Lifecycle, Provider, Provision, Provisioned, Shape};
