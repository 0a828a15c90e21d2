//! A `gcp` cloud pool end to end against `testkit::gce` (the Compute Engine REST paths,
//! operations and errors), the same stories as `tests/cloud.rs` tells on moto: each VM's boot
//! is its `startup-script` metadata read back from the server and run as a local process, so
//! the real `murmur worker` registers with the bootstrap credential. Then what only a test
//! server can make happen: a 403 that stops provisioning, and a zone without capacity.

#[path = "../cli/tests/support/mod.rs"]
mod support;

#[path = "cloud_support/mod.rs"]
mod cloud_support;

use cloud_support::gce::{Gce, ZONES};
use cloud_support::{Cloud, scenarios};
use serde_json::Value;

#[test]
fn a_gcp_pool_keeps_warm_vms_runs_agents_on_them_and_reconciles_after_a_restart() {
    scenarios::lifecycle::<Gce>();
}

#[test]
fn a_vm_suspends_with_its_agent_and_the_same_instance_resumes_for_a_follow_up() {
    scenarios::sleep_and_wake::<Gce>();
}

/// How many `method` calls on a zone's instance collection (inserts, lists) the GCE server
/// received so far.
fn calls(cloud: &Cloud<Gce>, method: &str) -> usize {
    let requests = cloud.peer.server.requests();
    requests
        .iter()
        .filter(|r| r.method == method && r.path.ends_with("/instances"))
        .count()
}

#[test]
fn a_403_stops_provisioning_naming_the_credentials_and_the_permission() {
    let deny = |gce: &Gce| gce.server.deny_inserts(true);
    let cloud = Cloud::start_prepared("min_idle: 1, max_vms: 2", scenarios::five_agents, deny);
    let mut cloud = cloud.expect("the GCE server needs nothing installed");
    cloud.wait_until("provisioning stopped", |c| {
        c.pool()["provisioning_stopped"].is_string()
    });
    let pool = cloud.pool();
    let reason = pool["provisioning_stopped"].as_str().unwrap_or_default();
    for needed in [
        "compute.instances.insert",
        "PERMISSION_DENIED",
        "Google application default credentials",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        assert!(reason.contains(needed), "{needed} in {reason}");
    }
    assert!(
        cloud
            .server_said()
            .contains("provisioning for this pool stops"),
        "the server log says so"
    );
    let table = cloud.murmur(&["pool", "status", "cloud"]);
    assert!(
        table.contains("STOPPED:") && table.contains("compute.instances.insert"),
        "{table}"
    );

    // No hot loop: the pool keeps reconciling (listing) but never inserts again.
    let (tried, listed) = (calls(&cloud, "POST"), calls(&cloud, "GET"));
    assert_eq!(tried, 1, "one insert, refused");
    cloud.wait_until("two more reconciles", |c| calls(c, "GET") >= listed + 2);
    assert_eq!(calls(&cloud, "POST"), 1, "no insert after the stop");

    // Fixed and restarted, the pool provisions again and says so.
    cloud.stop_server();
    cloud.peer.server.deny_inserts(false);
    cloud.start_server();
    cloud.wait_until("a warm machine", |c| c.pool_count("idle") == 1);
    let pool = cloud.pool();
    assert!(pool["provisioning_stopped"].is_null(), "{pool}");
    let kinds: Vec<String> = events(&pool)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        kinds.ends_with(&["stopped".into(), "resumed".into(), "provisioned".into()]),
        "{kinds:?}"
    );
}

fn events(pool: &Value) -> Vec<Value> {
    pool["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_zone_without_capacity_is_passed_over_for_the_next_and_the_pool_says_so() {
    let exhaust = |gce: &Gce| gce.server.exhaust_zone(ZONES[0]);
    let cloud = Cloud::start_prepared("min_idle: 1, max_vms: 2", scenarios::five_agents, exhaust);
    let mut cloud = cloud.expect("the GCE server needs nothing installed");
    let vms = cloud.wait_until("a warm machine", |c| c.pool_count("idle") == 1);
    assert_eq!(vms.len(), 1, "{vms:?}");
    assert_eq!(cloud.peer.zone_of(&vms[0].id).as_deref(), Some(ZONES[1]));

    // The store kept what happened: `pool status --json` shows it.
    let status = cloud.murmur(&["pool", "status", "cloud", "--json"]);
    let shown: Value = serde_json::from_str(&status).expect("json");
    let story = events(&shown[0]);
    let skipped = story
        .iter()
        .find(|e| e["kind"] == "capacity")
        .unwrap_or_else(|| panic!("a capacity event: {status}"));
    assert_eq!(skipped["location"], ZONES[0], "{status}");
    let message = skipped["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ZONE_RESOURCE_POOL_EXHAUSTED") && message.contains(ZONES[1]),
        "{message}"
    );
    let made = story.iter().find(|e| e["kind"] == "provisioned");
    assert_eq!(made.map(|e| e["location"].clone()), Some(ZONES[1].into()));

    // Every zone full: provisioning backs off, then finds room once a zone has it again.
    cloud.peer.server.exhaust_zone(ZONES[1]);
    cloud.murmur(&["pool", "flush", "cloud"]);
    cloud.wait_until("a back-off", |c| {
        events(&c.pool()).iter().any(|e| e["kind"] == "backoff")
    });
    let table = cloud.murmur(&["pool", "status", "cloud"]);
    assert!(
        table.contains("backoff") && table.contains("trying again in"),
        "{table}"
    );
    cloud.peer.server.refill_zone(ZONES[0]);
    let vms = cloud.wait_until("a warm machine in the refilled zone", |c| {
        c.pool_count("idle") == 1
    });
    let live: Vec<_> = vms.iter().filter(|vm| vm.is_live()).collect();
    assert_eq!(live.len(), 1, "{vms:?}");
    assert_eq!(cloud.peer.zone_of(&live[0].id).as_deref(), Some(ZONES[0]));
}
