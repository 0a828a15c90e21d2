//! The Compute Engine test server (`testkit::gce`) as the cloud of a test: the `gcp`
//! placement's configuration, application default credentials whose token comes from it, and
//! its instances read back (names for ids, labels for tags).

use std::process::Command;

use murmur_testkit::gce::GceServer;
use serde_json::Value;

use super::{Life, Peer, Vm};

/// The placement's zones, tried in this order.
pub const ZONES: [&str; 2] = ["us-central1-a", "us-central1-b"];

pub struct Gce {
    pub server: GceServer,
    /// Holds the credentials file.
    dir: tempfile::TempDir,
}

impl Gce {
    /// The zone instance `name` is in.
    pub fn zone_of(&self, name: &str) -> Option<String> {
        self.server
            .instances()
            .into_iter()
            .find(|(_, n, _)| n == name)
            .map(|(zone, _, _)| zone)
    }

    fn credentials_file(&self) -> std::path::PathBuf {
        self.dir.path().join("adc.json")
    }
}

fn life(status: &str) -> Life {
    match status {
        "RUNNING" => Life::Up,
        "SUSPENDING" | "SUSPENDED" | "STOPPING" | "TERMINATED" => Life::Asleep,
        // PROVISIONING, STAGING: on its way up, not booted yet.
        _ => Life::Starting,
    }
}

/// `murmur-cluster` → `murmur:cluster`: the tags as the EC2 spelling names them.
fn tags(instance: &Value) -> Vec<(String, String)> {
    instance["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let key = key.strip_prefix("murmur-")?;
            Some((format!("murmur:{key}"), value.as_str()?.to_owned()))
        })
        .collect()
}

impl Peer for Gce {
    fn start() -> Option<Self> {
        let server = GceServer::start("acme");
        let dir = tempfile::tempdir().expect("temp dir");
        let gce = Self { server, dir };
        let adc = murmur_testkit::gce::user_credentials(gce.server.url());
        std::fs::write(gce.credentials_file(), adc.to_string()).expect("credentials");
        Some(gce)
    }

    fn config(&self) -> String {
        format!(
            "environments:\n  vm: {{ gcp: {{ machine_type: e2-small, image: projects/acme/global/images/murmur }} }}\n\
             placements:\n  test: {{ provider: gcp, project: acme, zones: [{}], endpoint: '{}' }}\n",
            ZONES.join(", "),
            self.server.url()
        )
    }

    fn credentials(&self, command: &mut Command) {
        command.env("GOOGLE_APPLICATION_CREDENTIALS", self.credentials_file());
    }

    fn vms(&self) -> Vec<Vm> {
        self.server
            .instances()
            .into_iter()
            .map(|(zone, name, status)| {
                let instance = self.server.instance(&zone, &name).unwrap_or_default();
                Vm {
                    life: life(&status),
                    tags: tags(&instance),
                    id: name,
                    state: status,
                }
            })
            .collect()
    }

    fn boot_script(&self, vm: &Vm) -> Option<String> {
        let zone = self.zone_of(&vm.id)?;
        let instance = self.server.instance(&zone, &vm.id)?;
        let items = instance["metadata"]["items"].as_array()?;
        items
            .iter()
            .find(|item| item["key"] == "startup-script")
            .and_then(|item| item["value"].as_str())
            .map(str::to_owned)
    }

    fn make_orphan(&self, cluster: &str, tenant: &str, pool: &str) -> String {
        let name = "murmur-0000-not-in-the-store";
        let labels = [
            ("murmur-cluster", cluster),
            ("murmur-tenant", tenant),
            ("murmur-pool", pool),
            ("murmur-machine", "0000-not-in-the-store"),
        ];
        self.server.put_running(ZONES[0], name, &labels);
        name.to_owned()
    }
}
